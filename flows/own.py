"""Own behaviour: a person worried about how they treat a partner, ex or family member.

A few questions they can skip, then what they want now: an adviser, a call back at a safe
time, a programme near them, or things to do today. Every ending signposts and offers a
person. No name is ever asked for. Someone who waits a long time for an adviser is offered a
call back (or other routes) here too: the queue shows them the `wait_offer` state."""

import re
from collections.abc import Iterator

from flows.programme import KEPT
from flows.welcome import NOT_HURT, who_said
from helpline.content import normalise
from helpline.directory import normalise_uk_callback_number
from helpline.flowkit import FlowSpec, Option, State, Turn, longest_mention
from helpline.ports import CALLBACK_WINDOW_LONGEST

# Channels whose address is a phone number an adviser can call back (Twilio SMS, WhatsApp).
PHONE_CHANNELS = frozenset({"sms", "whatsapp"})
# A run of digits with the spaces, dots, dashes, slashes and brackets people type between
# them ("+44 (0)7700 900123", "07700/900123"), inside other words.
_DIGITS = re.compile(r"\+?\d(?:[\s.:\-/()]*\d)+")
# Seven digits or more is a phone number, or as good as one, callable or not.
_LONGEST_KEPT = 6
# What a run of that length may be instead and is kept: times and dates ("9.30-12.30",
# "10.00 - 12.00", "1/12/2026"), each piece checked so a number cannot pass as them.
_TIME = r"(?P<h>\d{1,2})\.(?P<m>\d{2})"
_DATE = r"(?P<d>\d{1,2})(?P<s>[/.])(?P<mo>\d{1,2})(?P=s)(?:\d{4}|\d{2})"
_PIECE = re.compile(rf"{_DATE}|{_TIME}|\d{{1,2}}")
_BETWEEN = re.compile(r"\s*[-/]?\s*")
_BARE_HOURS = 4
_LEADING_HOUR = re.compile(r"(?:\d{1,3}|\d{1,2}[.:]\d{2})\s+")
# Digits beside the number that leave it theirs: an hour ("after 6pm"), 999 ("call 999 …").
_SHORT_DIGITS = re.compile(r"\d{1,4}(?:am|pm)?")
# The groups of a run of digits as typed ("07700", "900123", "999-07700": two).
_GROUP = re.compile(r"[^\s\-/.:()]+")
# The emergency and police numbers, kept as a group of their own in a run of digits.
_EMERGENCY = frozenset({"999", "112", "101", "111"})
# What may stand between the groups of a run of digits, around what is kept of it.
_SEPARATORS = " \t\n-/"
# The most digits one number we could call is typed with ("0044 (0)7700 900123").
_LONGEST_NUMBER = 16
# A date or a time written as one ("1/12/2026", "02.12.2026", "01-12-26", "10:00", "9.30"),
# never part of a number: "01/12/2026 10" has the digits of a landline (see _written).
_DATE_OR_TIME = re.compile(
    r"(?<![\d.:/\-])(?P<d>\d{1,2})(?P<sep>[/.\-])(?P<mo>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})"
    r"(?!\d|[.:/\-]\d)"
    r"|(?<![\d.:/])(?P<h>\d{1,2})[.:](?P<mi>\d{2})(?!\d|[.:/]\d)"  # "14:00-16:00" too
)


def _written(typed: str) -> list[tuple[int, int]]:
    """Where `typed` holds a date or a time written as one, never a number's digits: a real
    day and month with a four-figure year, or a two-figure one after slashes ("1/12/26"; in
    "07700 12.09.87" or "+44 1632 12-10-81" those are a number's last digits); or a real
    hour and minute standing alone ("9.30", "18:30"; not the ".05.48" of "+447.946.25.05.48")."""
    spans = []
    for m in _DATE_OR_TIME.finditer(typed):
        if m.group("d") is not None:
            real = 1 <= int(m.group("d")) <= 31 and 1 <= int(m.group("mo")) <= 12
            real = real and (len(m.group("y")) == 4 or m.group("sep") == "/")
        else:
            real = int(m.group("h")) <= 23 and int(m.group("mi")) <= 59
        if real:
            spans.append(m.span())
    return spans


def _being_hurt(turn: Turn, text: str) -> str | None:
    """At any question here, a clear "he hits me" (welcome's own check, in either language)
    moves them to the victim signposting, and "I hit her but she hits me too" to the help for
    both, before any option reads a word of it ("my husband" is not the answer "partner").
    Only on plain words (who_hurt_clear: "he hits me", "yn fy nharo"): they have already said
    they cause harm, and "I'm scared of my wife leaving" or "she pushed me to get help" must
    not take them from the help with it."""
    said = normalise(text)
    if not longest_mention(said, turn.content.all_words("who_hurt_clear")):
        return None
    not_hurt: tuple[str, ...] = (*NOT_HURT, "who_hurt_unclear")
    # "She hurt me when she cheated" is hurt feelings, not a reason to leave the help with
    # what they do; a blow said beside it still is ("he hit me when I found out he cheated").
    if longest_mention(said, turn.content.all_words("who_hurt_feelings")):
        not_hurt = (*not_hurt, "who_hurt_emotional")
    # Judged by the same plain words: the welcome's wider list lacks many of them ("he
    # punches me", "she slaps me"), which would pass the check above and switch nobody.
    who = who_said(turn, text, not_hurt, hurt="who_hurt_clear")
    if who not in ("hurt", "both"):
        return None
    turn.answers["who"] = who
    return who


def _hand_off(turn: Turn) -> None:
    turn.answers["queue"] = "helpline"
    turn.effect("handoff", queue="helpline", reason="asked")


def _children_note(turn: Turn) -> None:
    if turn.answers.get("children") == "yes":
        turn.say("own.children_note")


def _after_window(turn: Turn) -> str | None:
    # On SMS and WhatsApp we can call the number they write from, if they want; elsewhere
    # we must ask for one.
    return "callback_which" if turn.conversation.channel in PHONE_CHANNELS else "callback_number"


def callback_number(text: str) -> str | None:
    """The UK mobile or landline in what was typed, or None (999, 101, helplines refused)."""
    found = _number_at(text)
    return found[0] if found is not None else None


def _number_at(text: str) -> tuple[str, int, int] | None:
    """The number `callback_number` reads, and where it is in `text`: the whole message, or
    the groups of a run of digits that make one ("call 999 07700 900123 now": not the 999;
    "1/12/2026 07700 900123": not the date)."""
    try:
        if _written(text):
            raise ValueError("a date or a time is no number")
        number = normalise_uk_callback_number(text.strip())
    except ValueError:
        pass
    else:
        return number, len(text) - len(text.lstrip()), len(text.rstrip())
    for run in _DIGITS.finditer(text):
        groups = _groups(run.group(0))
        for i in range(len(groups)):
            found = _number_from(run.group(0), groups, i)
            if found is not None:
                return found[0], run.start() + groups[i][0], run.start() + found[1]
    return None


def _groups(typed: str) -> list[tuple[int, int, str | None]]:
    """The groups of a run of digits: where each starts and ends, and its digits (None for
    a group in a date or a time, which no number may start in or reach into)."""
    written = _written(typed)
    groups: list[tuple[int, int, str | None]] = []
    at = 0  # both in order: the first date or time not yet behind this group
    for g in _GROUP.finditer(typed):
        while at < len(written) and written[at][1] <= g.start():
            at += 1
        inside = at < len(written) and written[at][0] < g.end()
        groups.append((g.start(), g.end(), None if inside else re.sub(r"\D", "", g.group(0))))
    return groups


def _number_from(
    typed: str, groups: list[tuple[int, int, str | None]], i: int
) -> tuple[str, int] | None:
    """The number that starts at the i-th group of a run of digits, and where it ends: the
    most groups that make one, of those few enough to ("0044 (0)7700 900123")."""
    digits, ends = "", []
    # A number is at most _LONGEST_NUMBER groups of a digit or more: "0 7 7 0 0 ...". Groups
    # with no digit (" . . .") end it too, or each start would read to the end of the run.
    for _, end, more in groups[i : i + _LONGEST_NUMBER]:
        if not more:
            break  # a date or a time (None), or no digit
        digits += more
        if len(digits) > _LONGEST_NUMBER:
            break
        if _may_be_number(digits):
            ends.append(end)
    for end in reversed(ends):
        try:
            return normalise_uk_callback_number(typed[groups[i][0] : end]), end
        except ValueError:
            continue
    return None


def _may_be_number(digits: str) -> bool:
    """Quickly, whether these digits could be a UK mobile or landline (07..., 01..., 02...,
    03..., after 44 or 0044 perhaps): only those are read as one, which keeps a long run of
    digits quick to read."""
    for prefix in ("0044", "44"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
            digits = digits if digits.startswith("0") else "0" + digits
            break
    return 10 <= len(digits) <= 11 and digits[:2] in ("01", "02", "03", "07")


def _number(turn: Turn, text: str) -> str | None:
    number = callback_number(text)
    if number is None:
        return None
    # Only in memory for this turn: the call-back effect seals it; never in answers.
    turn.vars["callback_number"] = number
    return "number"


def _own_number_alone(turn: Turn, text: str) -> str | None:
    """The number as the answer once a hand-off has cut the question short: only a number
    sent on its own, or with words that make it theirs ("it's", "call me on", "ffoniwch fi
    ar"; keywords callback_own_words), never beside words about someone else ("his number",
    "the police on", "crime ref"; callback_someone_else). Anything else is for the adviser,
    as written: an adviser must never be sent to call a partner, a victim or the police."""
    found = _number_at(text)
    if found is None:
        return None
    number, start, end = found
    said = normalise(text)
    if _says_any(said, turn.content.all_words("callback_someone_else")):
        return None
    own = set(turn.content.all_words("callback_own_words"))
    rest = normalise(f"{text[:start]} {text[end:]}").split()
    if not all(word in own or _SHORT_DIGITS.fullmatch(word) for word in rest):
        return None
    # "Call", "ring", "text" beside it make it theirs only with "me" ("call me on ..."): "I'll
    # ring ...", "ring ...", "ffonia i ..." is a number they will ring, or want rung.
    calling = set(turn.content.all_words("callback_call_words"))
    if calling.intersection(rest) and not set(turn.content.all_words("callback_me")) & set(rest):
        return None
    turn.vars["callback_number"] = number
    times = set(turn.content.all_words("callback_time_words"))
    if any(word in times or any(c.isdigit() for c in word) for word in rest):
        turn.vars["callback_when"] = without_numbers(text).strip()  # "call me now …"
    return "number"


def _says_any(said: str, words: tuple[str, ...]) -> bool:
    """Whether normalised text holds any of these words, or phrases, anywhere in it."""
    padded, single = f" {said} ", set(said.split())
    return any(w in single or (" " in w and f" {w} " in padded) for w in words)


def without_numbers(text: str) -> str:
    """The safe time as typed, less any phone number in it ("after 6 on 07700 900123"): the
    number is asked for on its own and kept only sealed. Any run of seven digits or more
    goes, not only a number we could call ("+44 (0)7700 900987", "0044 7700 900987"), but
    a time or a date ("9.30-12.30", "1/12/2026") stays, and so does 999 (or 112, 101, 111)
    beside a number: the console's danger mark is read from what is kept ("call 999 …")."""
    return _DIGITS.sub(lambda run: _scrubbed(run.group(0)), text)


def _scrubbed(run: str) -> str:
    """A run of digits less the numbers in it: only the digits read as a number go, and 999
    (112, 101, 111), a date or hours beside one stay ("call 999 …", "1/12/2026 …")."""
    out, at = [], 0
    for start, end, number in _pieces(run):
        out += [_stretch(run[at:start]), "…" if number else run[start:end]]
        at = end
    out.append(_stretch(run[at:]))
    return "".join(out)


def _pieces(run: str) -> Iterator[tuple[int, int, bool]]:
    """The numbers we could call in a run of digits (True) and the emergency numbers beside
    them (False), left to right, where each starts and ends."""
    groups = _groups(run)
    i = 0
    while i < len(groups):
        found = _number_from(run, groups, i)
        if found is not None:
            yield groups[i][0], found[1], True
            while i < len(groups) and groups[i][1] <= found[1]:
                i += 1
            continue
        if groups[i][2] in _EMERGENCY:  # "999", "999.", "(999)"
            yield groups[i][0], groups[i][1], False
        i += 1


def _stretch(typed: str) -> str:
    """The rest of a run of digits: seven digits or more go, unless they are times and dates
    ("9.30-12.30"); an hour (or a short group) before them stays ("after 6 …")."""
    core = typed.strip(_SEPARATORS)
    undated = "".join(core[b:e] for b, e in _gaps(core, _written(core)))
    if _digits(undated) <= _LONGEST_KEPT or _times_or_dates(core):
        return typed  # with its dates and times, a few digits ("1/12/2026 10", "6 9.30 10-12")
    lead = typed[: typed.index(core)]
    tail = typed[len(lead) + len(core) :]
    hour = _LEADING_HOUR.match(core)
    if hour and _digits(core[hour.end() :]) > _LONGEST_KEPT:
        return lead + hour.group(0) + "…" + tail
    return lead + "…" + tail


def _gaps(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The stretches of `text` outside these spans (in order, not overlapping)."""
    gaps, at = [], 0
    for start, end in spans:
        gaps.append((at, start))
        at = end
    return [*gaps, (at, len(text))]


def _digits(text: str) -> int:
    return sum(c.isdigit() for c in text)


def _times_or_dates(run: str) -> bool:
    """Whether a run of digits is only times and dates ("9.30 - 12.30"), at least one of
    them written as one (a bare "12 34 56 78" is not)."""
    at, written, bare = 0, False, 0
    while at < len(run):
        if at:
            gap = _BETWEEN.match(run, at)
            at = gap.end() if gap else at
        piece = _PIECE.match(run, at)
        if piece is None or not _plausible(piece):
            return False
        if piece.group(0).isdigit():
            bare += len(piece.group(0))
        else:
            written = True
        at = piece.end()
    # Bare hours beside them ("1/12/2026 10-12", "9.30-12") are a few digits; more is a
    # number read as hours ("6.30 07700 900123").
    return written and bare <= _BARE_HOURS


def _plausible(piece: re.Match[str]) -> bool:
    if piece.group("h") is not None:
        return int(piece.group("h")) <= 24 and int(piece.group("m")) <= 59
    if piece.group("d") is not None:
        return 1 <= int(piece.group("d")) <= 31 and 1 <= int(piece.group("mo")) <= 12
    return True


def _book_callback(turn: Turn) -> None:
    window = without_numbers(str(turn.answers.pop("callback_window", "")))
    number = turn.vars.pop("callback_number", None)
    this_number = turn.answers.pop("callback_on", None) == "this" and number is None
    # The number goes to the console's call-back list only (sealed there), never to answers.
    # With `this_number` the console's side uses the number they are texting from; if that
    # cannot be called it asks again at `ask_again`.
    turn.effect(
        "callback",
        window=window,
        number=number,
        this_number=this_number,
        queue=turn.answers.get("queue", "helpline"),
        ask_again="callback_number",
        unusable="own.callback_unusable",
    )
    turn.answers["callback"] = True


def _book_callback_waiting(turn: Turn) -> str:
    """The number typed once danger had handed them to an adviser at "what number should we
    call?": the call-back is booked with it, sealed, and they stay where they are (queued,
    or with the adviser, who sees the call-back and can show its number). Leaving the queue
    then brings them to the booked call-back's options, not the question again. When to
    call said with the number ("now", "after 6pm") is added to the time they gave."""
    when = turn.vars.pop("callback_when", None)
    if when:
        # What they said now is kept whole (up to half the room); the time given before is
        # shortened if the two do not fit the call-back list's 200 characters.
        half = CALLBACK_WINDOW_LONGEST // 2
        said = when if len(when) <= half else when[:half] + "…"
        window = str(turn.answers.get("callback_window", ""))
        room = CALLBACK_WINDOW_LONGEST - len(
            turn.t("own.callback_window_then", window="", said=said)
        )
        if len(window) > room:
            window = window[: max(room - 1, 0)] + "…"
        turn.answers["callback_window"] = turn.t(
            "own.callback_window_then", window=window, said=said
        )
    _book_callback(turn)
    turn.say("own.callback_kept_waiting")
    return "callback_done"


# What a person who came through another door is told where the own-behaviour journey's words
# would not fit them: someone being hurt (welcome's "who" answer "hurt") gets the victim
# services, never the Respect Phoneline first or "a partner who is affected"; a friend or
# relative ("other") the family wording. Anyone else, as the own-behaviour journey says it.
_ENDING = {"hurt": "victim.callback_end", "other": "family.end"}
_OTHER_ROUTES = {"hurt": "handoff.other_routes_victim", "other": "handoff.other_routes_family"}


def _said_for(turn: Turn, by_who: dict[str, str], default: str) -> None:
    turn.say(by_who.get(str(turn.answers.get("who")), default))


def _call_back_booked(turn: Turn) -> None:
    turn.say("own.callback_done")
    _said_for(turn, _ENDING, "own.end")


def _other_routes(turn: Turn) -> None:
    _said_for(turn, _OTHER_ROUTES, "handoff.other_routes")


def _leave_queue_for_callback(turn: Turn) -> str:
    # Nobody will join: they are called back instead, so they leave the queue now (and the
    # number they give next is not forwarded to a console as a message to an adviser).
    turn.effect("cancel_handoff")
    turn.say("handoff.callback_instead")
    return "callback"


# Where "he hits me" is listened for (`_being_hurt`): not the call-back's own questions, which
# someone being hurt reaches from the victim signposting to be called back.
QUESTIONS = ("start", "children", "want", "today", "end")

MORE = (
    Option("own.opt_adviser", "adviser", keywords="want_adviser"),
    Option("own.opt_programme", "programme", keywords="want_programme"),
    Option("own.opt_done", "done", keywords="done"),
)

FLOW = FlowSpec(
    name="own",
    initial="start",
    states=(
        State(
            "start",
            say=("own.start", "own.about"),
            interpret_first=_being_hurt,
            options=(
                Option("own.opt_partner", "next", answer="partner", keywords="about_partner"),
                Option("own.opt_ex", "next", answer="ex", keywords="about_ex", rank=1),
                Option("own.opt_family", "next", answer="family", keywords="about_family"),
                Option("flow.opt_skip", "next", answer="unsaid", keywords="skip"),
            ),
            store_as="about",
        ),
        State(
            "children",
            say=("own.children",),
            interpret_first=_being_hurt,
            options=(
                Option("flow.opt_yes", "next", answer="yes", keywords="yes"),
                Option("flow.opt_no", "next", answer="no", keywords="no"),
                Option("flow.opt_skip", "next", answer="unsaid", keywords="skip", rank=1),
            ),
            store_as="children",
        ),
        State(
            "want",
            say=("own.want",),
            interpret_first=_being_hurt,
            # "a programme near NP20 1AB": kept as the area only, as the programme promises.
            **KEPT,
            enter=(_children_note,),
            options=(
                Option("own.opt_adviser", "adviser", keywords="want_adviser"),
                Option("own.opt_callback", "callback", keywords="want_callback", rank=1),
                Option("own.opt_programme", "programme", keywords="want_programme"),
                Option("own.opt_today", "today", keywords="want_today"),
            ),
            store_as="own_next",
        ),
        State("adviser", enter=(_hand_off,)),
        State(
            "callback",
            say=("own.callback_when",),
            store_as="callback_window",
            free_text="window",
            scrub=without_numbers,
        ),
        State(
            "callback_check", enter=(_after_window,), exits=("callback_which", "callback_number")
        ),
        State(
            "callback_which",
            say=("own.callback_which",),
            options=(
                Option("own.opt_this_number", "this", answer="this"),
                Option("own.opt_other_number", "other", answer="other"),
            ),
            store_as="callback_on",
        ),
        State(
            "callback_number",
            say=("own.callback_number",),
            interpret=_number,
            retry="own.callback_number_retry",
            redacted="own.callback_number_given",
            scrub=without_numbers,
            answered_later=(_book_callback_waiting,),
            interpret_later=_own_number_alone,
        ),
        State(
            "callback_done",
            enter=(_book_callback, _call_back_booked),
            options=(Option("flow.opt_start_again", "again", keywords="start_again"),),
        ),
        State("today", say=("own.today", "own.more"), options=MORE, interpret_first=_being_hurt),
        # Shown by the queue to someone who has waited a long time (helpline/routing.py).
        State(
            "wait_offer",
            say=("handoff.wait_offer",),
            options=(
                Option("handoff.opt_keep_waiting", "wait"),
                Option("own.opt_callback", "callback", keywords="want_callback"),
                Option("handoff.opt_other_routes", "routes"),
            ),
            while_queued=True,
        ),
        # Out of hours the queue puts these options on its "we're closed" message.
        State(
            "closed_offer",
            options=(
                Option("handoff.opt_leave_message", "wait"),
                Option("own.opt_callback", "callback", keywords="want_callback"),
            ),
            while_queued=True,
        ),
        State("wait_callback", enter=(_leave_queue_for_callback,), exits=("callback",)),
        State("leave_message", say=("handoff.leave_message",)),
        State("waiting", say=("handoff.keep_waiting",)),
        State("wait_routes", enter=(_other_routes,)),
        State(
            "end",
            say=("own.end",),
            interpret_first=_being_hurt,
            options=(
                Option("own.opt_adviser", "adviser", keywords="want_adviser"),
                Option("flow.opt_start_again", "again", keywords="start_again"),
            ),
        ),
    ),
    transitions=(
        {"trigger": "next", "source": "start", "dest": "children"},
        {"trigger": "next", "source": "children", "dest": "want"},
        {"trigger": "adviser", "source": ["want", "today", "end"], "dest": "adviser"},
        {"trigger": "callback", "source": "want", "dest": "callback"},
        {"trigger": "window", "source": "callback", "dest": "callback_check"},
        {"trigger": "this", "source": "callback_which", "dest": "callback_done"},
        {"trigger": "other", "source": "callback_which", "dest": "callback_number"},
        {"trigger": "number", "source": "callback_number", "dest": "callback_done"},
        {"trigger": "wait", "source": "wait_offer", "dest": "waiting"},
        {"trigger": "callback", "source": ["wait_offer", "closed_offer"], "dest": "wait_callback"},
        {"trigger": "wait", "source": "closed_offer", "dest": "leave_message"},
        {"trigger": "routes", "source": "wait_offer", "dest": "wait_routes"},
        {"trigger": "programme", "source": ["want", "today"], "dest": "goto:programme"},
        {"trigger": "today", "source": "want", "dest": "today"},
        {"trigger": "done", "source": "today", "dest": "end"},
        {"trigger": "again", "source": ["end", "callback_done"], "dest": "goto:welcome.who"},
        {"trigger": "hurt", "source": list(QUESTIONS), "dest": "goto:victim"},
        {"trigger": "both", "source": list(QUESTIONS), "dest": "goto:welcome.both"},
    ),
)
