"""content/directory/ordinary_words.yaml is what scripts/ordinary_words.py writes from today's
places: a town added since would otherwise be guessed from ordinary words a letter away from
it. `make test` installs the word list (Debian's wbritish)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_ordinary_words_list_is_up_to_date_with_the_places_listed() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ordinary_words.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, (
        done.stdout + done.stderr + "\nrun: .venv/bin/python scripts/ordinary_words.py"
    )
