"""Every word the service says, in English and Welsh, loaded from content/ and checked at start."""

from __future__ import annotations

import hashlib
import string
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from helpline.domain import LANGUAGES
from helpline.errors import ContentError

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "content"


def normalise(text: str) -> str:
    """Lower case, accents folded, punctuation to spaces, whitespace collapsed."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    kept = "".join(c for c in folded if not unicodedata.combining(c))
    cleaned = "".join(c if c.isalnum() or c.isspace() else " " for c in kept)
    return " ".join(cleaned.split())


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ContentError(f"{path}: not valid YAML: {exc}") from exc


@dataclass
class Content:
    """Messages keyed by stable ids, each with an `en` and a `cy` version, and keyword lists."""

    messages: dict[str, dict[str, str]]
    keywords: dict[str, dict[str, tuple[str, ...]]]
    version: str
    root: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path = DEFAULT_ROOT) -> Content:
        messages: dict[str, dict[str, str]] = {}
        digest = hashlib.sha256()
        for path in sorted((root / "messages").glob("*.yaml")):
            digest.update(path.read_bytes())
            data = _read_yaml(path) or {}
            if not isinstance(data, dict):
                raise ContentError(f"{path}: expected a mapping of message ids")
            for key, versions in data.items():
                where = f"{path.name}: {key}"
                if key in messages:
                    raise ContentError(f"{where}: defined twice")
                messages[str(key)] = _check_message(where, versions)
        keywords: dict[str, dict[str, tuple[str, ...]]] = {}
        kw_path = root / "keywords.yaml"
        if kw_path.exists():
            digest.update(kw_path.read_bytes())
            for name, langs in (_read_yaml(kw_path) or {}).items():
                where = f"{kw_path.name}: {name}"
                if not isinstance(langs, dict) or any(lang not in langs for lang in LANGUAGES):
                    raise ContentError(f"{where}: needs a list for each of {', '.join(LANGUAGES)}")
                keywords[str(name)] = {
                    lang: tuple(normalise(str(w)) for w in langs[lang]) for lang in LANGUAGES
                }
        return cls(messages, keywords, digest.hexdigest()[:12], root)

    def has(self, key: str) -> bool:
        return key in self.messages

    def text(self, key: str, language: str, **params: Any) -> str:
        try:
            template = self.messages[key][language if language in LANGUAGES else "en"]
        except KeyError:
            raise ContentError(f"no message with id {key!r}") from None
        return template.format(**params) if params else template

    def words(self, name: str, language: str) -> tuple[str, ...]:
        """Keywords (normalised) for a command or intent in one language."""
        try:
            return self.keywords[name][language]
        except KeyError:
            raise ContentError(f"keywords.yaml: no keyword list {name!r}") from None

    def all_words(self, name: str) -> tuple[str, ...]:
        """Keywords for a command in every language (people switch languages mid-sentence)."""
        return tuple(w for lang in LANGUAGES for w in self.words(name, lang))


def _check_message(where: str, versions: Any) -> dict[str, str]:
    if not isinstance(versions, dict):
        raise ContentError(f"{where}: expected en and cy versions")
    out: dict[str, str] = {}
    for lang in LANGUAGES:
        value = versions.get(lang)
        if not isinstance(value, str) or not value.strip():
            raise ContentError(f"{where}: the {lang} version is missing or empty")
        out[lang] = value.strip()
    if _placeholders(out["en"]) != _placeholders(out["cy"]):
        raise ContentError(f"{where}: en and cy use different placeholders")
    return out
