"""The signposting directory: national services, local programmes and the area lookup.

Loaded from content/directory/*.yaml and checked at start: a broken entry stops the service
with a ContentError naming the file and the entry, rather than sending someone a wrong number.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

from rapidfuzz import fuzz, process

from helpline.content import normalise
from helpline.domain import LANGUAGES
from helpline.errors import ContentError, NotFound
from helpline.yamlfile import read_yaml

AUDIENCES = ("self", "family", "practitioner", "victim", "child", "anyone")
NATIONS = ("england", "wales")
CHANNELS = ("phone", "text", "chat", "email", "web", "form", "bsl")
DIALLED = ("phone", "text")  # channels whose value must be a UK number
TOPICS = (
    "domestic-abuse", "suicide", "mental-health", "child-safety", "child-sexual-abuse",
    "emergency", "police",
)  # fmt: skip
SERVICE_LANGUAGES = ("en", "cy", "bsl")

# Typos are tolerated down to this rapidfuzz ratio (0-100); below it we ask again.
FUZZY_CUTOFF = 80.0
# If two different forces score within this margin, the answer is ambiguous: ask again.
FUZZY_MARGIN = 4.0
# Words people add that say nothing about the place ("Cardiff council", "Gwent police").
_FILLER = frozenset(
    {"the", "police", "constabulary", "heddlu", "council", "cyngor", "borough", "area", "force"}
)
# In a sentence, only words this long are matched loosely, and more strictly than a
# one-word answer ("I live in Swansee"), so "hart" is not found in "my heart".
SENTENCE_FUZZY_MIN = 6
SENTENCE_FUZZY_CUTOFF = 85.0
# A place is looked for loosely only among a message's first words (exactly, in all of it): a
# typo of a town deep in a long story is likelier an ordinary word than a place, and reading
# all of a 4,000-character message so held the event loop for a third of a second.
SENTENCE_FUZZY_WORDS = 40
# A short name is one letter from many places ("Barrow" and Harrow, "Derry" and Derby): up to
# this length a typo is matched only to a name with the same first letter.
SHORT_NAME = 7
# Words that may stand between a town and the region said with it ("Newport in Shropshire",
# "Newport on the Isle of Wight").
_BETWEEN = frozenset({"in", "on", "yn", "ym", "yng"})
# Words that say the place is near another ("Newport, near Telford"): that place is never
# taken for where the person is ("Wrexham, near Chester" is Wrexham), but it may still tell
# apart towns of the same name ("Newcastle near Stoke" is Newcastle-under-Lyme).
_NEAR = frozenset({"near", "nr", "ger"})


# --------------------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class Bilingual:
    """One piece of text in English and Welsh."""

    en: str
    cy: str

    def get(self, lang: str) -> str:
        return self.cy if lang == "cy" else self.en


@dataclass(frozen=True, slots=True)
class Contact:
    """One way to reach a service: a number to call or text, a chat page, an email address."""

    channel: str
    value: str
    keyword: str | None = None  # what to text, e.g. SHOUT
    cost: Bilingual | None = None
    note: Bilingual | None = None
    needs_check: bool = False

    @property
    def dial(self) -> str | None:
        """The number with spaces removed, for tel:/sms: links; None for other channels."""
        return normalise_uk_phone(self.value) if self.channel in DIALLED else None


@dataclass(frozen=True, slots=True)
class ServiceHours:
    text: Bilingual
    always: bool
    needs_check: bool = False


@dataclass(frozen=True, slots=True)
class Service:
    """A national service the helpline signposts to."""

    id: str
    names: Bilingual
    who_for: Bilingual
    audience: tuple[str, ...]
    topics: tuple[str, ...]
    nations: tuple[str, ...]
    area: str
    contacts: tuple[Contact, ...]
    hours: ServiceHours
    languages: tuple[str, ...]
    self_referral: bool
    referral: Bilingual
    confidentiality: Bilingual | None
    source: str
    verified_on: date
    review_due: date
    needs_check: bool = False  # some value in the entry is still to be confirmed

    def name(self, lang: str) -> str:
        return self.names.get(lang)


@dataclass(frozen=True, slots=True)
class Programme:
    """A local behaviour-change programme (DAPP) in one or more police force areas."""

    id: str
    names: Bilingual
    provider: str | None
    police_force_areas: tuple[str, ...]
    local_authorities: tuple[str, ...]
    offer: Bilingual
    eligibility: Bilingual
    self_referral: bool
    partner_contact: bool
    partner_contact_note: Bilingual | None
    cost: Bilingual
    referral_route: Bilingual
    accepts_referrals_via_helpline: bool
    contacts: tuple[Contact, ...]
    placeholder: bool
    needs_check: bool
    notes: str | None
    source: str | None
    verified_on: date | None
    review_due: date

    def name(self, lang: str) -> str:
        return self.names.get(lang)


@dataclass(frozen=True, slots=True)
class LocalAuthority:
    names: Bilingual
    aliases: tuple[str, ...] = ()
    postcode_districts: tuple[str, ...] = ()

    def name(self, lang: str) -> str:
        return self.names.get(lang)


@dataclass(frozen=True, slots=True)
class PoliceForceArea:
    id: str
    names: Bilingual
    nation: str
    aliases: tuple[str, ...]
    local_authorities: tuple[LocalAuthority, ...]
    postcode_areas: tuple[str, ...]
    postcode_districts: tuple[str, ...]
    postcode_districts_partly: tuple[str, ...]

    def name(self, lang: str) -> str:
        return self.names.get(lang)

    def local_authority(self, name_en: str) -> LocalAuthority:
        for la in self.local_authorities:
            if la.names.en == name_en:
                return la
        raise NotFound(f"no local authority {name_en!r} in {self.id}")


@dataclass(frozen=True, slots=True)
class AreaMatch:
    """Where someone is, as far as the directory needs to know: a force area, maybe a council.

    `local_authority` is the council's English name (a stable key; see PoliceForceArea for
    its Welsh name). `also_possible` lists other forces when a postcode district straddles a
    boundary, so a flow can ask which town or council rather than guess.
    """

    police_force_area: str
    local_authority: str | None
    nation: str
    # postcode_district | postcode_area | local_authority | police_force_area | stored, or
    # edge: another force area a postcode district is partly in, which council not known
    matched_by: str
    also_possible: tuple[str, ...] = ()


# --------------------------------------------------------------------------- checks

_MOBILE = re.compile(r"07[1-57-9]\d{8}")
_FREEPHONE = re.compile(r"0800\d{6,7}|0808\d{7}")
_GEOGRAPHIC = re.compile(r"0[123]\d{8,9}")
_HELPLINE_116 = re.compile(r"116\d{3}")
_SHORT_CODE = re.compile(r"[6-8]\d{4}")
_SPECIAL = frozenset({"999", "112", "101", "111", "08001111"})  # 0800 1111 is Childline's


def normalise_uk_phone(value: str) -> str:
    """A UK number a person can call or text, spaces removed; ValueError if it is not one.

    Accepts 999/112/101/111, 116 xxx helplines, 0800/0808 freephone, 07 mobiles,
    01/02/03 landlines and five-digit SMS short codes such as 85258, in national form or
    after +44, 0044 or 44 (with or without "(0)"). Premium and
    other chargeable ranges (09, 084, 087) are refused on purpose.
    """
    digits = re.sub(r"[\s\-()./]", "", str(value))
    # International forms people type: +44, 0044 or 44, often with the national 0 kept in
    # brackets ("+44 (0)7700 900123"). No UK number in national form starts with 44.
    for prefix in ("+44", "0044", "44"):
        if digits.startswith(prefix):
            rest = digits[len(prefix) :]
            digits = rest if rest.startswith("0") else "0" + rest
            break
    if not digits.isdigit():
        raise ValueError(f"{value!r} is not a UK phone number")
    if digits in _SPECIAL or any(
        p.fullmatch(digits) for p in (_MOBILE, _FREEPHONE, _GEOGRAPHIC, _HELPLINE_116, _SHORT_CODE)
    ):
        return digits
    raise ValueError(f"{value!r} is not a UK phone number we can give out")


def normalise_uk_callback_number(value: str) -> str:
    """A number an adviser may call back: a UK mobile or landline only, spaces removed.

    Stricter than normalise_uk_phone: 999, 101, helplines and short codes are refused, so a
    mistyped or mischievous answer never sends an adviser's call to the emergency services.
    """
    digits = normalise_uk_phone(value)
    if _MOBILE.fullmatch(digits) or _GEOGRAPHIC.fullmatch(digits):
        return digits
    raise ValueError(f"{value!r} is not a mobile or landline number")


_DISTRICT = re.compile(r"[A-Z]{1,2}\d[A-Z\d]?")
_RANGE = re.compile(r"([A-Z]{1,2})(\d{1,2})-([A-Z]{1,2})(\d{1,2})")


def _expand_districts(items: Iterable[Any], where: str) -> tuple[str, ...]:
    out: list[str] = []
    for item in items:
        text = str(item).strip().upper()
        m = _RANGE.fullmatch(text)
        if m:
            letters, lo, letters2, hi = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
            if letters != letters2 or lo > hi:
                raise ContentError(f"{where}: bad postcode district range {text!r}")
            out.extend(f"{letters}{n}" for n in range(lo, hi + 1))
        elif _DISTRICT.fullmatch(text):
            out.append(text)
        else:
            raise ContentError(f"{where}: {text!r} is not a postcode district")
    return tuple(out)


class _Entry:
    """Reads one YAML entry, naming file, entry and field in every error."""

    def __init__(self, file: str, data: Any, allowed: set[str], index: int) -> None:
        if not isinstance(data, dict):
            raise ContentError(f"{file}: entry {index + 1}: expected a mapping")
        self.file = file
        self.id = str(data.get("id") or f"entry {index + 1}")
        self.data = data
        unknown = set(data) - allowed
        if unknown:
            self.fail(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")

    def fail(self, problem: str) -> NoReturn:
        raise ContentError(f"{self.file}: {self.id}: {problem}")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def string(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{key} is missing or empty")
        return value.strip()

    def opt_string(self, key: str) -> str | None:
        return self.string(key) if self.has(key) else None

    def flag(self, key: str, default: bool | None = None) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"{key} must be true or false")
        return value

    def items(self, key: str, allowed: Iterable[str] | None = None) -> tuple[str, ...]:
        value = self.data.get(key)
        if not isinstance(value, list) or not value:
            self.fail(f"{key} must be a non-empty list")
        items = tuple(str(v) for v in value)
        if allowed is not None:
            bad = [v for v in items if v not in set(allowed)]
            if bad:
                self.fail(f"{key}: unknown value(s) {', '.join(bad)}")
        return items

    def text(self, key: str, value: Any = None, extra: frozenset[str] = frozenset()) -> Bilingual:
        value = self.data.get(key) if value is None else value
        if not isinstance(value, dict):
            self.fail(f"{key} needs an en and a cy version")
        unknown = set(value) - set(LANGUAGES) - extra
        if unknown:
            self.fail(f"{key}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        for lang in LANGUAGES:
            v = value.get(lang)
            if not isinstance(v, str) or not v.strip():
                self.fail(f"{key}: the {lang} version is missing or empty")
        return Bilingual(en=value["en"].strip(), cy=value["cy"].strip())

    def opt_text(self, key: str, extra: frozenset[str] = frozenset()) -> Bilingual | None:
        return self.text(key, extra=extra) if self.has(key) else None

    def day(self, key: str, *, nullable: bool = False) -> date | None:
        if key not in self.data:
            self.fail(f"{key} is missing")
        value = self.data[key]
        if value is None and nullable:
            return None
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = date.fromisoformat(value)
        if not isinstance(value, date):
            self.fail(f"{key} must be a date (YYYY-MM-DD)")
        return value

    def contacts(self, key: str = "contacts") -> tuple[Contact, ...]:
        out: list[Contact] = []
        allowed = {"channel", "value", "keyword", "cost", "note", "needs_check"}
        for n, raw in enumerate(self.data.get(key) or []):
            where = f"{key}[{n + 1}]"
            if not isinstance(raw, dict) or set(raw) - allowed:
                self.fail(f"{where}: expected channel and value (and keyword, cost, note)")
            channel, value = raw.get("channel"), str(raw.get("value") or "").strip()
            if channel not in CHANNELS:
                self.fail(f"{where}: unknown channel {channel!r}")
            if not value:
                self.fail(f"{where}: value is missing")
            if channel in DIALLED:
                try:
                    normalise_uk_phone(value)
                except ValueError as exc:
                    self.fail(f"{where}: {exc}")
            elif channel == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z.]+", value):
                self.fail(f"{where}: {value!r} is not an email address")
            elif channel not in ("email",) + DIALLED and not value.startswith(
                ("https://", "http://")
            ):
                self.fail(f"{where}: {value!r} is not a web address")
            out.append(
                Contact(
                    channel=channel,
                    value=value,
                    keyword=raw.get("keyword"),
                    cost=self.text(f"{where}.cost", raw["cost"]) if raw.get("cost") else None,
                    note=self.text(f"{where}.note", raw["note"]) if raw.get("note") else None,
                    needs_check=bool(raw.get("needs_check", False)),
                )
            )
        return tuple(out)


def _read_doc(path: Path) -> dict[str, Any]:
    where = f"directory/{path.name}"
    data = read_yaml(path, where)
    if not isinstance(data, dict):
        raise ContentError(f"{where}: expected a mapping at the top")
    return data


def _word_set(words: Any, where: str) -> frozenset[str]:
    """A list of words from a content file, as keys; a clear error for anything else."""
    if not isinstance(words, list):
        raise ContentError(f"{where}: expected a list of words")
    bad = [w for w in words if not isinstance(w, str) or not w.strip()]
    if bad:
        raise ContentError(f"{where}: {bad[0]!r} is not a word")
    return frozenset(_key(w) for w in words)


def _ordinary_words(path: Path) -> frozenset[str]:
    """The ordinary words never taken for a typo of a place; none if the file is missing (a
    content folder copied before it was added still loads, matching as loosely as before)."""
    if not path.exists():
        return frozenset()
    return _word_set(_read(path, "words"), f"directory/{path.name}: words")


def still_typos(areas_doc: Mapping[str, Any]) -> frozenset[str]:
    """Ordinary words kept as typos of a place (areas.yaml, still_typos: "crew" is Crewe)."""
    return _word_set(areas_doc.get("still_typos") or [], "directory/areas.yaml: still_typos")


def _read(path: Path, key: str, doc: dict[str, Any] | None = None) -> list[Any]:
    data = _read_doc(path) if doc is None else doc
    if not isinstance(data.get(key), list):
        raise ContentError(f"directory/{path.name}: expected a list under {key!r}")
    return list(data[key])


def _unique(file: str, ids: Iterable[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ContentError(f"{file}: {i}: id used twice")
        seen.add(i)


# --------------------------------------------------------------------------- parsing

_SERVICE_FIELDS = {
    "id", "name", "who_for", "audience", "topics", "nations", "area", "contacts", "hours",
    "languages", "referral", "confidentiality", "source", "verified_on", "review_due",
    "needs_check",
}  # fmt: skip
_PROGRAMME_FIELDS = {
    "id", "name", "provider", "police_force_areas", "local_authorities", "offer",
    "eligibility", "self_referral", "partner_contact", "partner_contact_note", "cost",
    "referral_route", "accepts_referrals_via_helpline", "contacts", "placeholder",
    "needs_check", "notes", "source", "verified_on", "review_due",
}  # fmt: skip
_AREA_FIELDS = {
    "id", "name", "nation", "aliases", "postcode_areas", "postcode_districts",
    "postcode_districts_partly", "local_authorities",
}  # fmt: skip


def _parse_service(raw: Any, n: int) -> Service:
    e = _Entry("directory/services.yaml", raw, _SERVICE_FIELDS, n)
    hours_raw = raw.get("hours")
    hours = e.text("hours", extra=frozenset({"always", "needs_check"}))
    referral_raw = raw.get("referral") or {}
    referral = e.text("referral", extra=frozenset({"self_referral"}))
    conf = e.opt_text("confidentiality", extra=frozenset({"needs_check"}))
    contacts = e.contacts()
    if not contacts:
        e.fail("contacts: at least one way to reach the service is needed")
    flags = [
        bool(raw.get("needs_check")),
        bool(hours_raw.get("needs_check")),
        bool(conf and raw["confidentiality"].get("needs_check")),
        *(c.needs_check for c in contacts),
    ]
    return Service(
        id=e.string("id"),
        names=e.text("name"),
        who_for=e.text("who_for"),
        audience=e.items("audience", AUDIENCES),
        topics=e.items("topics", TOPICS),
        nations=e.items("nations", NATIONS),
        area=e.string("area"),
        contacts=contacts,
        hours=ServiceHours(
            hours, bool(hours_raw.get("always", False)), bool(hours_raw.get("needs_check"))
        ),
        languages=e.items("languages", SERVICE_LANGUAGES),
        self_referral=bool(referral_raw.get("self_referral", True)),
        referral=referral,
        confidentiality=conf,
        source=e.string("source"),
        verified_on=e.day("verified_on"),  # type: ignore[arg-type]
        review_due=e.day("review_due"),  # type: ignore[arg-type]
        needs_check=any(flags),
    )


def _parse_programme(raw: Any, n: int, forces: Mapping[str, PoliceForceArea]) -> Programme:
    e = _Entry("directory/programmes.yaml", raw, _PROGRAMME_FIELDS, n)
    areas = e.items("police_force_areas")
    for a in areas:
        if a not in forces:
            e.fail(f"police_force_areas: unknown police force area {a!r}")
    las = tuple(str(x) for x in raw.get("local_authorities") or ())
    known_las = {la.names.en for a in areas for la in forces[a].local_authorities}
    for la in las:
        if la not in known_las:
            e.fail(f"local_authorities: {la!r} is not a council in {', '.join(areas)}")
    placeholder = e.flag("placeholder", False)
    self_referral = e.flag("self_referral")
    partner_contact = e.flag("partner_contact")
    note = e.opt_text("partner_contact_note")
    contacts = e.contacts()
    if placeholder and any(c.channel in DIALLED for c in contacts):
        e.fail("a placeholder may not carry a phone number (confirm it first)")
    if self_referral and not (partner_contact and note):
        e.fail("a self-referral programme needs partner_contact: true and partner_contact_note")
    if e.string("id") == "drive" and self_referral:
        e.fail("Drive is not open to self-referral")
    verified = e.day("verified_on", nullable=placeholder)
    if verified is None and not placeholder:
        e.fail("verified_on is missing")
    return Programme(
        id=e.string("id"),
        names=e.text("name"),
        provider=e.opt_string("provider"),
        police_force_areas=areas,
        local_authorities=las,
        offer=e.text("offer"),
        eligibility=e.text("eligibility"),
        self_referral=self_referral,
        partner_contact=partner_contact,
        partner_contact_note=note,
        cost=e.text("cost"),
        referral_route=e.text("referral_route"),
        accepts_referrals_via_helpline=e.flag("accepts_referrals_via_helpline"),
        contacts=contacts,
        placeholder=placeholder,
        needs_check=e.flag("needs_check", False) or any(c.needs_check for c in contacts),
        notes=e.opt_string("notes"),
        source=e.opt_string("source"),
        verified_on=verified,
        review_due=e.day("review_due"),  # type: ignore[arg-type]
    )


def _parse_force(raw: Any, n: int) -> PoliceForceArea:
    e = _Entry("directory/areas.yaml", raw, _AREA_FIELDS, n)
    nation = e.string("nation")
    if nation not in NATIONS:
        e.fail(f"nation must be one of {', '.join(NATIONS)}")
    las: list[LocalAuthority] = []
    for i, item in enumerate(raw.get("local_authorities") or []):
        where = f"local_authorities[{i + 1}]"
        if isinstance(item, str):
            if nation == "wales":
                e.fail(f"{where}: a Welsh council needs its name in English and Welsh")
            las.append(LocalAuthority(Bilingual(item, item)))
            continue
        if not isinstance(item, dict) or set(item) - {"name", "aliases", "postcode_districts"}:
            e.fail(f"{where}: expected a name, or name with aliases and postcode_districts")
        las.append(
            LocalAuthority(
                names=e.text(f"{where}.name", item.get("name") or {}),
                aliases=tuple(str(a) for a in item.get("aliases") or ()),
                postcode_districts=_expand_districts(
                    item.get("postcode_districts") or (), f"{e.file}: {e.id}: {where}"
                ),
            )
        )
    if not las:
        e.fail("local_authorities: at least one council is needed")
    where = f"{e.file}: {e.id}"
    return PoliceForceArea(
        id=e.string("id"),
        names=e.text("name"),
        nation=nation,
        aliases=tuple(str(a) for a in raw.get("aliases") or ()),
        local_authorities=tuple(las),
        postcode_areas=tuple(str(a).upper() for a in raw.get("postcode_areas") or ()),
        postcode_districts=_expand_districts(raw.get("postcode_districts") or (), where),
        postcode_districts_partly=_expand_districts(
            raw.get("postcode_districts_partly") or (), where
        ),
    )


# --------------------------------------------------------------------------- lookup


def _key(text: str) -> str:
    """Normalised, filler words dropped, spaces removed: 'Tor-faen' == 'Torfaen'."""
    return "".join(w for w in normalise(text).split() if w not in _FILLER)


_FULL_POSTCODE = re.compile(r"([A-Z]{1,2}\d[A-Z\d]?) ?(\d[A-Z]{2})")
_WITH_SECTOR = re.compile(r"([A-Z]{1,2}\d[A-Z\d]?) ?(\d)")
_IN_SENTENCE = re.compile(r"\b([A-Z]{1,2}\d[A-Z\d]?) ?(\d[A-Z]{2})\b")


def outward_code(query: str) -> str | None:
    """The postcode district in what someone typed; the inward part is thrown away.

    "CF10 3AT", "cf103at", "CF10 3", "cf103" and "CF10" all give "CF10". Without a space a
    string that is itself a district is read as one ("CH64" is CH64, not CH6 sector 4).
    """
    text = " ".join(query.upper().split())
    for pattern in (_FULL_POSTCODE, _WITH_SECTOR):
        if " " in text and (m := pattern.fullmatch(text)):
            return m.group(1)
    compact = text.replace(" ", "")
    if m := _FULL_POSTCODE.fullmatch(compact):
        return m.group(1)
    if _DISTRICT.fullmatch(compact):
        return compact
    if m := _WITH_SECTOR.fullmatch(compact):
        return m.group(1)
    m = _IN_SENTENCE.search(text)  # a full postcode inside a sentence: "I'm in NP20 1AB"
    return m.group(1) if m else None


# Welsh nasal mutation after "yn" ("in"): yng Nghaerdydd, ym Mangor, yn Nhorfaen. Longest
# first, so "ngh" is read before "ng".
_NASAL = (("ngh", "c"), ("mh", "p"), ("nh", "t"), ("ng", "g"), ("m", "b"), ("n", "d"))
_AFTER_YN = re.compile(r"\b(yng|ym|yn) (\w+)")


def unmutated(text: str) -> str:
    """Normalised text with a place name after "yn" in its own form ("yng nghaerdydd" ->
    "yng caerdydd"), or the text as it was if nothing looks mutated."""

    def radical(m: re.Match[str]) -> str:
        word = m.group(2)
        for mutated, plain in _NASAL:
            if word.startswith(mutated) and len(word) > len(mutated) + 2:
                return f"{m.group(1)} {plain}{word[len(mutated) :]}"
        return m.group(0)

    said = normalise(text)
    changed = _AFTER_YN.sub(radical, said)
    return changed if changed != said else text


# An apostrophe inside a word ("I'm", "King's Lynn"): taken out, so "I'm on" is not "i m on",
# whose "m on" would be read as Môn (Anglesey).
_IN_WORD_APOSTROPHE = re.compile(r"(?<=\w)['\u2019](?=\w)")


def _words(query: str) -> list[str]:
    """The words of an answer, normalised, less fillers ("I live in"), an apostrophe inside a
    word taken out first."""
    return [w for w in normalise(_IN_WORD_APOSTROPHE.sub("", query)).split() if w not in _FILLER]


def _word_runs(words: list[str], longest: int = 4) -> Iterator[str]:
    """Runs of up to `longest` consecutive words, joined without spaces, longest first."""
    for run in _runs(words, longest):
        yield "".join(run)


def _runs(words: list[str], longest: int = 4) -> Iterator[list[str]]:
    """Runs of up to `longest` consecutive words, fillers left out, longest first."""
    words = [w for w in words if w not in _FILLER]
    for size in range(min(longest, len(words)), 0, -1):
        for start in range(len(words) - size + 1):
            yield words[start : start + size]


def _name_words(name: str) -> int:
    """How many words a place's name has as people write it ("Stoke-on-Trent" has three)."""
    return len([w for w in normalise(name).split() if w not in _FILLER])


def _postcode_area(district: str) -> str:
    return re.match(r"[A-Z]+", district).group(0)  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class _Place:
    force: str
    local_authority: str | None


@dataclass(frozen=True, slots=True)
class _Mention:
    """A name said in an answer, and which of its words (filler left out) it spans."""

    key: str
    start: int
    end: int


def _said_with(words: list[str], first: _Mention, then: _Mention) -> str | None:
    """How `then` is said right after `first`: as its region ("Newport, Shropshire",
    "Newport in Shropshire"), as a place it is near ("Newport, near Telford"), or None if
    not right after it."""
    between = words[first.end : then.start]
    if then.start < first.end or not all(w in _BETWEEN or w in _NEAR for w in between):
        return None
    return "near" if any(w in _NEAR for w in between) else "region"


@dataclass
class Directory:
    """Services, programmes and areas, checked, with the lookups flows need."""

    services: tuple[Service, ...]
    programmes: tuple[Programme, ...]
    forces: dict[str, PoliceForceArea]
    _by_district: dict[str, _Place] = field(default_factory=dict, repr=False)
    _partly: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _by_area: dict[str, str] = field(default_factory=dict, repr=False)
    _names: dict[str, _Place] = field(default_factory=dict, repr=False)
    # Town names (more precise than a council or force), and those shared by several places,
    # each with its places, the one taken when nothing else is said first.
    _towns: set[str] = field(default_factory=set, repr=False)
    _shared: dict[str, tuple[_Place, ...]] = field(default_factory=dict, repr=False)
    # Towns found only as said, never as a typo: a slip of an ordinary word would be taken
    # for them ("consent" for Consett, "I am able" for Amble).
    _exact_only: set[str] = field(default_factory=set, repr=False)
    # Regions said after a town ("Newport, South Wales") -> the forces they reach into.
    _regions: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    # Names of the countries outside England and Wales ("Bangor, Northern Ireland"), and the
    # towns here with a namesake in each (a country said right after one of them is abroad).
    _countries: dict[str, Bilingual] = field(default_factory=dict, repr=False)
    _namesakes: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    # Councils and police force areas by their own names, not an alias or abbreviation: said
    # with a town none of whose namesakes is there, they may be where an unlisted one is
    # ("Berwick, East Sussex"); "Newport, Mon" (Monmouthshire, not Môn) is still Newport.
    _full_names: set[str] = field(default_factory=set, repr=False)
    # Outside England and Wales: postcode areas and names -> the place's name (Scotland...).
    _elsewhere_areas: dict[str, Bilingual] = field(default_factory=dict, repr=False)
    _elsewhere_names: dict[str, Bilingual] = field(default_factory=dict, repr=False)
    # Districts mainly outside England and Wales with a part here (TD12: Coldstream, and
    # Cornhill-on-Tweed in England) -> the place outside.
    _border: dict[str, Bilingual] = field(default_factory=dict, repr=False)
    # Answers to "where are you?" that are not a place ("rather not say", "homeless").
    not_a_place: tuple[str, ...] = ()
    # The most words each name is written with: a typo joining more words than that is
    # words run together, not the place ("help son" is not Helston).
    _name_words: dict[str, int] = field(default_factory=dict, repr=False)
    # Ordinary words a letter or two from a place (directory/ordinary_words.yaml): never
    # taken for a typo of one ("near" is not Newark, "baby" not Blaby).
    _ordinary: frozenset[str] = frozenset()
    # The names a typo may be of (not exact_only), made at load: made on every loose lookup,
    # it was a tenth of a millisecond.
    _typo_names: list[str] = field(default_factory=list, repr=False)

    @classmethod
    def load(cls, root: Path) -> Directory:
        """Read content/directory/ under `root` (the content folder) and check every entry."""
        folder = root / "directory"
        areas_doc = _read_doc(folder / "areas.yaml")
        forces = [
            _parse_force(r, n)
            for n, r in enumerate(_read(folder / "areas.yaml", "police_force_areas", areas_doc))
        ]
        _unique("directory/areas.yaml", (f.id for f in forces))
        by_id = {f.id: f for f in forces}
        services = tuple(
            _parse_service(r, n) for n, r in enumerate(_read(folder / "services.yaml", "services"))
        )
        _unique("directory/services.yaml", (s.id for s in services))
        programmes = tuple(
            _parse_programme(r, n, by_id)
            for n, r in enumerate(_read(folder / "programmes.yaml", "programmes"))
        )
        _unique("directory/programmes.yaml", (p.id for p in programmes))
        directory = cls(services, programmes, by_id)
        directory._index(areas_doc.get("towns") or {})
        directory._index_shared_towns(areas_doc.get("shared_towns") or {})
        directory._index_exact_only(areas_doc.get("exact_only") or ())
        directory._index_regions(areas_doc.get("regions") or ())
        directory._index_elsewhere(areas_doc)
        directory._index_partly()
        directory._ordinary = _ordinary_words(folder / "ordinary_words.yaml") - still_typos(
            areas_doc
        )
        directory._typo_names = [n for n in directory._names if n not in directory._exact_only]
        return directory

    def _index_elsewhere(self, doc: Mapping[str, Any]) -> None:
        file = "directory/areas.yaml"
        for n, raw in enumerate(doc.get("elsewhere") or ()):
            e = _Entry(file, raw, {"name", "postcode_areas", "names", "namesakes"}, n)
            name = e.text("name")
            self._countries.update({_key(name.en): name, _key(name.cy): name})
            listed = e.items("namesakes") if e.has("namesakes") else ()
            namesakes = frozenset(_key(t) for t in listed)
            for town in namesakes - self._names.keys():
                e.fail(f"namesakes: {town!r} is not a place in England or Wales")
            self._namesakes[_key(name.en)] = namesakes
            for area in e.items("postcode_areas") if e.has("postcode_areas") else ():
                if area in self._by_area:
                    e.fail(f"postcode area {area!r} is in England or Wales")
                self._elsewhere_areas[area] = name
            for place in (name.en, name.cy, *e.items("names")):
                key = _key(place)
                if key in self._names:
                    e.fail(f"{place!r} is a place in England or Wales")
                self._elsewhere_names[key] = name
        words = doc.get("not_a_place") or {}
        self.not_a_place = tuple(
            normalise(str(w)) for lang in LANGUAGES for w in (words.get(lang) or ())
        )

    def elsewhere(self, query: str) -> Bilingual | None:
        """Where, outside England and Wales, someone says they are (Scotland, Northern
        Ireland...): a postcode there, or a name of one of its places, said alone or in a
        sentence. None for anywhere in England and Wales (TD15 is Berwick, in England)."""
        district = outward_code(query)
        here = district in self._by_district or district in self._border
        if district is not None and not here:
            found = self._elsewhere_areas.get(_postcode_area(district))
            if found is not None:
                return found
        if district is not None:
            return None
        for reading in dict.fromkeys((unmutated(query), query)):
            key = _key(reading)
            if key in self._elsewhere_names:
                return self._elsewhere_names[key]
            for gram in _word_runs(normalise(reading).split()):
                if gram in self._elsewhere_names:
                    return self._elsewhere_names[gram]
        return None

    def across_border(self, query: str) -> Bilingual | None:
        """Where outside England and Wales a postcode district also reaches, when it is
        mainly there and partly here (TD12 is Coldstream, in Scotland, and Cornhill-on-Tweed,
        in England): which side someone is on cannot be told from it, so a flow asks which
        town or village rather than turn them away or guess. None for any other answer."""
        district = outward_code(query)
        return self._border.get(district) if district is not None else None

    def border_forces(self, query: str) -> tuple[str, ...]:
        """The police force areas here that a postcode district across the border with
        Scotland reaches into (TD12: Northumbria), or () for any other answer."""
        district = outward_code(query)
        return self._partly.get(district, ()) if district in self._border else ()

    # ---- building the lookup tables (and checking they do not contradict each other)

    def _index(self, towns: Mapping[str, str]) -> None:
        file = "directory/areas.yaml"

        def claim(table: dict[str, Any], key: str, value: Any, force: str, what: str) -> None:
            if key in table and table[key] != value:
                other = getattr(table[key], "force", table[key])
                raise ContentError(f"{file}: {force}: {what} {key!r} is mapped to {other} too")
            table[key] = value

        for f in self.forces.values():
            for area in f.postcode_areas:
                claim(self._by_area, area, f.id, f.id, "postcode area")
            for d in f.postcode_districts:
                claim(self._by_district, d, _Place(f.id, None), f.id, "postcode district")
            for la in f.local_authorities:
                for d in la.postcode_districts:
                    claim(
                        self._by_district, d, _Place(f.id, la.names.en), f.id, "postcode district"
                    )
            names = [f.names.en, f.names.cy, *f.aliases]
            for name in names:
                self._add_name(_key(name), _Place(f.id, None), name)
            self._full_names.update({_key(f.names.en), _key(f.names.cy)})
        # Councils after forces, so "Leeds" (council) beats "Leeds" (alias of the force).
        for f in self.forces.values():
            for la in f.local_authorities:
                for name in (la.names.en, la.names.cy, *la.aliases):
                    self._add_name(_key(name), _Place(f.id, la.names.en), name)
                self._full_names.update({_key(la.names.en), _key(la.names.cy)})
        councils = self._councils()
        for town, council in towns.items():
            if council not in councils:
                raise ContentError(f"{file}: towns: {town}: unknown council {council!r}")
            self._add_name(_key(str(town)), _Place(councils[council], council), str(town))
            self._towns.add(_key(str(town)))

    def _index_partly(self) -> None:
        """Districts partly policed by a force other than their main one, which may be outside
        England and Wales (read after `elsewhere`)."""
        for f in self.forces.values():
            for d in f.postcode_districts_partly:
                main = self._by_district.get(d) or (
                    _Place(self._by_area[_postcode_area(d)], None)
                    if _postcode_area(d) in self._by_area
                    else None
                )
                outside = self._elsewhere_areas.get(_postcode_area(d))
                if main is None and outside is not None:
                    self._border[d] = outside
                elif main is None or main.force == f.id:
                    raise ContentError(
                        f"directory/areas.yaml: {f.id}: partly district {d!r} has no other "
                        "main force"
                    )
                self._partly[d] = (*self._partly.get(d, ()), f.id)

    def _councils(self) -> dict[str, str]:
        return {la.names.en: f.id for f in self.forces.values() for la in f.local_authorities}

    def _index_shared_towns(self, shared: Mapping[str, Any]) -> None:
        where = "directory/areas.yaml: shared_towns"
        councils = self._councils()
        for town, listed in shared.items():
            if not isinstance(listed, list) or len(listed) < 2:
                raise ContentError(f"{where}: {town}: expected a list of two or more councils")
            unknown = [c for c in listed if c not in councils]
            if unknown:
                raise ContentError(f"{where}: {town}: unknown council(s) {', '.join(unknown)}")
            key = _key(str(town))
            if key in self._towns:
                raise ContentError(f"{where}: {town} is under towns too")
            places = tuple(_Place(councils[c], c) for c in listed)
            self._add_name(key, places[0], str(town))
            self._towns.add(key)
            self._shared[key] = places

    def _index_exact_only(self, names: Iterable[Any]) -> None:
        for name in names:
            key = _key(str(name))
            if key not in self._towns:
                raise ContentError(f"directory/areas.yaml: exact_only: {name} is not a town")
            self._exact_only.add(key)

    def _index_regions(self, regions: Iterable[Any]) -> None:
        for n, raw in enumerate(regions):
            e = _Entry("directory/areas.yaml", raw, {"names", "police_force_areas"}, n)
            forces = frozenset(e.items("police_force_areas", self.forces))
            for name in e.items("names"):
                self._regions[_key(name)] = forces

    def _add_name(self, key: str, place: _Place, name: str) -> None:
        self._name_words[key] = max(self._name_words.get(key, 0), _name_words(name))
        old = self._names.get(key)
        if old is not None and old.force != place.force:
            raise ContentError(
                f"directory/areas.yaml: {place.force}: name {key!r} is used by {old.force} too"
            )
        if old is None or place.local_authority is not None:
            self._names[key] = place

    # ---- public lookups

    def service(self, service_id: str) -> Service:
        for s in self.services:
            if s.id == service_id:
                return s
        raise NotFound(f"no service with id {service_id!r}")

    def programme(self, programme_id: str) -> Programme:
        for p in self.programmes:
            if p.id == programme_id:
                return p
        raise NotFound(f"no programme with id {programme_id!r}")

    def force(self, force_id: str) -> PoliceForceArea:
        try:
            return self.forces[force_id]
        except KeyError:
            raise NotFound(f"no police force area with id {force_id!r}") from None

    def services_for(
        self, audience: str, nation: str | None = None, *, topic: str | None = None
    ) -> list[Service]:
        """Services for this audience (and those for anyone), in file order."""
        if audience not in AUDIENCES:
            raise ValueError(f"unknown audience {audience!r}")
        if nation is not None and nation not in NATIONS:
            raise ValueError(f"unknown nation {nation!r}")
        return [
            s
            for s in self.services
            if (audience in s.audience or "anyone" in s.audience)
            and (nation is None or nation in s.nations)
            and (topic is None or topic in s.topics)
        ]

    def programmes_for(
        self, area: AreaMatch, self_referral: bool = True, *, include_placeholders: bool = False
    ) -> list[Programme]:
        """Programmes running where this person is.

        With self_referral=True (the default) only programmes people can refer themselves to:
        never Drive. Placeholders (not yet confirmed by the operator) are left out unless
        include_placeholders is set, as an operator preview would. A programme limited to
        some councils is offered where the council is not known (ask the adviser), but not
        on the edge of its force area (CH4 reaches Flintshire, not Anglesey).
        """
        out = []
        for p in self.programmes:
            if area.police_force_area not in p.police_force_areas:
                continue
            if self_referral and not p.self_referral:
                continue
            if p.placeholder and not include_placeholders:
                continue
            if p.local_authorities and not self._runs_in(p, area):
                continue
            out.append(p)
        return out

    @staticmethod
    def _runs_in(p: Programme, area: AreaMatch) -> bool:
        if area.local_authority is None:
            return area.matched_by != "edge"
        return area.local_authority in p.local_authorities

    def referral_only_programmes(self, area: AreaMatch) -> list[Programme]:
        """Confirmed programmes here that take people only through a multi-agency route (Drive,
        through MARAC or a police-led panel): for telling practitioners how they work, never
        for offering to someone referring themselves."""
        return [p for p in self.programmes_for(area, self_referral=False) if not p.self_referral]

    def find_area(
        self, query: str, *, loosely_within: Collection[str] | None = None
    ) -> AreaMatch | None:
        """Place a postcode, council or police force area name (typos tolerated), or None.
        A place here named exactly wins over one elsewhere in the same answer ("I live in
        Newport, my ex is in Edinburgh"); a place outside England and Wales is never taken for
        its look-alike here ("Perth" is not Penarth). A region said with a town only tells
        apart towns of the same name ("Newport, Shropshire"; "Newport, South Wales" is
        Newport); a place said "near" another is the first ("Wrexham, near Chester"). A
        district across the border with Scotland is None: see across_border.
        `loosely_within`: a typo is matched only to a place in these police force areas (the
        English side of a district across the border: "Wark" is not a typo of "Warks")."""
        if not query or not query.strip():
            return None
        if found := self._by_postcode(query) or self._exact(query):
            return found
        if self.elsewhere(query) is not None or self._names_a_place(query):
            return None  # "Newcastle, Wales": a place we know, but not the one meant
        return self._loose(query, loosely_within)

    def _match(self, place: _Place, how: str, district: str | None = None) -> AreaMatch:
        also = tuple(f for f in self._partly.get(district or "", ()) if f != place.force)
        return AreaMatch(
            police_force_area=place.force,
            local_authority=place.local_authority,
            nation=self.forces[place.force].nation,
            matched_by=how,
            also_possible=also,
        )

    def _by_postcode(self, query: str) -> AreaMatch | None:
        district = outward_code(query)
        if district is None:
            return None
        if district in self._by_district:
            return self._match(self._by_district[district], "postcode_district", district)
        force = self._by_area.get(_postcode_area(district))
        return self._match(_Place(force, None), "postcode_area", district) if force else None

    def _exact(self, query: str) -> AreaMatch | None:
        # "yng Nghaerdydd", "ym Mangor": the name as it is said after "yn", then as it is.
        for reading in dict.fromkeys((unmutated(query), query)):
            if found := self._exact_name(reading):
                return found
        return None

    def _loose(self, query: str, within: Collection[str] | None) -> AreaMatch | None:
        names = self._typo_names
        if within is not None:
            names = [n for n in names if self._names[n].force in within]
        for reading in dict.fromkeys((unmutated(query), query)):
            if found := self._loose_name(reading, names):
                return found
        return None

    def _exact_name(self, query: str) -> AreaMatch | None:
        key = _key(query)
        if key in self._names:
            return self._named(self._names[key])
        # A name inside a sentence ("I live in Caerdydd"): the first place said, with the
        # region said right after it ("Newport, South Wales" is Newport, not South Wales).
        words = _words(query)
        said = self._mentions(words)
        here = [i for i, m in enumerate(said) if m.key in self._names]
        if not here:
            return None
        place, region, how = said[here[0]], None, None
        if here[0] + 1 < len(said):
            how = _said_with(words, place, said[here[0] + 1])
            region = said[here[0] + 1] if how else None
        if (
            region is not None
            and how == "region"
            and region.key in self._names
            and self._precision(region) > self._precision(place)
            and self._fits(self._places(region.key), place.key)
        ):
            place, region = region, place  # "South Wales, Newport"; not "Wrexham, Chester"
        return self._town(place.key, region.key if region else None, near=how == "near")

    def names_exactly(self, query: str) -> bool:
        """Whether the answer names a place here as it is spelt, or gives its postcode."""
        return self._by_postcode(query) is not None or self._exact(query) is not None

    def _names_a_place(self, query: str) -> bool:
        """Whether a place here is named exactly, in either reading of the answer."""
        return any(
            m.key in self._names
            for reading in (unmutated(query), query)
            for m in self._mentions(_words(reading))
        )

    def _mentions(self, words: list[str]) -> list[_Mention]:
        """Places, regions and countries named in these words, in the order said; where two
        overlap the longer is meant ("Newport Pagnell" is not Newport)."""
        # Names outside England and Wales too, so "North Berwick" is not Berwick-upon-Tweed.
        tables = (self._names, self._regions, self._countries, self._elsewhere_names)
        found: list[_Mention] = []
        for size in range(min(4, len(words)), 0, -1):
            for start in range(len(words) - size + 1):
                key, end = "".join(words[start : start + size]), start + size
                known = any(key in table for table in tables)
                if known and not any(m.start < end and start < m.end for m in found):
                    found.append(_Mention(key, start, end))
        return sorted(found, key=lambda m: m.start)

    def _precision(self, said: _Mention) -> int:
        """A town is more precise than a council, a council than a police force area."""
        if said.key in self._towns:
            return 2
        return 1 if self._names[said.key].local_authority else 0

    def _places(self, town: str) -> tuple[_Place, ...]:
        """The places a name stands for, the best known first."""
        return self._shared.get(town, (self._names[town],))

    def _fits(self, places: tuple[_Place, ...], region: str) -> list[_Place]:
        """Those of these places that are in the region, council first."""
        near = self._names.get(region)
        council = near.local_authority if near else None
        forces = self._regions.get(region) or frozenset({near.force} if near else ())
        fits = [p for p in places if council is not None and p.local_authority == council]
        return fits + [p for p in places if p.force in forces]

    def _town(self, town: str, region: str | None, *, near: bool = False) -> AreaMatch | None:
        """The place a name stands for, told from places of the same name by the region said
        with it ("Newport, Shropshire"), or by a place it is `near` ("Newport, near Telford");
        with none, the best known ("Newport" is in Gwent)."""
        places = self._places(town)
        if region is None:
            return self._named(places[0])
        country = self._countries.get(region) or self._elsewhere_names.get(region)
        if country is not None:
            # "Bangor, Northern Ireland" or "Bangor, Co Down" is the namesake there; "Leeds,
            # Scotland" is Leeds, and so is "Berwick, near Scotland".
            abroad = not near and town in self._namesakes.get(_key(country.en), frozenset())
            return None if abroad else self._named(places[0])
        if fits := self._fits(places, region):
            return self._named(fits[0])
        if near or len(places) == 1:
            # "Newport, near Cardiff"; "Cardiff, Gwent"; a town with no namesake we list is
            # that town whatever county is said with it, as people give their old or postal
            # county ("Southport, Lancashire" is Sefton; "Chester, Wales" is Chester).
            return self._named(places[0])
        if region in self._full_names:
            # A namesake we do not list ("Newport, Essex"): the county is the surer of the two.
            return self._named(self._names[region])
        if region in self._regions:
            return None  # "Newcastle, Wales": a place we know, but not the one meant
        return self._named(places[0])  # "Newport, Mon": an abbreviation that fits no Newport

    def _loose_name(self, query: str, names: list[str]) -> AreaMatch | None:
        words = [w for w in normalise(query).split() if w not in _FILLER]
        key = "".join(words)  # _key(query)
        if not key:
            return None
        if len(key) >= 4 and self._typo_candidate(words):
            found = self._fuzzy(key, names, words)
            if found:
                return found
        # In a sentence, loosely, for longer words only.
        for run in _runs(normalise(query).split()[:SENTENCE_FUZZY_WORDS]):
            gram = "".join(run)
            if (
                len(gram) >= SENTENCE_FUZZY_MIN
                and self._typo_candidate(run)
                and (found := self._fuzzy(gram, names, run, SENTENCE_FUZZY_CUTOFF))
            ):
                return found
        return None

    def _typo_candidate(self, words: list[str]) -> bool:
        """Whether these words may be a slip for a place: not one ordinary word ("near")."""
        return not (len(words) == 1 and words[0] in self._ordinary)

    def _fuzzy(
        self, key: str, names: list[str], words: list[str], cutoff: float = FUZZY_CUTOFF
    ) -> AreaMatch | None:
        """The place `key` is a typo of, if one stands out. `words`: what the key was written
        as. A name written with fewer words is it only if the first of them begins it, split
        ("south hampton", "bridge end"), not words run together ("help son" is not Helston)."""
        found = process.extract(key, names, scorer=fuzz.ratio, limit=None, score_cutoff=cutoff)
        hits = [
            (name, score)
            for name, score, _ in found
            if score >= cutoff
            and (len(key) > SHORT_NAME or name[:1] == key[:1])
            and (
                self._name_words.get(name, 1) >= len(words)
                or (len(words[0]) >= 3 and name.startswith(words[0]))
            )
        ][:5]
        if not hits:
            return None
        best, score = hits[0]
        place = self._names[best]
        rivals = [s for n, s in hits[1:] if self._names[n].force != place.force]
        if rivals and score - rivals[0] < FUZZY_MARGIN:
            return None  # too close to call between two forces: ask again
        return self._named(place)

    def _named(self, place: _Place) -> AreaMatch:
        how = "local_authority" if place.local_authority else "police_force_area"
        return self._match(place, how)

    # ---- keeping the data honest

    def _entries(self) -> Iterator[tuple[str, str, date, bool]]:
        for s in self.services:
            yield "services.yaml", s.id, s.review_due, s.needs_check
        for p in self.programmes:
            yield "programmes.yaml", p.id, p.review_due, p.needs_check or p.placeholder

    def stale_entries(self, today: date) -> list[str]:
        """Entries whose review date has passed, as 'file: id (review was due DATE)'."""
        return [
            f"{file}: {entry} (review was due {due.isoformat()})"
            for file, entry, due, _ in self._entries()
            if due < today
        ]

    def unconfirmed_entries(self) -> list[str]:
        """Entries with a value still to be confirmed, or placeholders: the pre-launch list."""
        return [f"{file}: {entry}" for file, entry, _, flagged in self._entries() if flagged]
