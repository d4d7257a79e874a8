"""Every word the service says, in English and Welsh, loaded from content/ and checked at start.

A broken file stops the service with a ContentError naming the file and the key: a missing
translation, a placeholder used in one language only, a malformed phone number, wording that
minimises abuse or blames the person harmed, a guardrail pattern that does not compile, or a
broken directory entry (helpline/directory.py)."""

from __future__ import annotations

import hashlib
import html
import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from helpline.domain import LANGUAGES
from helpline.errors import ContentError
from helpline.yamlfile import read_yaml

if TYPE_CHECKING:
    from helpline.directory import Directory

UK_TIME = ZoneInfo("Europe/London")
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "content"

# A UK number as written in a message: "0808 2000 247", "+44 808 ...", "116 123".
_PHONE = re.compile(r"(?<![\w+])(?:\+44 ?|0|116 )\d(?:[ -]?\d)+(?!\w)")


# A page template's placeholder: {{web.page_title}}, {{lang}}.
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_.]*)\s*\}\}")


def fill_page(template: str, words: Callable[[str], str]) -> str:
    """An HTML page template with every {{key}} replaced by `words(key)`, escaped: the pages
    people see hold no word of their own (content/ does)."""
    return _PLACEHOLDER.sub(lambda m: html.escape(words(m.group(1)), quote=True), template)


# The emergency guidance the engine says on danger, suicide and a child at risk.
GUIDANCE = ("risk.immediate", "risk.suicide", "risk.child")


def normalise(text: str) -> str:
    """Lower case, accents folded, punctuation to spaces, whitespace collapsed."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    kept = "".join(c for c in folded if not unicodedata.combining(c))
    cleaned = "".join(c if c.isalnum() or c.isspace() else " " for c in kept)
    return " ".join(cleaned.split())


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _read_yaml(path: Path) -> Any:
    return read_yaml(path)


@dataclass(frozen=True)
class Guardrail:
    """Requests the service always refuses (someone's whereabouts, whether they have been in
    touch, what they said): patterns over normalised text, and the reply that refuses."""

    name: str
    reply: str
    patterns: tuple[re.Pattern[str], ...]
    flag: bool = True  # an adviser is told (a question anyone may ask need not be: flag: false)
    # A message of a journey's state the reply says in full: asked as a first message, the
    # reply takes its place in the welcome rather than saying the same facts twice.
    instead_of: str | None = None
    # The reply said instead while the person waits for an adviser, where the usual one
    # speaks of something the bot does only in a journey ("I'm here", "type adviser").
    waiting: str | None = None
    # The patterns as one alternation: one search a message, not one a pattern (every
    # message of a journey is checked; this took 74 µs a message against 42).
    either: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        joined = "|".join(f"(?:{p.pattern})" for p in self.patterns)
        object.__setattr__(self, "either", re.compile(joined))

    def matches(self, said: str) -> bool:
        return self.either.search(said) is not None


@dataclass
class Content:
    """Messages keyed by stable ids, each with an `en` and a `cy` version, keyword lists,
    guardrails and the signposting directory."""

    messages: dict[str, dict[str, str]]
    keywords: dict[str, dict[str, tuple[str, ...]]]
    version: str
    root: Path
    extra: dict[str, Any] = field(default_factory=dict)
    guardrails: tuple[Guardrail, ...] = ()
    directory: Directory | None = None
    sources: dict[str, str] = field(default_factory=dict)  # message id -> file name
    # all_words() of each list, worked out once: it is asked on every message.
    _every_language: dict[str, tuple[str, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )
    # The emergency guidance's texts in every language, worked out once (is_guidance).
    _guidance: frozenset[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, root: Path = DEFAULT_ROOT) -> Content:
        digest = hashlib.sha256()
        messages, sources = _load_messages(root, digest)
        keywords = _load_keywords(root, digest)
        guardrails = _load_guardrails(root, digest, messages)
        for key, versions in messages.items():
            where = f"{sources[key]}: {key}"
            for lang, text in versions.items():
                _check_phone_numbers(f"{where} ({lang})", text)
        _check_wording(root, digest, messages, sources)
        directory = None
        if (root / "directory").is_dir():
            from helpline.directory import Directory  # the directory imports normalise from here

            directory = Directory.load(root)
        return cls(
            messages,
            keywords,
            digest.hexdigest()[:12],
            root,
            guardrails=guardrails,
            directory=directory,
            sources=sources,
        )

    def has(self, key: str) -> bool:
        return key in self.messages

    def text(self, key: str, language: str, **params: Any) -> str:
        try:
            template = self.messages[key][language if language in LANGUAGES else "en"]
        except KeyError:
            raise ContentError(f"no message with id {key!r}") from None
        return template.format(**params) if params else template

    def when(self, at: datetime, language: str) -> str:
        """A moment as people in England and Wales read it, in UK time and in their
        language: "Monday 30 November, 09:00" / "Dydd Llun 30 Tachwedd, 09:00"."""
        local = at.astimezone(UK_TIME)
        days = self.text("calendar.days", language).split(",")
        months = self.text("calendar.months", language).split(",")
        return self.text(
            "calendar.when",
            language,
            day=days[local.weekday()].strip(),
            date=local.day,
            month=months[local.month - 1].strip(),
            time=local.strftime("%H:%M"),
        )

    def words(self, name: str, language: str) -> tuple[str, ...]:
        """Keywords (normalised) for a command or intent in one language."""
        try:
            return self.keywords[name][language]
        except KeyError:
            raise ContentError(f"keywords.yaml: no keyword list {name!r}") from None

    def is_exactly(self, name: str, said: str) -> bool:
        """Whether the whole (normalised) message is one of a keyword list's entries, in any
        language; False for a list this content does not have."""
        return name in self.keywords and said in self.all_words(name)

    def all_words(self, name: str) -> tuple[str, ...]:
        """Keywords for a command in every language (people switch languages mid-sentence)."""
        found = self._every_language.get(name)
        if found is None:
            found = tuple(w for lang in LANGUAGES for w in self.words(name, lang))
            self._every_language[name] = found
        return found

    def is_guidance(self, text: str) -> bool:
        """Whether a reply is the emergency guidance (danger, suicide, a child at risk), in
        any language: it goes out even in quiet hours, and a web page shows it apart."""
        if self._guidance is None:
            self._guidance = frozenset(
                self.text(key, language) for key in GUIDANCE for language in LANGUAGES
            )
        return text in self._guidance

    def written_in_welsh(self, text: str) -> bool:
        """Whether a message has two or more words only Welsh has (keywords: welsh_words),
        or one and one Welsh word English also has (welsh_words_weak: "mae", "plant")."""
        if "welsh_words" not in self.keywords:
            return False
        said = set(normalise(text).split())
        strong = len(said & set(self.all_words("welsh_words")))
        weak = "welsh_words_weak" in self.keywords and bool(
            said & set(self.all_words("welsh_words_weak"))
        )
        return strong >= 2 or (strong == 1 and weak)

    def guardrail(self, text: str) -> Guardrail | None:
        """The first guardrail a message trips, in file order, or None."""
        said = normalise(text)
        for rail in self.guardrails:
            if rail.matches(said):
                return rail
        return None


def _load_messages(root: Path, digest: Any) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    messages: dict[str, dict[str, str]] = {}
    sources: dict[str, str] = {}
    for path in sorted((root / "messages").glob("*.yaml")):
        digest.update(path.read_bytes())
        data = _read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ContentError(f"{path.name}: expected a mapping of message ids")
        for key, versions in data.items():
            where = f"{path.name}: {key}"
            if key in messages:
                raise ContentError(f"{where}: defined twice (also in {sources[str(key)]})")
            messages[str(key)] = _check_message(where, versions)
            sources[str(key)] = path.name
    return messages, sources


def _load_keywords(root: Path, digest: Any) -> dict[str, dict[str, tuple[str, ...]]]:
    keywords: dict[str, dict[str, tuple[str, ...]]] = {}
    kw_path = root / "keywords.yaml"
    if not kw_path.exists():
        return keywords
    digest.update(kw_path.read_bytes())
    for name, langs in (_read_yaml(kw_path) or {}).items():
        where = f"{kw_path.name}: {name}"
        if not isinstance(langs, dict) or any(
            not isinstance(langs.get(lang), list) or not langs[lang] for lang in LANGUAGES
        ):
            raise ContentError(f"{where}: needs a list for each of {', '.join(LANGUAGES)}")
        keywords[str(name)] = {
            lang: tuple(normalise(str(w)) for w in langs[lang]) for lang in LANGUAGES
        }
    return keywords


def _load_guardrails(
    root: Path, digest: Any, messages: dict[str, dict[str, str]]
) -> tuple[Guardrail, ...]:
    path = root / "guardrails.yaml"
    if not path.exists():
        return ()
    digest.update(path.read_bytes())
    rails: list[Guardrail] = []
    for name, entry in (_read_yaml(path) or {}).items():
        where = f"{path.name}: {name}"
        if not isinstance(entry, dict):
            raise ContentError(f"{where}: expected reply and patterns for en and cy")
        reply = entry.get("reply")
        if not isinstance(reply, str) or reply not in messages:
            raise ContentError(f"{where}: reply {reply!r} is not a message id")
        compiled: list[re.Pattern[str]] = []
        for lang in LANGUAGES:
            patterns = entry.get(lang)
            if not isinstance(patterns, list) or not patterns:
                raise ContentError(f"{where}: needs a list of {lang} patterns")
            for pattern in patterns:
                try:
                    compiled.append(re.compile(str(pattern)))
                except re.error as exc:
                    raise ContentError(f"{where}: {lang} pattern {pattern!r}: {exc}") from exc
        flag = entry.get("flag", True)
        if not isinstance(flag, bool):
            raise ContentError(f"{where}: flag must be true or false")
        instead_of = entry.get("instead_of")
        known = isinstance(instead_of, str) and instead_of in messages
        if instead_of is not None and not known:
            raise ContentError(f"{where}: instead_of {instead_of!r} is not a message id")
        waiting = entry.get("waiting")
        if waiting is not None and not (isinstance(waiting, str) and waiting in messages):
            raise ContentError(f"{where}: waiting {waiting!r} is not a message id")
        rails.append(Guardrail(str(name), reply, tuple(compiled), flag, instead_of, waiting))
    return tuple(rails)


def _check_phone_numbers(where: str, text: str) -> None:
    """Every number in a message must be one a person can actually call or text."""
    from helpline.directory import normalise_uk_phone

    for match in _PHONE.finditer(text):
        if len(re.sub(r"\D", "", match.group(0))) < 6:
            continue  # a time or a count ("06:00", "0 to 5"), not a number to dial
        groups = re.split(r"[ -]", match.group(0))
        # "0808 2000 247 24 hours" reads as one run of digits: try the longest valid prefix.
        for end in range(len(groups), 0, -1):
            try:
                normalise_uk_phone(" ".join(groups[:end]))
                break
            except ValueError:
                continue
        else:
            raise ContentError(f"{where}: {match.group(0)!r} is not a valid UK phone number")


def _check_wording(
    root: Path, digest: Any, messages: dict[str, dict[str, str]], sources: dict[str, str]
) -> None:
    """Our own words must never minimise or excuse abuse or blame the person harmed."""
    path = root / "wording.yaml"
    if not path.exists():
        return
    digest.update(path.read_bytes())
    data = _read_yaml(path) or {}
    banned = data.get("never_say") if isinstance(data, dict) else None
    if not isinstance(banned, dict) or any(not isinstance(banned.get(g), list) for g in LANGUAGES):
        raise ContentError(f"{path.name}: never_say needs a list for each of {LANGUAGES}")
    phrases = {lang: [(p, f" {normalise(str(p))} ") for p in banned[lang]] for lang in LANGUAGES}
    for key, versions in messages.items():
        for lang, text in versions.items():
            padded = f" {normalise(text)} "
            for phrase, said in phrases[lang]:
                if said in padded:
                    raise ContentError(
                        f"{sources[key]}: {key}: the {lang} version says {phrase!r}, wording "
                        "that minimises or excuses abuse or blames the person harmed"
                    )


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
