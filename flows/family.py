"""Friends and family: how to respond safely to someone who is abusive and to the person being
hurt, what not to do, services for both, and an adviser from the family queue."""

from flows.programme import goodbye
from helpline.content import normalise
from helpline.flowkit import FlowSpec, Option, State, Turn, mentions


def _family_queue(turn: Turn) -> None:
    # "adviser" typed at any point from here on reaches the family queue (engine command).
    turn.answers["queue"] = "family"


def _hand_off(turn: Turn) -> None:
    turn.effect("handoff", queue="family", reason="asked")


def _the_other_one(turn: Turn, text: str) -> str | None:
    """Asking "what about her?" is asking about the other person than the one just read
    about: after supporting the person being hurt, the one behaving abusively; otherwise the
    person being hurt, whose safety comes first. Read only when no option was named."""
    if not mentions(normalise(text), turn.content.all_words("family_other_one")):
        return None
    return "abuser" if turn.conversation.state == "victim" else "victim"


TOPICS = (
    Option("family.opt_abuser", "abuser", keywords="topic_abuser"),
    Option("family.opt_victim", "victim", keywords="topic_victim", rank=1),
    Option("family.opt_services", "services", keywords="topic_services"),
    Option("family.opt_adviser", "adviser", keywords="want_adviser"),
)
MORE = (*TOPICS, Option("flow.opt_done", "done", keywords="done"))
INFO = ("abuser", "victim", "services")

FLOW = FlowSpec(
    name="family",
    initial="start",
    states=(
        State(
            "start",
            say=("family.start",),
            enter=(_family_queue,),
            options=TOPICS,
            interpret=_the_other_one,
        ),
        State(
            "abuser",
            say=("family.abuser", "family.more"),
            options=MORE,
            interpret=_the_other_one,
        ),
        State(
            "victim",
            say=("family.victim", "family.more"),
            options=MORE,
            interpret=_the_other_one,
        ),
        State(
            "services",
            say=("family.services", "family.more"),
            options=MORE,
            interpret=_the_other_one,
        ),
        State("adviser", enter=(_hand_off,)),
        State(
            "end",
            say=("family.end",),
            options=(Option("flow.opt_start_again", "again", keywords="start_again"),),
            interpret=goodbye,
        ),
        State(
            "bye",
            say=("programme.bye",),
            options=(Option("flow.opt_start_again", "again", keywords="start_again"),),
            interpret=goodbye,
        ),
    ),
    transitions=(
        {"trigger": "abuser", "source": ["start", *INFO], "dest": "abuser"},
        {"trigger": "victim", "source": ["start", *INFO], "dest": "victim"},
        {"trigger": "services", "source": ["start", *INFO], "dest": "services"},
        {"trigger": "adviser", "source": ["start", *INFO], "dest": "adviser"},
        {"trigger": "done", "source": list(INFO), "dest": "end"},
        {"trigger": "bye", "source": ["end", "bye"], "dest": "bye"},
        {"trigger": "again", "source": ["end", "bye"], "dest": "goto:welcome.who"},
    ),
)
