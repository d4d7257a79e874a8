"""A programme near me: find local behaviour-change programmes by postcode district, council or
police force area (typos tolerated), say what each offers, who it is for and how to join, and,
with explicit consent, make a minimal referral (what will be shared is shown first).

Drive is never offered to someone referring themselves (Directory.programmes_for leaves it out
unless a professional is asking). Only the area found is kept, never what was typed; for a
postcode district on the edge of two police force areas, the other's programmes are shown too."""

import re
from collections.abc import Callable, Sequence
from typing import Any

from flows.answers import UNCLEAR, UNSURE, yes_or_no
from helpline.content import normalise
from helpline.directory import AreaMatch, Directory, Programme
from helpline.errors import ContentError
from helpline.flowkit import FlowSpec, Option, State, Turn, longest_mention
from helpline.ports import helpline_queue

# A postcode as typed, whole or in part ("NP20", "NP20 1", "np20 1ab"): the area found is
# kept, never this. A sector or a full postcode narrows a person down to a few streets.
_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?(?:\s*\d(?:[A-Z]{2})?)?\b", re.IGNORECASE)


def without_postcodes(text: str) -> str:
    """The answer to "where are you?" as the transcript keeps it: any postcode in it left out
    ("near NP20 1" -> "near …"); a council or town name stays, as the adviser may need it."""
    return _POSTCODE.sub("…", text)


# Every answer in these journeys is kept without a postcode in it ("another area, NP20 1AB",
# "what runs near CF10 2AT?"), not only the answer to "where are you?"; words about danger
# are kept whole, as whoever decides on calling 999 may need to know where.
KEPT: dict[str, Any] = {"scrub": without_postcodes, "scrub_in_danger": False}


def _directory(turn: Turn) -> Directory:
    if turn.content.directory is None:
        raise ContentError("content/directory is missing: the programme journey needs it")
    return turn.content.directory


def _professional(turn: Turn) -> bool:
    return turn.answers.get("who") == "professional"


def stored_area(turn: Turn) -> AreaMatch | None:
    """The area kept in the answers (keep_area), if any."""
    found = turn.answers.get("area")
    if not isinstance(found, dict):
        return None
    also = tuple(str(force) for force in found.get("also", ()))
    return AreaMatch(found["force"], found.get("la"), found["nation"], "stored", also)


def keep_area(turn: Turn, match: AreaMatch) -> None:
    """Only the area found is kept, never what was typed; for a postcode district partly
    policed by another force (HR3, Hay-on-Wye), that force's id too."""
    kept: dict[str, Any] = {
        "force": match.police_force_area,
        "la": match.local_authority,
        "nation": match.nation,
    }
    if match.also_possible:
        kept["also"] = list(match.also_possible)
    turn.answers["area"] = kept


def with_edges(turn: Turn, area: AreaMatch) -> list[AreaMatch]:
    """The area found, then each other force area its postcode district is partly in (the
    whole force: which of its councils is not known, so a programme for only some of them is
    not listed there; Directory.programmes_for)."""
    directory = _directory(turn)
    others = [
        AreaMatch(force, None, directory.force(force).nation, "edge")
        for force in area.also_possible
    ]
    return [area, *others]


def area_name(
    turn: Turn, area: AreaMatch, lang: str | None = None, *, in_words: bool = True
) -> str:
    """The council's name, or the force's as an area ("the South Wales Police area"): a
    force is not a place. `in_words=False`: the force's name alone (a referral's record)."""
    force = _directory(turn).force(area.police_force_area)
    lang = lang or turn.language
    if area.local_authority:
        return force.local_authority(area.local_authority).name(lang)
    if not in_words:
        return force.name(lang)
    return turn.content.text("programme.force_area", lang, force=force.name(lang))


def _groups(turn: Turn) -> list[tuple[AreaMatch, list[Programme]]]:
    """The programmes of the area found, then of any other force area on the edge of it,
    each programme once."""
    area = stored_area(turn)
    if area is None:
        return []
    groups: list[tuple[AreaMatch, list[Programme]]] = []
    seen: set[str] = set()
    for where in with_edges(turn, area):
        found = _directory(turn).programmes_for(where, self_referral=not _professional(turn))
        groups.append((where, [p for p in found if p.id not in seen]))
        seen.update(p.id for p in found)
    return groups


def _programmes(turn: Turn) -> list[Programme]:
    return [p for _, programmes in _groups(turn) for p in programmes]


def _referable(turn: Turn) -> list[Programme]:
    if _professional(turn):
        return []  # professionals refer through the programme's own route
    return [p for p in _programmes(turn) if p.self_referral and p.accepts_referrals_via_helpline]


def _find(turn: Turn, text: str, within: Sequence[str] | None = None) -> str | None:
    match = _directory(turn).find_area(text, loosely_within=within)
    if match is None:
        return None
    keep_area(turn, match)
    return "found" if _programmes(turn) else "none"


def elsewhere(turn: Turn, text: str) -> bool:
    """Whether the person named a place outside England and Wales; kept (only the nation or
    island, as the service covers neither) for saying so."""
    where = _directory(turn).elsewhere(text)
    if where is None:
        return False
    turn.answers["elsewhere"] = {"en": where.en, "cy": where.cy}
    return True


def across_border(turn: Turn, text: str) -> bool:
    """Whether the person gave a postcode district on both sides of the border with Scotland
    (TD12: Coldstream and Cornhill-on-Tweed): they are asked which town or village, never
    told the service does not cover them. Only the nation over the border is kept."""
    where = _directory(turn).across_border(text)
    if where is None:
        return False
    turn.answers["elsewhere"] = {"en": where.en, "cy": where.cy}
    turn.answers["border_forces"] = list(_directory(turn).border_forces(text))
    return True


def border_forces(turn: Turn) -> list[str]:
    """The police force areas here on the edge of the postcode district across the border
    (TD12: Northumbria): only their places are taken for a typo of the town named next."""
    return [str(force) for force in turn.answers.get("border_forces") or ()]


def elsewhere_vars(turn: Turn) -> None:
    where = turn.answers.get("elsewhere") or {}
    turn.vars["where"] = where.get(turn.language, "")


def not_a_place(turn: Turn, text: str) -> bool:
    """ "Rather not say", "I'm homeless": no place to look up, and no reason to ask again."""
    return longest_mention(normalise(text), _directory(turn).not_a_place) > 0


def _placed(turn: Turn, text: str, within: Sequence[str] | None = None) -> str | None:
    # A place here first: "I moved from Glasgow to Cardiff" is Cardiff (find_area).
    found = _find(turn, text, within)
    if found is None and across_border(turn, text):
        return "border"
    if found is None and elsewhere(turn, text):
        return "outside"
    if found is None and not_a_place(turn, text):
        return "no_area"
    return found


def border_state(placed: Callable[[Turn, str, Sequence[str] | None], str | None]) -> State:
    """Which town or village, after a postcode district across the border with Scotland,
    read by the journey's own `placed` (a typo only to a place in the forces the district
    reaches). The postcode again is no answer: asked again, and counted, so an adviser is
    offered. The question is said last, on its own, so an empty message gets it again."""

    def at_border(turn: Turn, text: str) -> str | None:
        if across_border(turn, text):
            return None
        # A conversation at this question from before the forces were kept: any typo.
        return placed(turn, text, border_forces(turn) or None)

    return State(
        "border",
        say=("programme.border", "programme.border_ask"),
        enter=(elsewhere_vars,),
        interpret=at_border,
        retry="programme.border_retry",
        scrub=without_postcodes,
        scrub_in_danger=False,
    )


def goodbye(turn: Turn, text: str) -> str | None:
    """At the end, "thanks", "bye" or "ok" is a goodbye, said back, not a misunderstanding."""
    said = normalise(text)
    words = ("done", "yes", "carry_on")
    return "bye" if any(turn.content.is_exactly(w, said) for w in words) else None


def _area_vars(turn: Turn) -> None:
    area = stored_area(turn)
    turn.vars["area"] = area_name(turn, area) if area else ""


def entry_lines(turn: Turn, p: Programme) -> list[str]:
    """A programme as the directory describes it, and how to contact it."""
    lang = turn.language
    lines = [
        turn.t(
            "programme.entry",
            name=p.name(lang),
            offer=p.offer.get(lang),
            eligibility=p.eligibility.get(lang),
            referral=p.referral_route.get(lang),
            cost=p.cost.get(lang),
        )
    ]
    return lines + [turn.t(f"contact.{c.channel}", value=c.value) for c in p.contacts]


def _describe(turn: Turn, p: Programme) -> str:
    lang = turn.language
    lines = entry_lines(turn, p)
    if p.self_referral and p.partner_contact:
        note = p.partner_contact_note.get(lang) if p.partner_contact_note else None
        lines.append(note or turn.t("programme.partner_contact"))
    return "\n".join(lines)


def _show(turn: Turn) -> str:
    for n, (where, programmes) in enumerate(_groups(turn)):
        if programmes:
            key = "programme.found" if n == 0 else "programme.edge"
            turn.say(key, area=area_name(turn, where))
        for p in programmes:
            turn.say_text(_describe(turn, p))
    return "offer_referral" if _referable(turn) else "offer_more"


def _choose(turn: Turn) -> str:
    referable = _referable(turn)
    if len(referable) == 1:
        turn.answers["programme"] = referable[0].id
        return "consent"
    return "which"


def _names(turn: Turn) -> Sequence[str]:
    return [p.name(turn.language) for p in _referable(turn)]


def _picked(turn: Turn) -> str:
    referable = _referable(turn)
    index = int(turn.answers.pop("programme_index", 0))
    turn.answers["programme"] = referable[index].id
    return "consent"


def _referral_area(turn: Turn) -> AreaMatch | None:
    """The area a referral names: the one found, unless the programme chosen is one of the
    other force area's on its edge (then that force's area, as it is where they may live)."""
    chosen = turn.answers.get("programme")
    for where, programmes in _groups(turn):
        if any(p.id == chosen for p in programmes):
            return where
    return stored_area(turn)


def _shared(turn: Turn) -> dict[str, str]:
    """Only what a programme needs to start: the area, the language, and the relationship if
    the person told us. Never a name, a number, or what they wrote."""
    area = _referral_area(turn)
    shared = {
        "area": area_name(turn, area, "en", in_words=False) if area else "",
        "language": turn.language,
    }
    about = turn.answers.get("about")
    if about in ("partner", "ex", "family"):
        shared["relationship"] = str(about)
    return shared


def _lead(turn: Turn, found: str) -> None:
    turn.vars["lead"] = f"programme.consent_{found}"


def _ask_consent(turn: Turn) -> None:
    """What will be shared, then "do you agree?". Asked again after a question or a doubt,
    a short answer first, then all of it; after a yes among other words, only the question."""
    lead = turn.vars.pop("lead", None)
    if lead is not None:
        turn.say(lead)
    if lead == f"programme.consent_{UNCLEAR}":
        return
    p = _directory(turn).programme(str(turn.answers["programme"]))
    lang = turn.language
    shared = _shared(turn)
    area = _referral_area(turn)
    lines = [turn.t("programme.shared_area", value=area_name(turn, area) if area else "")]
    lines.append(turn.t("programme.shared_language", value=turn.t("language.name")))
    if "relationship" in shared:
        about = turn.t(f"programme.about_{shared['relationship']}")
        lines.append(turn.t("programme.shared_relationship", value=about))
    note = p.partner_contact_note.get(lang) if p.partner_contact_note else None
    turn.say(
        "programme.consent",
        name=p.name(lang),
        note=note or turn.t("programme.partner_contact"),
        shared="\n".join(lines),
    )


def _refer(turn: Turn) -> None:
    programme = str(turn.answers["programme"])
    turn.effect("referral", programme=programme, shared=_shared(turn))
    turn.answers["queue"] = f"programme:{programme}"
    turn.say("programme.referred", name=_directory(turn).programme(programme).name(turn.language))
    turn.effect("handoff", queue=f"programme:{programme}", reason="referral")


def _hand_off(turn: Turn) -> None:
    turn.effect("handoff", queue=helpline_queue(turn.answers.get("queue")), reason="programme")


ADVISER = Option("own.opt_adviser", "adviser", keywords="want_adviser")
AGAIN = Option("programme.opt_another", "another", keywords="another_area")
DONE = Option("flow.opt_done", "done", keywords="done")
NEITHER = Option("programme.opt_neither", "neither", keywords="no")
AGAIN_FROM_START = Option("flow.opt_start_again", "again", keywords="start_again")
# Where the person is offered an adviser, another area, or to finish.
OFFERS = ("offer_referral", "offer_more", "none", "outside", "no_area")
# Where the person is asked where they are: first, and again for a town over a border.
ASKED = ["ask", "border"]

FLOW = FlowSpec(
    name="programme",
    initial="ask",
    states=(
        State(
            "ask",
            say=("programme.ask",),
            interpret=_placed,
            retry="programme.retry",
            scrub=without_postcodes,
            scrub_in_danger=False,  # "he's hurting her now at CF10 3AT": the adviser needs it
        ),
        border_state(_placed),
        State("found", enter=(_show,), exits=("offer_referral", "offer_more"), **KEPT),
        State(
            "offer_referral",
            say=("programme.next",),
            options=(
                Option("programme.opt_refer", "refer", keywords="refer_me", rank=1),
                ADVISER,
                AGAIN,
                DONE,
            ),
            **KEPT,
        ),
        State("offer_more", say=("programme.next",), options=(ADVISER, AGAIN, DONE), **KEPT),
        State(
            "none",
            say=("programme.none",),
            enter=(_area_vars,),
            options=(ADVISER, AGAIN, DONE),
            **KEPT,
        ),
        State(
            "outside",
            say=("programme.outside",),
            enter=(elsewhere_vars,),
            options=(ADVISER, AGAIN, DONE),
            **KEPT,
        ),
        State("no_area", say=("programme.no_area",), options=(ADVISER, AGAIN, DONE), **KEPT),
        State("refer", enter=(_choose,), exits=("consent", "which"), **KEPT),
        State(
            "which",
            say=("programme.which",),
            choices=_names,
            chose="picked",
            store_as="programme_index",
            options=(NEITHER, AGAIN),
            **KEPT,
        ),
        State("picked", enter=(_picked,), exits=("consent",), **KEPT),
        State(
            "consent",
            enter=(_ask_consent,),
            # Only a clear yes refers: "what happens if I agree?" is a question, not consent.
            interpret_first=yes_or_no(
                "agree", "decline", _lead, ("refer me", "atgyfeiriwch fi", "send it", "anfonwch e")
            ),
            options=(
                Option("programme.opt_agree", "agree", keywords="yes"),
                Option("programme.opt_decline", "decline", keywords="no", rank=1),
            ),
            **KEPT,
        ),
        State("referred", enter=(_refer,), **KEPT),
        State("declined", say=("programme.declined",), options=(ADVISER, DONE, AGAIN), **KEPT),
        State("adviser", enter=(_hand_off,), **KEPT),
        State(
            "end",
            say=("programme.end",),
            options=(AGAIN_FROM_START,),
            interpret=goodbye,
            **KEPT,
        ),
        State(
            "bye", say=("programme.bye",), options=(AGAIN_FROM_START,), interpret=goodbye, **KEPT
        ),
    ),
    transitions=(
        {"trigger": "found", "source": ASKED, "dest": "found"},
        {"trigger": "none", "source": ASKED, "dest": "none"},
        {"trigger": "outside", "source": ASKED, "dest": "outside"},
        {"trigger": "no_area", "source": ASKED, "dest": "no_area"},
        {"trigger": "border", "source": "ask", "dest": "border"},
        {"trigger": "neither", "source": "which", "dest": "offer_more"},
        {"trigger": "refer", "source": "offer_referral", "dest": "refer"},
        {"trigger": "picked", "source": "which", "dest": "picked"},
        {"trigger": "agree", "source": "consent", "dest": "referred"},
        {"trigger": "decline", "source": "consent", "dest": "declined"},
        {"trigger": UNSURE, "source": "consent", "dest": "consent"},
        {"trigger": UNCLEAR, "source": "consent", "dest": "consent"},
        {"trigger": "adviser", "source": [*OFFERS, "declined"], "dest": "adviser"},
        {"trigger": "another", "source": [*OFFERS, "declined", "which"], "dest": "ask"},
        {"trigger": "done", "source": [*OFFERS, "declined"], "dest": "end"},
        {"trigger": "bye", "source": ["end", "bye"], "dest": "bye"},
        {"trigger": "again", "source": ["end", "bye"], "dest": "goto:welcome.who"},
    ),
)
