"""Reading the content folder's YAML files: PyYAML's C loader where it is built in (several
times faster than the pure-Python one: every start-up reads them all), a safe loader either way,
and a ContentError naming the file for a file that is missing, unreadable or not valid YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from helpline.errors import ContentError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, where: str | None = None) -> Any:
    """The YAML document in `path`; errors name it as `where` (the file's name by default)."""
    where = where or path.name
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506
    except FileNotFoundError:
        raise ContentError(f"{where}: file is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContentError(f"{where}: cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ContentError(f"{where}: not valid YAML: {exc}") from exc
