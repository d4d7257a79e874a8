"""Professionals: how referral to local programmes works, what runs in an area, national
services for practitioners, and the helpline's practitioner support (an adviser).

What runs in an area is told as a practitioner needs it: confirmed community programmes
first, or plainly that none is listed; then Drive for what it is (referral only through MARAC
or a police-led panel); then the same for another force area a postcode district is partly in;
then Respect Phoneline, which advises frontline workers."""

from collections.abc import Sequence

from flows.programme import (
    AGAIN_FROM_START,
    KEPT,
    across_border,
    area_name,
    border_state,
    elsewhere,
    elsewhere_vars,
    entry_lines,
    goodbye,
    keep_area,
    not_a_place,
    stored_area,
    with_edges,
    without_postcodes,
)
from helpline.content import normalise
from helpline.directory import AreaMatch, Directory, Programme
from helpline.errors import ContentError
from helpline.flowkit import FlowSpec, Option, State, Turn, mentions

# The national line that advises frontline workers (content/directory/services.yaml).
PRACTITIONER_LINE = "respect-phoneline"


def _hand_off(turn: Turn) -> None:
    turn.answers["queue"] = "helpline"
    turn.effect("handoff", queue="helpline", reason="practitioner")


def _directory(turn: Turn) -> Directory:
    if turn.content.directory is None:
        raise ContentError("content/directory is missing: the professional journey needs it")
    return turn.content.directory


def _find(turn: Turn, text: str, within: Sequence[str] | None = None) -> str | None:
    # A place here first: "I moved from Glasgow to Cardiff" is Cardiff (find_area).
    match = _directory(turn).find_area(text, loosely_within=within)
    if match is None and across_border(turn, text):
        return "border"
    if match is None:
        return "outside" if elsewhere(turn, text) else None
    keep_area(turn, match)
    return "found"


def _placed(turn: Turn, text: str, within: Sequence[str] | None = None) -> str | None:
    found = _find(turn, text, within)
    if found is None and not_a_place(turn, text):
        return "no_area"
    return found


def _area_named(turn: Turn, text: str) -> str | None:
    """Programmes asked for with the place named ("what runs in Cardiff?"): the area is shown
    at once, not asked for again. Without a place it is the "programmes" option as usual."""
    if not mentions(normalise(text), turn.content.all_words("want_programme")):
        return None
    return _find(turn, text)


def _area(turn: Turn) -> AreaMatch:
    area = stored_area(turn)
    if area is None:
        raise ContentError("the professional journey shows an area before asking for one")
    return area


def _community(turn: Turn, p: Programme) -> str:
    return "\n".join(entry_lines(turn, p))


def _tell_area(turn: Turn, area: AreaMatch, edge: bool, told: set[str]) -> None:
    """What runs in one force area; `edge`: another force area the postcode district is
    partly in, told only if something is listed there. `told`: programmes already told."""
    directory = _directory(turn)
    name = area_name(turn, area)
    lang = turn.language
    # The same lookup as a person referring themselves: confirmed programmes open to
    # self-referral and to professionals' referrals. Never Drive, never a placeholder.
    community = [p for p in directory.programmes_for(area) if p.id not in told]
    only = [p for p in directory.referral_only_programmes(area) if p.id not in told]
    told.update(p.id for p in (*community, *only))
    if edge and (community or only):
        turn.say("professional.area_edge", area=name)
    elif not edge:
        turn.say("professional.area_found" if community else "professional.area_none", area=name)
    for p in community:
        turn.say_text(_community(turn, p))
    for p in only:
        turn.say(
            "professional.area_referral_only",
            name=p.name(lang),
            area=name,
            offer=p.offer.get(lang),
            referral=p.referral_route.get(lang),
        )


def _show_area(turn: Turn) -> None:
    directory = _directory(turn)
    lang = turn.language
    told: set[str] = set()
    for n, area in enumerate(with_edges(turn, _area(turn))):
        _tell_area(turn, area, n > 0, told)
    line = directory.service(PRACTITIONER_LINE)
    phone = next(c.value for c in line.contacts if c.channel == "phone")
    turn.say("professional.area_line", name=line.name(lang), phone=phone)


TOPICS = (
    Option("professional.opt_referral", "referral", keywords="topic_referral"),
    Option("professional.opt_area", "area", keywords="want_programme"),
    Option("professional.opt_support", "support", keywords="want_adviser"),
    Option("professional.opt_services", "services", keywords="topic_services"),
)
MORE = (*TOPICS, Option("flow.opt_done", "done", keywords="done"))
INFO = ("referral", "services", "area_shown", "outside", "no_area")

FLOW = FlowSpec(
    name="professional",
    initial="start",
    states=(
        State(
            "start",
            say=("professional.start",),
            options=TOPICS,
            interpret_first=_area_named,
            **KEPT,
        ),
        State(
            "referral",
            say=("professional.referral", "professional.more"),
            options=MORE,
            interpret_first=_area_named,
            **KEPT,
        ),
        State(
            "services",
            say=("professional.services", "professional.more"),
            options=MORE,
            interpret_first=_area_named,
            **KEPT,
        ),
        State(
            "area",
            say=("professional.area_ask",),
            interpret=_placed,
            retry="programme.retry",
            scrub=without_postcodes,
            scrub_in_danger=False,  # a place said with danger: whoever decides on 999 needs it
        ),
        border_state(_placed),
        State(
            "area_shown",
            enter=(_show_area,),
            say=("professional.more",),
            options=MORE,
            interpret_first=_area_named,
            **KEPT,
        ),
        State(
            "outside",
            enter=(elsewhere_vars,),
            say=("programme.outside", "professional.more"),
            options=MORE,
            interpret_first=_area_named,
            **KEPT,
        ),
        State(
            "no_area",
            say=("professional.no_area", "professional.more"),
            options=MORE,
            interpret_first=_area_named,
            **KEPT,
        ),
        State("support", enter=(_hand_off,), **KEPT),
        State(
            "end",
            say=("professional.end",),
            options=(AGAIN_FROM_START,),
            interpret=goodbye,
            **KEPT,
        ),
        State(
            "bye", say=("programme.bye",), options=(AGAIN_FROM_START,), interpret=goodbye, **KEPT
        ),
    ),
    transitions=(
        {"trigger": "referral", "source": ["start", *INFO], "dest": "referral"},
        {"trigger": "services", "source": ["start", *INFO], "dest": "services"},
        {"trigger": "area", "source": ["start", *INFO], "dest": "area"},
        {"trigger": "found", "source": ["area", "border", "start", *INFO], "dest": "area_shown"},
        {"trigger": "outside", "source": ["area", "border", "start", *INFO], "dest": "outside"},
        {"trigger": "border", "source": ["area", "start", *INFO], "dest": "border"},
        {"trigger": "no_area", "source": ["area", "border"], "dest": "no_area"},
        {"trigger": "support", "source": ["start", *INFO], "dest": "support"},
        {"trigger": "done", "source": list(INFO), "dest": "end"},
        {"trigger": "bye", "source": ["end", "bye"], "dest": "bye"},
        {"trigger": "again", "source": ["end", "bye"], "dest": "goto:welcome.who"},
    ),
)
