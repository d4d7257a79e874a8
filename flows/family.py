"""Friends and family: how to respond safely to someone who is abusive, and to the person hurt."""

from helpline.flowkit import FlowSpec, Option, State, Turn


def _hand_off(turn: Turn) -> None:
    turn.answers["queue"] = "family"
    turn.effect("handoff", queue="family", reason="asked")


FLOW = FlowSpec(
    name="family",
    initial="start",
    states=(
        State("start", say=("family.start",), options=(Option("family.opt_adviser", "adviser"),)),
        State("adviser", enter=(_hand_off,)),
    ),
    transitions=({"trigger": "adviser", "source": "start", "dest": "adviser"},),
)
