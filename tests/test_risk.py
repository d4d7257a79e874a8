"""The risk screen: accuracy on the labelled cases and the behaviours advisers rely on."""

from __future__ import annotations

import gc
import random
import re
import shutil
import sys
import types
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpline import risk
from helpline.errors import ContentError
from helpline.risk import (
    DEFAULT_ROOT,
    LEVELS,
    Lexicon,
    Risk,
    assess,
    join_spelt,
    lexicon,
    worst,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from risk_report import load_cases, score  # noqa: E402

from tests.journey_support import Person, content_copy  # noqa: E402
from tests.support import running, settings_for  # noqa: E402

CASES = load_cases(ROOT / "tests" / "risk_cases.yaml")
REASON_IDS = set(yaml.safe_load((DEFAULT_ROOT / "reasons.yaml").read_text())) | {"violence_now"}


# --- accuracy on the labelled set ------------------------------------------------------------


def test_labelled_set_is_big_and_balanced_enough_to_trust() -> None:
    assert len(CASES) >= 320
    assert sum(1 for c in CASES if c.language == "cy") >= 60
    for level in LEVELS:
        assert sum(1 for c in CASES if c.level == level) >= 60, level


def test_almost_no_one_in_immediate_danger_is_missed() -> None:
    assert score(CASES).recall["immediate"] >= 0.95


def test_almost_no_one_at_risk_of_suicide_is_missed() -> None:
    assert score(CASES).recall["suicide"] >= 0.95


def test_ordinary_messages_rarely_raise_a_false_alarm() -> None:
    assert score(CASES).false_alarm_rate <= 0.05


def test_every_labelled_case_is_read_at_its_level() -> None:
    # The rates above leave room for a few misses, and a fix that broke cases it did not mean
    # to (self-harm to an arm "when my wife left", a child whacked "at the playground") hid in
    # that room. Every case was read right when it was added: none may slip back.
    misses = [
        f"{c.level} read as {r.level} {list(r.reasons)}: {c.text!r}" for c, r in score(CASES).misses
    ]
    assert not misses, "\n".join(misses)


# --- levels ----------------------------------------------------------------------------------


def test_levels_run_from_most_to_least_urgent() -> None:
    assert LEVELS == ("immediate", "suicide", "concern", "none")
    assert worst("suicide", "immediate") == "immediate"
    assert worst("concern", "suicide") == "suicide"
    assert worst("none", "concern") == "concern"
    assert worst("none", "none") == "none"


@pytest.mark.parametrize(
    ("text", "level", "also"),
    [
        ("he's outside with a knife and honestly I want to die", "immediate", "suicidal_thoughts"),
        ("I pushed her last week and now I want to end it all", "suicide", "past_violence"),
        (
            "the kids saw me hit their mum and I'm going to kill her tonight",
            "immediate",
            "children_affected",
        ),
    ],
)
def test_the_most_urgent_level_wins_and_every_reason_is_kept(
    text: str, level: str, also: str
) -> None:
    risk = assess(text)
    assert risk.level == level
    assert also in risk.reasons


def test_a_quiet_or_empty_message_is_none() -> None:
    assert assess("") == Risk("none", ())
    assert assess("   ") == Risk("none", ())
    assert assess("hi, is anyone there?") == Risk("none", ())


# --- negation, idioms, text-speak, typos ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I would never hurt her",
        "I'm not going to kill myself, I just need to talk",
        "i'd never lay a finger on her",
        "I'm not suicidal",
        "He's never hit me but he controls all the money",
        "Fyddwn i byth yn ei brifo hi.",
        "Dw i ddim yn mynd i ladd fy hun.",
    ],
)
def test_a_negated_statement_raises_no_alarm(text: str) -> None:
    assert assess(text).level == "none"


@pytest.mark.parametrize(
    "text",
    [
        "I don't want to live anymore",
        "i dont wanna be here no more",
        "I can't stop thinking about taking my own life",
        "Dw i ddim eisiau byw rhagor.",
    ],
)
def test_wanting_not_to_live_is_suicide_despite_the_negative_words(text: str) -> None:
    assert assess(text).level == "suicide"


@pytest.mark.parametrize(
    "text",
    [
        "this traffic is killing me",
        "I could murder a pint",
        "dying to see the match",
        "killing it at work",
        "my back is killing me",
        "she'll kill me if I forget our anniversary",
        "I got all choked up at the school play",
        "Mae'r traffig 'ma'n fy lladd i.",
        "Ro'n i'n lladd gwair drwy'r dydd.",
        "Dw i'n marw eisiau gweld y gêm.",
    ],
)
def test_an_idiom_is_not_a_threat(text: str) -> None:
    assert assess(text).level == "none"


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("gonna kill her", "immediate"),
        ("im gonna kil her", "immediate"),
        ("strangld her just now", "immediate"),
        ("wanna die", "suicide"),
        ("kms", "suicide"),
        ("feeling sucidal again", "suicide"),
        ("Im going to kill myslef", "suicide"),
        ("i'm gonna unalive myself", "suicide"),
        ("dwin mynd i ladd o", "immediate"),
        ("dwi isio marw", "suicide"),
    ],
)
def test_text_speak_and_typos_are_understood(text: str, level: str) -> None:
    assert assess(text).level == level


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("I want to ki\u200bll myself", "suicide"),
        ("I want to ki\u00adll myself", "suicide"),
        ("I w\u0430nt to k\u0456ll mys\u0435lf", "suicide"),
        ("k1ll mys3lf", "suicide"),
        ("i want to kiII myself", "suicide"),
        ("i want to k.i.l.l myself", "suicide"),
        ("i want to k\U0001f62dill myself", "suicide"),
        ("Iwanttokillmyself", "suicide"),
        ("I'mgoingtokillher", "immediate"),
        ("i'll st4b her", "immediate"),
    ],
)
def test_a_disguised_word_is_still_read(text: str, level: str) -> None:
    assert assess(text).level == level


@pytest.mark.parametrize(
    "text",
    [
        "is this service 24/7?",
        "our number is 07700 900123, call after 6pm",
        "I have 2 kids aged 4 and 7",
        "I'm a k i n d person really",
        "I'm upskilling myself at college",
        "\u043c\u0430\u043c\u0430",  # a word wholly in Cyrillic is not folded to Latin
    ],
)
def test_numbers_and_ordinary_spelling_are_not_read_as_disguises(text: str) -> None:
    assert assess(text).level == "none"


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("I want to k i l l m y s e l f", "suicide"),
        ("k i l l m y s e l f", "suicide"),
        ("k.i.l.l.m.y.s.e.l.f", "suicide"),
        ("im going to k i l l h e r", "immediate"),
        ("i will s-t-a-b h-e-r", "immediate"),
        ("dw i eisiau l l a d d f y h u n", "suicide"),
        ("Dw i eisiau l-l-a-d-d fy hun", "suicide"),
        ("mae gen i g y l l e l l", "immediate"),
        # A key phrase spelt out whole: "die" alone left "iwantto" unread, "end my life" has
        # no key word at all.
        ("i w a n t t o d i e", "suicide"),
        ("w.a.n.n.a.d.i.e", "suicide"),
        ("i'm going to e n d m y l i f e", "suicide"),
        ("k i l l h e r i w a n t t o d i e", "immediate"),
    ],
)
def test_every_word_spelt_out_in_one_run_is_read(text: str, level: str) -> None:
    # Only one key word of a run used to be joined: "kill m y s e l f" read as nothing.
    assert assess(text).level == level


@pytest.mark.parametrize(
    "text",
    ["a b c d e", "I got an A B C grade", "J K Rowling", "u s a", "t v", "we saw t v in the u s a"],
)
def test_letters_spaced_apart_without_a_key_word_stay_harmless(text: str) -> None:
    assert assess(text).level == "none"


def _spaced(letters: str, n: int) -> str:
    return " ".join(letters[i % len(letters)] for i in range(n))


def _random_letters(n: int) -> str:
    pick = random.Random(7).choice
    return " ".join(pick("abcdefghijklmnopqrstuvwxyz\u00df\u03b1\u043a") for _ in range(n))


# Runs of single letters that made the screen take seconds to minutes on 4,000 characters,
# on the event loop, with no rate limit for a message that looks risky.
LONG_RUNS = {
    "spaced sharp s (casefolds to ss)": lambda n: "\u00df " * n,
    "spaced digraph": lambda n: "\u01c6 " * n,
    "spaced ligature": lambda n: "\ufdfa " * n,
    "spaced greek": lambda n: "\u03b1 " * n,
    "starred": lambda n: "w*" * n,
    "random letters": _random_letters,
    "key words": lambda n: _spaced("killmyself", n),
    "starts of key words": lambda n: _spaced("stranglsuicidoverdos", n),
}


@pytest.mark.parametrize("make", LONG_RUNS.values(), ids=LONG_RUNS.keys())
def test_a_long_run_of_spelt_letters_costs_work_in_proportion_to_its_length(
    make: Callable[[int], str],
) -> None:
    # No timing here: the windows tried are counted. Every window used to be tried (cubic in
    # the run's length); now only windows as long as a key word starting at that letter.
    spelt = lexicon().spelt
    _, half = join_spelt(make(1000), spelt)
    text = make(2000)  # 4,000 characters, the longest message
    joined, full = join_spelt(text, spelt)
    most_per_letter = max(len(sizes) for sizes in spelt.sizes.values())
    assert full <= 2 * half + spelt.longest * most_per_letter  # the end of a run tries fewer
    assert full <= len(text.casefold()) * most_per_letter
    assert len(joined) <= 2 * len(text)


def test_a_long_sentence_repeating_a_match_is_judged_once_not_once_a_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each match used to read its whole sentence again (time words, guards): 4,000 characters
    # of "i pushed him " took 100 ms, quadratic in the sentence. Counted, not timed.
    judged: list[str | None] = []
    judge = risk._judge

    def counted(*args: Any) -> str | None:
        judged.append(judge(*args))
        return judged[-1]

    monkeypatch.setattr(risk, "_judge", counted)
    times = []
    for n in (150, 300):  # 2,000 and 4,000 characters, one sentence
        judged.clear()
        assert assess("i pushed him " * n).level == "concern"
        times.append(len(judged))
    assert times[1] == times[0]  # twice the matches, the same one sentence


def test_how_far_spelt_joining_looks_comes_from_the_lexicon(lexicon_copy: Path) -> None:
    en = lexicon_copy / "en.yaml"
    en.write_text(en.read_text().replace("spelt_out: [", "spelt_out: [strangulation, "))
    spelt = Lexicon.load(lexicon_copy).spelt
    assert spelt.longest == len("strangulation")
    assert join_spelt("s t r a n g u l a t i o n", spelt)[0] == "strangulation"


def test_an_ordinary_word_near_a_key_term_is_not_corrected_into_one() -> None:
    assert assess("I'm struggling with jealousy").level == "none"
    assert assess("I cooked her dinner to say sorry").level == "none"
    assert assess("my daughter is called Violet").level == "none"


# Real English words one typo from a fuzzy term (same first letter, one edit): every word of a
# British English word list (Debian's wbritish) that is, plus a few the list lacks. Correcting
# one of these turned "i do all the cooking" into choking and "not breaching the order" into
# "not breathing": a 999 alert for nothing. A new fuzzy term needs its neighbours in `keep`.
REAL_WORDS_NEAR_KEY_TERMS = [
    "ambulances",
    "breaching",
    "chocked",
    "chocking",
    "choke",
    "choker",
    "chokes",
    "chowed",
    "chowing",
    "coked",
    "coking",
    "cooked",
    "cooking",
    "hamming",
    "haring",
    "harking",
    "harping",
    "hospitals",
    "injunctions",
    "killings",
    "kilning",
    "knaves",
    "knifed",
    "knifes",
    "murderer",
    "murders",
    "overdoes",
    "overdone",
    "overdoses",
    "retraining",
    "scabbed",
    "scabbing",
    "slabbed",
    "slabbing",
    "stabbings",
    "stabled",
    "stabling",
    "straggle",
    "straggled",
    "straggling",
    "strange",
    "strangler",
    "strangles",
    "stubbed",
    "stubbing",
    "suicides",
    "swabbed",
    "swabbing",
    "violet",
    "stranger",
    "strangers",
    "strangely",
    "violets",
    "breathe",
    "breathes",
    "tonights",
    "hospice",
    "harmony",
    "charming",
    "murmur",
    "hunting",
    "hurling",
    "tablet",
]


@pytest.mark.parametrize("word", REAL_WORDS_NEAR_KEY_TERMS)
def test_a_real_word_is_never_corrected_into_a_key_term(word: str) -> None:
    assert lexicon().correct(word) == word


@pytest.mark.parametrize(
    ("typo", "term"),
    [
        ("strangeld", "strangled"),
        ("sucidal", "suicidal"),
        ("stabed", "stabbed"),
        ("chokd", "choked"),
        ("breathng", "breathing"),
    ],
)
def test_a_typo_of_a_key_term_is_still_corrected(typo: str, term: str) -> None:
    assert lexicon().correct(typo) == term


# --- Welsh ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Dw i'n mynd i'w lladd hi.", "threat_to_kill"),
        ("Dw i am ei ladd e.", "threat_to_kill"),
        ("Mae e tu allan gyda chyllell.", "weapon"),
        ("Mae ganddo fe gyllell.", "weapon"),
        ("Dw i newydd ei thagu hi.", "strangulation"),
        ("Mae o wedi bygwth fy nhagu i.", "strangulation"),
    ],
)
def test_welsh_mutated_forms_are_recognised(text: str, reason: str) -> None:
    risk = assess(text, "cy")
    assert risk.level == "immediate"
    assert reason in risk.reasons


def test_a_welsh_message_is_screened_even_before_welsh_is_chosen() -> None:
    assert assess("Dw i eisiau lladd fy hun.", "en").level == "suicide"


# --- now and the past -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("I choked her last year", "concern"),
        ("I strangled my ex years ago", "concern"),
        ("Tagais i hi flynyddoedd yn ôl.", "concern"),
        ("I choked her tonight", "immediate"),
        ("he strangled me last night", "immediate"),
        ("I grabbed him by the throat", "immediate"),
    ],
)
def test_strangulation_is_immediate_unless_clearly_in_the_past(text: str, level: str) -> None:
    risk = assess(text)
    assert risk.level == level
    assert "strangulation" in risk.reasons


def test_ordinary_violence_is_a_concern_unless_it_is_happening_now() -> None:
    assert assess("I pushed her last week") == Risk("concern", ("past_violence",))
    assert assess("I hit her yesterday").level == "concern"
    now = assess("I've just hit her")
    assert now.level == "immediate"
    assert "violence_now" in now.reasons


@pytest.mark.parametrize(
    "text",
    [
        "he's hitting her",
        "she's kicking me",
        "they're beating him up outside",
        "Mae fy nhad yn curo fy mam.",
    ],
)
def test_violence_in_the_present_tense_is_happening_now(text: str) -> None:
    risk = assess(text)
    assert risk.level == "immediate"
    assert "violence_now" in risk.reasons


def test_a_habit_of_violence_is_a_concern_not_an_emergency() -> None:
    assert assess("he's hitting me when he's drunk").level == "concern"
    started = assess("He's been abusive for years and recently he's started hitting the kids")
    assert started.level == "concern"


def test_the_writers_own_childhood_is_not_a_current_risk() -> None:
    assert assess("My dad was violent when I was a kid, I'm scared I'm like him").level == "none"


@pytest.mark.parametrize(
    "text",
    [
        "I'm scared I'm going to hurt her",
        "I'm afraid I'll hurt her tonight",
        "Mae gen i ofn y bydda i'n ei brifo hi heno",
    ],
)
def test_fear_of_ones_own_harming_someone_is_still_a_threat(text: str) -> None:
    risk = assess(text)
    assert risk.level == "immediate"
    assert "threat_to_harm" in risk.reasons


@pytest.mark.parametrize(
    "text", ["I'm scared he's going to hurt me", "Mae gen i ofn y bydd e'n fy mrifo i"]
)
def test_fear_of_someone_else_is_a_concern_not_the_writers_threat(text: str) -> None:
    assert assess(text) == Risk("concern", ("fear",))


def test_a_suicide_threat_used_as_control_is_suicide() -> None:
    risk = assess("she says she'll kill herself if I leave")
    assert risk.level == "suicide"
    assert "suicide_threat" in risk.reasons


def test_a_knife_held_to_ones_own_wrist_is_a_suicide_matter() -> None:
    risk = assess("I'm sitting here with a knife against my wrist")
    assert risk.level == "suicide"
    assert "weapon" not in risk.reasons


# --- what comes out ---------------------------------------------------------------------------


def test_reasons_are_stable_ids_never_the_persons_words() -> None:
    for case in CASES:
        risk = assess(case.text, case.language)
        assert risk.level in LEVELS
        for reason in risk.reasons:
            assert reason in REASON_IDS
            assert reason not in case.text.casefold()
        assert (risk.level == "none") == (risk.reasons == ())


def test_a_risk_cannot_be_changed_after_the_fact() -> None:
    risk = assess("I've got a knife")
    with pytest.raises(FrozenInstanceError):
        risk.level = "none"  # type: ignore[misc]


def test_screening_reads_no_files_once_the_lexicon_is_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lexicon()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the risk screen touched a file while screening")

    monkeypatch.setattr(Path, "read_text", refuse)
    monkeypatch.setattr("builtins.open", refuse)
    assert assess("I've got a knife and I'm going to use it").level == "immediate"


# --- the lexicon as operators' data -----------------------------------------------------------


@pytest.fixture
def lexicon_copy(tmp_path: Path) -> Path:
    root = tmp_path / "risk"
    shutil.copytree(DEFAULT_ROOT, root)
    return root


def test_an_operator_can_add_a_phrase_without_touching_code(lexicon_copy: Path) -> None:
    path = lexicon_copy / "en.yaml"
    data = yaml.safe_load(path.read_text())
    data["reasons"]["weapon"].append("nunchucks")
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    tuned = Lexicon.load(lexicon_copy)
    assert assess("he has nunchucks", lex=tuned).level == "immediate"
    assert assess("he has nunchucks").level == "none"


async def test_the_service_screens_with_the_operators_own_copy_of_content(
    sqlite_url: str, tmp_path: Path
) -> None:
    # HELPLINE_CONTENT_DIR is "the words, if you keep your own copy": its risk/ phrase lists
    # too, not the ones shipped beside the code.
    root = content_copy(tmp_path)
    path = root / "risk" / "en.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["reasons"]["weapon"].append("nunchucks")
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake)
        await person.says("hello")
        assert (await person.says("he has got nunchucks"))[0] == "risk.immediate"
    async with running(settings_for(sqlite_url, tmp_path / "shipped")) as (app, fake, _):
        person = Person(app, fake)
        await person.says("hello")
        assert "risk.immediate" not in await person.says("he has got nunchucks")


def test_a_broken_pattern_fails_at_load_naming_the_reason(lexicon_copy: Path) -> None:
    path = lexicon_copy / "en.yaml"
    data = yaml.safe_load(path.read_text())
    data["reasons"]["weapon"].append("knife(")
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ContentError, match="weapon"):
        Lexicon.load(lexicon_copy)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"when_pst": "concern"}, "unknown keys"),
        ({"when_past": "later"}, "when_past"),
        ({"unless": ["self_directd"]}, "no guard"),
    ],
)
def test_a_mistyped_reason_setting_fails_at_load_instead_of_switching_a_rule_off(
    lexicon_copy: Path, change: dict[str, object], complaint: str
) -> None:
    path = lexicon_copy / "reasons.yaml"
    data = yaml.safe_load(path.read_text())
    data["weapon"].update(change)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ContentError, match=complaint):
        Lexicon.load(lexicon_copy)


def test_the_word_gate_never_hides_a_pattern_that_matches() -> None:
    # The gate skips pattern lines whose first word is absent; it must never skip one that
    # would have matched. Checked against every labelled message and every line.
    from helpline.risk import _prepare

    lex = lexicon()
    for case in CASES:
        prepared, mask = _prepare(case.text, lex)
        chosen = set(map(id, lex.reasons.candidates(mask)))
        for line in lex.reasons.lines:
            if line.pattern.search(prepared):
                assert id(line) in chosen, (case.text, line.pattern.pattern[:60])


def test_reason_ids_are_short_snake_case() -> None:
    for reason in REASON_IDS:
        assert re.fullmatch(r"[a-z]+(?:_[a-z]+)*", reason)


# --- a child hurt --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("I hit my son last night and he has bruises", "concern"),
        ("i hurt my kid", "concern"),
        ("my son has bruises where i grabbed him", "concern"),
        ("wnes i daro fy mab neithiwr", "concern"),
        ("Dw i wedi taro fy mabi", "concern"),
        ("Dw i wedi brifo fy mabi", "concern"),
        ("im hitting my son", "immediate"),
    ],
)
def test_a_child_hurt_is_named_as_a_child_at_risk(text: str, level: str) -> None:
    # The engine answers a child at risk even at "concern" (helpline/engine.py), so the
    # reason must say it was a child, not only that someone was hit.
    risk = assess(text)
    assert risk.level == level
    assert {"child_harmed", "child_in_danger"} & set(risk.reasons)


@pytest.mark.parametrize(
    "text",
    [
        "I touched my daughter",
        "I've been abusing my stepson",
        "I'm attracted to children",
        "I've looked at child abuse images",
        "Dw i wedi cam-drin fy merch yn rhywiol",
    ],
)
def test_sexual_abuse_of_a_child_or_a_sexual_interest_in_children_is_a_child_at_risk(
    text: str,
) -> None:
    assert "child_harmed" in assess(text).reasons


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("I'm going to rape her", "immediate"),
        ("Dw i'n mynd i'w threisio hi", "immediate"),
        ("I raped her", "concern"),
        ("Dw i wedi ei threisio hi", "concern"),
    ],
)
def test_rape_is_a_threat_ahead_and_past_violence_behind(text: str, level: str) -> None:
    assert assess(text).level == level


@pytest.mark.parametrize(
    "text",
    [
        "I touched my daughter's hair",
        "my son's teacher touched on it",
        "I've been abusing alcohol",
        "she was abused as a child",
    ],
)
def test_ordinary_touching_and_other_abuse_are_not_a_child_at_risk(text: str) -> None:
    assert assess(text).level == "none"


@pytest.mark.parametrize(
    "text",
    [
        "i hurt my son's feelings",
        "my son has bruises from football",
        "i push my kids on the swings",
        "i hit my son with the door by accident",
    ],
)
def test_hurt_feelings_play_and_accidents_are_not_a_child_hurt(text: str) -> None:
    assert not {"child_harmed", "child_in_danger"} & set(assess(text).reasons)


@pytest.mark.parametrize(
    "text",
    [
        "my daughter told me her stepdad touches her",
        "my son says his uncle touched him",
        "my stepdaughter says i touched her",
        "mae fy merch wedi dweud bod ei llystad yn ei chyffwrdd",
        "my toddler has burns",
        "the baby's got bruises all over",
        "mae gan y babi gleisiau",
        "he said he'll jump with the baby",
        "my partner's drunk and driving with the kids in the car",
        "i left the baby alone",
        "dw i wedi gadael y babi ar ei ben ei hun",
    ],
)
def test_a_child_at_risk_told_sideways_is_named_as_a_child_at_risk(text: str) -> None:
    # The engine's child guidance fires on these reason ids only (helpline/engine.py).
    assert {"child_harmed", "child_in_danger"} & set(assess(text).reasons)


def test_a_suicide_plan_taking_the_children_is_also_a_child_in_danger() -> None:
    risk = assess("she said she'll drive into a wall with the kids in the car")
    assert risk.level == "immediate"
    assert {"child_in_danger", "suicide_plan"} <= set(risk.reasons)


@pytest.mark.parametrize(
    "text",
    [
        "i'm thinking about ending things with her",
        "im planning to end things and move out",
        "we're ending things",
        "dw i eisiau rhoi diwedd ar bethau gyda hi",
        "I hurt my arm when he pushed me over",
    ],
)
def test_ending_a_relationship_or_an_accidental_hurt_is_not_suicide(text: str) -> None:
    assert assess(text).level not in ("immediate", "suicide")


def test_screening_keeps_none_of_the_words_it_read() -> None:
    # The screen remembers what it worked out about a word, for speed: under the word's hash,
    # never the word, so nothing a person typed outlives "delete my data" in memory.
    words = ("zebediahsmith", "quuxleyroad", "07700900555", "violetstreet")
    lex = Lexicon.load()
    for _ in range(2):  # the second time from what it remembered
        assert assess(f"my name is {' '.join(words)}", "en", lex).level == "none"
        assert assess("I want to kil myself tonight", "en", lex).level == "suicide"
    seen: set[int] = set()
    found: list[str] = []
    todo: list[object] = [lex]
    while todo:
        obj = todo.pop()
        # Not through modules: from a function's globals they reach every module loaded,
        # tests with these very strings among them, which are not the screen's memory.
        if id(obj) in seen or isinstance(obj, (type, re.Pattern, types.ModuleType)):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            found += [w for w in words if w in obj]
            continue
        todo.extend(gc.get_referents(obj))
    assert found == []
