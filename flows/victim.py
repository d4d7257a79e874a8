"""Being hurt: warm, immediate signposting to victim services, with 999 and 55 guidance, and
no questions. Then choices (an adviser, back to the start, done), and an answer to what a
victim may ask next: services about their children, the Men's Advice Line for a man."""

from helpline.content import normalise
from helpline.flowkit import FlowSpec, Option, State, Turn, longest_mention


def _hand_off(turn: Turn) -> None:
    turn.answers["queue"] = "helpline"
    turn.effect("handoff", queue="helpline", reason="asked")


def _asked(turn: Turn, text: str) -> str | None:
    """What they asked after the signposting, if we have a service for it."""
    said = normalise(text)
    children = longest_mention(said, turn.content.all_words("victim_children"))
    man = longest_mention(said, turn.content.all_words("victim_man"))
    if children or man:
        return "children" if children >= man else "men"
    return None


CHOICES = (
    Option("victim.opt_adviser", "adviser", keywords="want_adviser"),
    Option("flow.opt_start_again", "start", keywords="start_again"),
    Option("flow.opt_done", "done", keywords="done"),
)
ANSWERS = ("signpost", "again", "children", "men", "end")


def _answer(name: str, *say: str) -> State:
    return State(name, say=say, options=CHOICES, interpret=_asked, free_text="again")


FLOW = FlowSpec(
    name="victim",
    initial="signpost",
    states=(
        _answer("signpost", "victim.signpost"),
        _answer("again", "victim.again"),
        _answer("children", "victim.children"),
        _answer("men", "victim.men"),
        _answer("end", "victim.end"),
        State("adviser", enter=(_hand_off,)),
    ),
    transitions=(
        {"trigger": "children", "source": list(ANSWERS), "dest": "children"},
        {"trigger": "men", "source": list(ANSWERS), "dest": "men"},
        {"trigger": "again", "source": list(ANSWERS), "dest": "again"},
        {"trigger": "adviser", "source": list(ANSWERS), "dest": "adviser"},
        {"trigger": "start", "source": list(ANSWERS), "dest": "goto:welcome.who"},
        {"trigger": "done", "source": list(ANSWERS), "dest": "end"},
    ),
)
