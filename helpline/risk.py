"""Risk screening of every inbound message: a fast, pure, lexicon-driven classifier (en + cy).

`assess(text, language)` returns a `Risk` with a level (most urgent first: "immediate",
"suicide", "concern", "none") and short stable reason ids. It never returns or logs the text.

How it decides (the lexicon in content/risk/ holds every word; operators tune it there):
- The text is normalised (case, accents, apostrophes, punctuation to clause and sentence
  marks), text-speak is expanded ("gonna", "kms", "dwin"), and a word one typo away from a
  key term ("strangld", "sucidal") is corrected to it. Disguises are undone: zero-width
  characters and soft hyphens vanish, Cyrillic or Greek look-alikes inside a Latin word are
  folded ("kіll"), listed key words spelt letter by letter are joined, every one in the run,
  with the letters between them ("k i l l", "k.i.l.l", "k i l l m y s e l f", "k i l l h e r"),
  a listed key phrase spelt letter by letter is found whole ("i w a n t t o d i e"), and a
  listed key phrase run on without spaces is split off ("iwanttokillmyself"). A message
  with leetspeak ("k1ll", "st4b", "kiII") or an emoji inside a word is read a second time with
  them undone, and the worse reading counts.
- Idioms ("this traffic is killing me", "lladd gwair") are blanked out before matching.
- Each reason (content/risk/reasons.yaml) has patterns in both languages, and both always
  apply: people switch language mid-message, and the first message arrives before anyone has
  chosen a language. `language` is accepted for the engine's interface and changes nothing.
- A match is dropped when a negation ("never", "not going to", "byth", "ddim") stands in the
  five words before it in the same clause, or when the reason's guard applies (a weapon or
  injury that is the writer's own self-harm is a suicide matter, not an immediate one).
- Time decides between now and history. Non-fatal strangulation, weapons, serious injury and
  threats to kill are top risk indicators in domestic-abuse practice, so they are "immediate"
  unless the sentence places them clearly in the past (last week, last year, years ago, used
  to, in 2019...), which makes them "concern". Unmarked past tense ("I grabbed him by the
  throat") stays immediate: we cannot tell it was not an hour ago, and a false alarm costs an
  adviser a minute while a miss can cost a life. Recent markers (just now, tonight, today,
  last night, earlier) never downgrade. Ordinary violence (hit, pushed, slapped) is "concern"
  unless the sentence says it is happening now or just happened: then "immediate", reason
  "violence_now".
- Suicide threats used as control over a partner count as "suicide" (reason "suicide_threat").
  When several levels apply, the most urgent wins.
- Controlling behaviour without violence, children affected or a breached order is "none":
  the person still reaches an adviser, only without a raised priority.

Speed: every pattern line is gated by the literal word-starts it can begin with (derived from
the regex itself), so a message only runs the lines whose first word it contains. The cost is
linear in the message's length, whatever it holds (screening runs on the event loop, and a
risky message skips the rate limit): spelt letters are only joined in windows as long as a
listed key word, and no regex here backtracks over a word more than once.
"""

from __future__ import annotations

import functools
import re
import re._constants as sre
import re._parser as sre_parse
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rapidfuzz.distance import OSA

from helpline.errors import ContentError
from helpline.yamlfile import read_yaml

LEVELS = ("immediate", "suicide", "concern", "none")
_RANK = {level: i for i, level in enumerate(LEVELS)}
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "content" / "risk"
_LANGUAGES = ("en", "cy")
_WINDOW = 5  # words before a match in which a negation counts ("i would never", "dw i ddim yn")
_PREFIX = 6  # longest word-start used to gate a pattern line


@dataclass(frozen=True, slots=True)
class Risk:
    """The outcome of screening one message: a level and the ids of what matched."""

    level: str = "none"
    reasons: tuple[str, ...] = ()


def worst(a: str, b: str) -> str:
    """The more urgent of two levels."""
    return a if _RANK[a] <= _RANK[b] else b


@dataclass(frozen=True, slots=True)
class _Reason:
    id: str
    level: str
    when_past: str | None
    when_now: str | None
    now_reason: str | None
    guard: re.Pattern[str] | None
    now_guard: re.Pattern[str] | None
    negatable: bool


@dataclass(frozen=True, slots=True)
class _Line:
    """One pattern line, with the word-starts it can begin with (None: any word)."""

    pattern: re.Pattern[str]
    starts: frozenset[str] | None
    reason: _Reason | None = None  # None for idiom lines


class _Gate:
    """Finds, for a message's word-starts, the pattern lines that could match it."""

    def __init__(self, lines: Iterable[_Line]) -> None:
        self.lines = tuple(lines)
        self.always = 0
        index: dict[str, int] = {}
        for i, line in enumerate(self.lines):
            if line.starts is None:
                self.always |= 1 << i
            for start in line.starts or ():
                index[start] = index.get(start, 0) | 1 << i
        self.index = index

    def mask(self, word: str) -> int:
        """The lines a word could begin: by its starts, and whole if it is short ("he ")."""
        get = self.index.get
        mask = get(word + " ", 0) if len(word) <= _PREFIX else 0
        for k in range(1, min(len(word), _PREFIX) + 1):
            mask |= get(word[:k], 0)
        return mask

    def candidates(self, mask: int) -> list[_Line]:
        mask |= self.always
        chosen = []
        while mask:
            low = mask & -mask
            chosen.append(self.lines[low.bit_length() - 1])
            mask ^= low
        return chosen


@dataclass(frozen=True, eq=False)
class Lexicon:
    """Everything `assess` needs, compiled once from content/risk/."""

    slang: dict[str, str]  # a token -> its plain form
    raw: tuple[tuple[re.Pattern[str], str], ...]  # replacements before normalising
    reasons: _Gate
    idioms: _Gate
    negation: re.Pattern[str]
    pseudo_negation: re.Pattern[str]
    boundaries: frozenset[str]
    now: re.Pattern[str]
    past: re.Pattern[str]
    correct: Callable[[str], str]  # a token -> the key term it is one typo away from
    spelt: SpeltWords  # key words recognised when spelt letter by letter ("k i l l")
    masks: Callable[[str], tuple[int, int]]  # a word -> the idiom and reason lines it may begin

    @classmethod
    def load(cls, root: Path = DEFAULT_ROOT) -> Lexicon:
        spec = _read(root / "reasons.yaml")
        langs = {lang: _read(root / f"{lang}.yaml") for lang in _LANGUAGES}
        macros = {k: str(v) for d in langs.values() for k, v in (d.get("macros") or {}).items()}

        def patterns(where: str, items: Iterable[Any]) -> list[str]:
            return [_expand(str(p), macros, where) for p in items]

        def section(key: str, sub: str | None = None) -> list[str]:
            out: list[str] = []
            for lang, data in langs.items():
                items = data.get(key) or {}
                out += patterns(f"{lang}.yaml: {key}", items.get(sub, []) if sub else items)
            return out

        def words(key: str) -> list[str]:
            return [normalise(str(w)) for d in langs.values() for w in d.get(key) or []]

        lines: list[_Line] = []
        for rid, rspec in spec.items():
            reason = _build_reason(rid, rspec, langs, patterns)
            own = [
                (f"{lang}.yaml: {rid}", p)
                for lang, d in langs.items()
                for p in patterns(f"{lang}.yaml: {rid}", _at(d, rid))
            ]
            if not own:
                raise ContentError(f"risk lexicon: reason {rid} has no patterns in any language")
            lines += [_Line(_compile([p], where), _starts(p), reason) for where, p in own]
        terms = words("fuzzy_terms")
        by_letter: dict[str, tuple[str, ...]] = {}
        for term in terms:
            by_letter[term[0]] = (*by_letter.get(term[0], ()), term)
        reasons = _Gate(lines)
        idioms = _Gate(_Line(_compile([p], "idioms"), _starts(p)) for p in section("idioms"))
        return cls(
            slang={
                normalise(str(k)): normalise(str(v))
                for d in langs.values()
                for k, v in (d.get("slang") or {}).items()
            },
            raw=tuple(
                (re.compile(str(k), re.IGNORECASE), f" {v} ")
                for d in langs.values()
                for k, v in (d.get("raw") or {}).items()
            ),
            reasons=reasons,
            idioms=idioms,
            negation=_compile(section("negation"), "negation"),
            pseudo_negation=_compile(section("pseudo_negation"), "pseudo_negation"),
            boundaries=frozenset(words("boundaries")),
            now=_compile(section("time", "now"), "time: now"),
            past=_compile(section("time", "past"), "time: past"),
            correct=_Remembered(
                functools.partial(
                    _correct,
                    by_letter,
                    frozenset(terms) | set(words("keep")),
                    tuple((p.replace(" ", ""), f" {p}") for p in words("joined")),
                ),
                # A term it was corrected to is the lexicon's word; a run-on phrase split
                # off keeps the rest of what they typed, and is worked out again each time.
                storable=frozenset(terms).__contains__,
            ),
            spelt=SpeltWords.of(words("spelt_out"), words("joined")),
            masks=_Remembered(lambda word: (idioms.mask(word), reasons.mask(word))),
        )


_UNCHANGED = object()
_MISSING = object()


class _Remembered:
    """`fn(word)`, remembered for the next time under the word's hash, never the word
    itself: a process-wide cache of every word people typed would keep their names, streets
    and numbers past "delete my data" and retention. (Python salts a text's hash for each
    process.) A result that would hold the word is kept as "unchanged", or, unless
    `storable`, not kept at all. Once `size` are kept, it starts again empty."""

    def __init__(
        self,
        fn: Callable[[str], Any],
        *,
        storable: Callable[[Any], bool] = lambda _value: True,
        size: int = 65536,
    ) -> None:
        self._fn, self._storable, self._size = fn, storable, size
        self._found: dict[int, Any] = {}

    def __call__(self, word: str) -> Any:
        key = hash(word)
        found = self._found.get(key, _MISSING)
        if found is not _MISSING:
            return word if found is _UNCHANGED else found
        value = self._fn(word)
        kept = _UNCHANGED if value == word else value
        if kept is _UNCHANGED or self._storable(value):
            if len(self._found) >= self._size:
                # All at once: deleting the oldest one at a time walks the dict's emptied
                # slots each time (100 times slower once full).
                self._found.clear()
            self._found[key] = kept
        return value


def _read(path: Path) -> dict[str, Any]:
    data = read_yaml(path, str(path))
    if not isinstance(data, dict):
        raise ContentError(f"{path}: expected a mapping")
    return data


def _at(data: dict[str, Any], rid: str) -> list[Any]:
    return list((data.get("reasons") or {}).get(rid) or [])


_MACRO = re.compile(r"\{([a-z_]+)\}")


def _expand(pattern: str, macros: dict[str, str], where: str) -> str:
    # Macros may use other macros; three rounds is plenty and stops a cycle.
    for _ in range(3):
        pattern = _MACRO.sub(lambda m: macros.get(m.group(1), m.group(0)), pattern)
    if _MACRO.search(pattern):
        raise ContentError(f"{where}: unknown macro in {pattern!r}")
    return pattern


def _compile(parts: Iterable[str], where: str) -> re.Pattern[str]:
    alternatives = [p for p in parts if p]
    if not alternatives:
        return re.compile(r"(?!x)x")  # matches nothing
    source = "|".join(f"(?:{p})" for p in alternatives)
    try:
        return re.compile(rf"\b(?:{source})\b")
    except re.error as exc:
        raise ContentError(f"risk lexicon, {where}: bad pattern: {exc}") from exc


_REASON_KEYS = {"level", "when_past", "when_now", "now_reason", "unless", "now_unless", "negatable"}


def _build_reason(
    rid: str,
    rspec: dict[str, Any],
    langs: dict[str, dict[str, Any]],
    patterns: Callable[[str, Iterable[Any]], list[str]],
) -> _Reason:
    # A typo here would silently switch a safeguard off, so anything unknown stops the load.
    if not isinstance(rspec, dict) or rspec.get("level") not in LEVELS[:-1]:
        raise ContentError(f"reasons.yaml: {rid}: level must be one of {LEVELS[:-1]}")
    if unknown := set(rspec) - _REASON_KEYS:
        raise ContentError(f"reasons.yaml: {rid}: unknown keys {sorted(unknown)}")
    for key in ("when_past", "when_now"):
        if key in rspec and rspec[key] not in LEVELS[:-1]:
            raise ContentError(f"reasons.yaml: {rid}: {key} must be one of {LEVELS[:-1]}")

    def guard(key: str) -> re.Pattern[str] | None:
        found: list[str] = []
        for name in rspec.get(key) or []:
            tables = [(lang, (d.get("guards") or {}).get(name)) for lang, d in langs.items()]
            if all(table is None for _, table in tables):
                raise ContentError(f"reasons.yaml: {rid}: no guard called {name!r}")
            for lang, table in tables:
                found += patterns(f"{lang}.yaml: guard {name}", table or [])
        return _compile(found, f"{rid} {key}") if found else None

    return _Reason(
        id=rid,
        level=rspec["level"],
        when_past=rspec.get("when_past"),
        when_now=rspec.get("when_now"),
        now_reason=rspec.get("now_reason"),
        guard=guard("unless"),
        now_guard=guard("now_unless"),
        negatable=bool(rspec.get("negatable", True)),
    )


def _starts(pattern: str) -> frozenset[str] | None:
    """The literal word-starts a pattern's match can begin with; None if it cannot be told."""
    try:
        found = _walk(list(sre_parse.parse(pattern).data), "")
    except (re.error, RecursionError):
        return None
    return frozenset(found) if found is not None and len(found) <= 400 else None


def _walk(items: list[Any], acc: str, at_end: bool = True) -> set[str] | None:
    # Follows the parsed regex from the left, collecting literal text until it is _PREFIX long,
    # reaches a word's end (kept as a trailing space: "he " is the word "he", not "help"), or
    # meets something that is not literal. A shorter start is always safe, only less selective.
    partial = {acc} if acc else None
    if len(acc) >= _PREFIX:
        return partial
    if not items:
        return ({acc + " "} if at_end else {acc}) if acc else None
    (op, av), rest = items[0], items[1:]
    if op is sre.LITERAL:
        if chr(av) == " ":
            return {acc + " "} if acc else None
        return _walk(rest, acc + chr(av), at_end)
    if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
        return _walk(rest, acc, at_end)
    if op is sre.SUBPATTERN:
        return _walk(list(av[-1].data) + rest, acc, at_end)
    if op is sre.BRANCH:
        return _union(_walk(list(alt.data) + rest, acc, at_end) for alt in av[1])
    if op is sre.IN:
        chars = _chars(av)
        return _union(_walk(rest, acc + c, at_end) for c in chars) if chars else partial
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        low, high, sub = av
        if high == 1:  # optional: either it is there and the rest follows, or only the rest
            once = _walk(list(sub.data) + rest, acc, at_end)
        else:  # stop after one round: a safe, shorter start
            once = _walk(list(sub.data), acc, at_end=False)
        return _union([once, _walk(rest, acc, at_end)]) if low == 0 else once
    return partial


def _chars(av: list[Any]) -> list[str] | None:
    chars: list[str] = []
    for op, value in av:
        if op is sre.LITERAL:
            chars.append(chr(value))
        elif op is sre.CATEGORY and value is sre.CATEGORY_DIGIT:
            chars += list("0123456789")
        else:
            return None
    return chars


def _union(parts: Iterable[set[str] | None]) -> set[str] | None:
    out: set[str] = set()
    for part in parts:
        if part is None:
            return None
        out |= part
    return out


def _correct(
    terms: dict[str, tuple[str, ...]],
    known: frozenset[str],
    joined: tuple[tuple[str, str], ...],
    token: str,
) -> str:
    # Only longer words, only towards a term with the same first letter and one edit away,
    # and never a word the lexicon lists as real ("violet" is not "violent"): typos, not guesses.
    if len(token) < 5 or token in known or not token.isalpha():
        return token
    # A key phrase run on without spaces ("iwanttokillmyself") is split off the word's end.
    for run_on, spaced in joined:
        if token.endswith(run_on):
            return f"{token[: -len(run_on)]}{spaced}".strip()
    for term in terms.get(token[0], ()):
        if abs(len(term) - len(token)) <= 1 and OSA.distance(token, term) <= 1:
            return term
    return token


_HYPHEN = re.compile(r"(?<=\w)-(?=\w)")  # "self-harm", "mam-gu": one phrase, not two clauses
# Apostrophes: English clitics join their word ("don't" -> "dont", "he's" -> "hes"); any other
# apostrophe splits, which keeps Welsh clitics apart ("mae'r" -> "mae r", "i'w" -> "i w").
_CLITIC = re.compile(r"(?<=\w)['’‘`](t|s|m|re|ll|ve|d)\b")
_APOSTROPHE = re.compile(r"['’‘`]")
_SENTENCE = re.compile(r"[.!?;\n\r]+")
_CLAUSE = re.compile(r"[,:()\[\]\"“”«»\-–—/|]+")
_OTHER = re.compile(r"[^\w\s.,]+")
_REPEATS = re.compile(r"([a-z])\1{2,}")


# Cyrillic and Greek letters that look Latin ("kіll" with a Cyrillic і), folded only inside a
# word that also has Latin letters, so a message written in Cyrillic or Greek is left alone.
_LOOKALIKES = str.maketrans("аеорсухіјѕԁӏһкмтвнαεικνορτυχβ", "aeopcyxijsdlhkmtbhaeikvoptuxb")
_WORD = re.compile(r"[^\W\d_]+")
_LATIN = re.compile(r"[a-z]")


def _fold_lookalikes(match: re.Match[str]) -> str:
    word = match.group(0)
    if word.isascii() or not _LATIN.search(word):
        return word
    return word.translate(_LOOKALIKES)


class _Unmarked(dict[int, int | None]):
    """A `str.translate` table, filled as characters are met, that drops combining marks and
    format characters (zero-width, soft hyphen: Cf). A character at a time in Python was most
    of the cost of a long non-Latin message (one "ﷺ" unfolds into 18). Holds characters, never
    words; starts again empty past 65,536 of them."""

    def __missing__(self, code: int) -> int | None:
        c = chr(code)
        kept = None if unicodedata.combining(c) or unicodedata.category(c) == "Cf" else code
        if len(self) >= 65536:
            self.clear()
        self[code] = kept
        return kept


_UNMARKED = _Unmarked()


def normalise(text: str) -> str:
    """Lower case, accents folded, apostrophes handled, punctuation to " , " and " . "."""
    text = text.casefold()
    if not text.isascii():
        # Zero-width characters and soft hyphens (format, Cf) vanish: "ki\u200bll" is "kill".
        folded = unicodedata.normalize("NFKD", text)
        text = folded.translate(_UNMARKED)
        if _LATIN.search(text):  # look-alikes are folded only inside a word with Latin letters
            text = _WORD.sub(_fold_lookalikes, text)
    text = _APOSTROPHE.sub(" ", _CLITIC.sub(r"\1", _HYPHEN.sub(" ", text)))
    text = _CLAUSE.sub(" , ", _SENTENCE.sub(" . ", text))
    text = _OTHER.sub(" ", text).replace("_", " ")
    return " ".join(_REPEATS.sub(r"\1\1", text).split())


# Single letters apart ("k i l l", "k-i-l-l", "k.i.l.l"): joined only into a listed key word.
_LETTER = r"[^\W\d_]"
_SPELT = re.compile(rf"(?<!\w){_LETTER}(?:[ .*_\-]+{_LETTER}(?!\w)){{2,}}")


@dataclass(frozen=True, slots=True)
class SpeltWords:
    """The key words joined back when spelt letter by letter, indexed by their first letter."""

    words: frozenset[str]
    sizes: dict[str, tuple[int, ...]]  # a first letter -> the lengths of its words, longest first
    # Key phrases found whole in a run ("i w a n t t o d i e": "want to die"), run on -> words
    phrases: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def of(cls, words: Iterable[str], phrases: Iterable[str] = ()) -> SpeltWords:
        # Only single words of three letters or more: "t v" and "u s" are not key words.
        kept = frozenset(w for w in words if len(w) >= 3 and w.isalpha())
        sizes: dict[str, set[int]] = {}
        for word in kept:
            sizes.setdefault(word[0], set()).add(len(word))
        return cls(
            kept,
            {c: tuple(sorted(n, reverse=True)) for c, n in sizes.items()},
            tuple((p.replace(" ", ""), tuple(p.split())) for p in phrases if " " in p),
        )

    @property
    def longest(self) -> int:
        return max((n[0] for n in self.sizes.values()), default=0)


def segment(letters: Sequence[str], spelt: SpeltWords) -> tuple[list[str] | None, int]:
    """The words in a run of spelt letters, and how many windows it tried.

    Left to right, the longest key word starting at each letter is taken ("k i l l m y s e l
    f" -> kill, myself); the letters between key words are joined into words too ("k i l l h
    e r" -> kill, her). Only windows as long as a key word starting with that letter are tried,
    so the work is at most len(letters) x the number of key-word lengths: linear, whatever
    the run. None when the run holds no key word: "a b c", "J K Rowling" stay as typed.
    """
    pieces: list[str] = []
    rest: list[str] = []  # letters since the last key word
    found = False
    tried = 0
    i, n = 0, len(letters)
    while i < n:
        for size in spelt.sizes.get(letters[i], ()):
            if size > n - i:
                continue
            tried += 1
            word = "".join(letters[i : i + size])
            if word in spelt.words:
                if rest:
                    pieces.append("".join(rest))
                    rest = []
                pieces.append(word)
                found = True
                i += size
                break
        else:
            rest.append(letters[i])
            i += 1
    if not found:
        return None, tried
    if rest:
        pieces.append("".join(rest))
    return pieces, tried


def _spelt_words(letters: list[str], spelt: SpeltWords) -> tuple[list[str] | None, int]:
    """The words of a run of spelt letters: a key phrase found whole in it first ("i w a n t t
    o d i e" -> i, want, to, die; by its one key word alone, "iwantto die" read as nothing),
    the letters on either side read for key words; else `segment`. One search of the run a
    phrase, so still linear."""
    run = "".join(letters)
    tried = 0
    for run_on, phrase in spelt.phrases:
        tried += 1
        at = run.find(run_on)
        if at < 0:
            continue
        before, after = letters[:at], letters[at + len(run_on) :]
        pieces: list[str] = []
        if before:
            words, work = segment(before, spelt)
            tried += work
            pieces += words or ["".join(before)]
        pieces += phrase
        if after:
            words, work = segment(after, spelt)
            tried += work
            pieces += words or ["".join(after)]
        return pieces, tried
    words, work = segment(letters, spelt)
    return words, tried + work


def join_spelt(text: str, spelt: SpeltWords) -> tuple[str, int]:
    """The text with each run of spelt letters holding a key word or phrase joined into its
    words, and the windows tried (for the tests: the work stays linear in the message's
    length)."""
    tried = 0

    def join(match: re.Match[str]) -> str:
        nonlocal tried
        pieces, work = _spelt_words(re.findall(_LETTER, match.group(0).casefold()), spelt)
        tried += work
        return match.group(0) if pieces is None else " ".join(pieces)

    return _SPELT.sub(join, text), tried


# Leetspeak ("k1ll", "mys3lf", "st4b", "kiII") and an emoji inside a word ("k😭ill"): read a
# second time with them undone, only when a word mixes letters with digits or such symbols, so
# real numbers ("999", "24/7", "10:30") are never touched and most messages are read once.
_LEET_MIX = r"[^\W\d_][\d|@$]|[\d|@$][^\W\d_]|[a-z]I"
_LEET_SEEN = re.compile(_LEET_MIX)  # a cheap first look; most messages stop here
# Each word once, then the cheap look: "[\w|@$]*(?:mix)[\w|@$]*" backtracked through every
# start of a long word (a 4,000-letter word took 1.5 s); this is linear.
_LEET_TOKEN = re.compile(r"[\w|@$]+")
_LEET = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
_EMOJI_INSIDE = re.compile(
    r"(?<=[^\W\d_])[\u2600-\u27bf\ufe0f\u200d\U0001f000-\U0001faff]+(?=[^\W\d_])"
)


def _deleet(match: re.Match[str]) -> str:
    word = match.group(0)
    if not _LEET_SEEN.search(word):
        return word
    out: list[str] = []
    for c in word:
        if c in "1|":  # "k1ll" -> kill, "ki11" -> kill: an l after i or l, else an i
            out.append("l" if out and out[-1] in "il" else "i")
        elif c == "I" and out and out[-1].islower():
            out.append("l")
        else:
            out.append(_LEET.get(c, c))
    return "".join(out)


def _variant(text: str) -> str | None:
    """The text with leetspeak and emoji inside words undone, or None if it has neither."""
    variant = _LEET_TOKEN.sub(_deleet, text) if _LEET_SEEN.search(text) else text
    if not text.isascii():
        variant = _EMOJI_INSIDE.sub("", variant)
    return variant if variant != text else None


def _prepare(text: str, lex: Lexicon) -> tuple[str, int]:
    """The text ready for matching, between sentence marks, and the reason lines it may match."""
    for pattern, replacement in lex.raw:
        text = pattern.sub(replacement, text)
    text, _ = join_spelt(text, lex.spelt)
    words = []
    for token in normalise(text).split():
        token = lex.slang.get(token, token)
        words.append(lex.correct(token) if " " not in token else token)
    prepared = " ".join(words)
    idiom_mask = reason_mask = 0
    for word in set(prepared.split()):
        idiom_bits, reason_bits = lex.masks(word)
        idiom_mask |= idiom_bits
        reason_mask |= reason_bits
    for line in lex.idioms.candidates(idiom_mask):
        prepared = line.pattern.sub("~", prepared)
    return f" . {prepared} . ", reason_mask


def _sentence(text: str, start: int, end: int) -> tuple[int, int]:
    """Where the sentence holding text[start:end] begins and ends."""
    return text.rfind(" . ", 0, start) + 1, text.find(" . ", end) + 2


def _negated(text: str, start: int, lex: Lexicon) -> bool:
    before = text[max(0, start - 80) : start]
    cut = max(before.rfind(" . "), before.rfind(" , "), before.rfind("~"))
    kept: list[str] = []
    for word in reversed(before[cut + 1 :].split()):
        if word in lex.boundaries or len(kept) == _WINDOW:
            break
        kept.append(word)
    if not kept:
        return False
    window = " ".join(reversed(kept))
    return bool(lex.negation.search(lex.pseudo_negation.sub(" ", window)))


def _judge(reason: _Reason, sentence: str, lex: Lexicon) -> str | None:
    """The level a match of the reason has in its sentence, negation aside."""
    if reason.guard is not None and reason.guard.search(sentence):
        return None
    habit = reason.now_guard is not None and reason.now_guard.search(sentence)
    if reason.when_now and not habit and lex.now.search(sentence):
        return reason.when_now
    if reason.when_past and lex.past.search(sentence) and not lex.now.search(sentence):
        return reason.when_past
    return reason.level


_FILES = ("reasons.yaml", *(f"{lang}.yaml" for lang in _LANGUAGES))
# Lexicons already compiled, by what their files hold: the same phrase lists in another folder
# (a copy of content/) are not compiled again; edited ones are.
_COMPILED: dict[tuple[bytes, ...], Lexicon] = {}


def lexicon(root: Path = DEFAULT_ROOT) -> Lexicon:
    """The lexicon in `root` (content/risk/ by default), compiled once for the same files.
    Raises ContentError naming the file for a missing or broken one."""
    try:
        held = tuple((root / name).read_bytes() for name in _FILES)
    except OSError:
        return Lexicon.load(root)  # names the file it cannot read
    found = _COMPILED.get(held)
    if found is None:
        found = Lexicon.load(root)
        if len(_COMPILED) >= 4:
            _COMPILED.clear()
        _COMPILED[held] = found
    return found


@functools.cache
def _default() -> Lexicon:
    return lexicon()


def screen_for(content_root: Path) -> Callable[[str, str], Risk]:
    """The screen for a content folder, its phrase lists (`risk/`) read and checked now: the
    service loads them before it listens, so a broken list stops it at start, never at a
    person's first message, and an operator's own copy of content/ is the one screened with."""
    lex = lexicon(content_root / "risk")
    return functools.partial(assess, lex=lex)


def assess(text: str, language: str = "en", lex: Lexicon | None = None) -> Risk:
    """Screen one message. Pure: no I/O after the lexicon's first load; keeps nothing."""
    lex = lex or _default()
    found = _find(text, lex)
    variant = _variant(text)
    if variant is not None:  # leetspeak or an emoji inside a word: the worse reading counts
        for rid, level in _find(variant, lex).items():
            found[rid] = worst(found.get(rid, "none"), level)
    if not found:
        return Risk()
    ordered = sorted(found, key=lambda rid: _RANK[found[rid]])
    return Risk(level=found[ordered[0]], reasons=tuple(ordered))


def _find(text: str, lex: Lexicon) -> dict[str, str]:
    """Each reason id that matches, with the most urgent level it reached."""
    prepared, mask = _prepare(text, lex)
    found: dict[str, str] = {}
    for line in lex.reasons.candidates(mask):
        reason = line.reason
        assert reason is not None  # reason lines always carry their reason
        judged: set[tuple[int, int]] = set()
        for m in line.pattern.finditer(prepared):
            if reason.negatable and _negated(prepared, m.start(), lex):
                continue
            # A sentence is judged once a line: another match in it reaches the same level.
            # (Judging each match read the whole sentence again: quadratic in a long one.)
            start, end = _sentence(prepared, m.start(), m.end())
            if (start, end) in judged:
                continue
            judged.add((start, end))
            level = _judge(reason, prepared[start:end], lex)
            if level is None:
                continue
            rid = reason.now_reason if level == reason.when_now and reason.now_reason else reason.id
            found[rid] = worst(found.get(rid, "none"), level)
            if level == "immediate":
                break  # nothing later in this line can make it more urgent
    return found
