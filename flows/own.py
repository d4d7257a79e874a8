"""Own behaviour: a person worried about how they treat a partner, ex or family member."""

from helpline.flowkit import FlowSpec, Option, State, Turn


def _hand_off(turn: Turn) -> None:
    turn.effect("handoff", queue="helpline", reason="asked")


FLOW = FlowSpec(
    name="own",
    initial="start",
    states=(
        State(
            "start",
            say=("own.start",),
            options=(
                Option("own.opt_adviser", "adviser"),
                Option("own.opt_today", "today"),
            ),
            store_as="own_next",
        ),
        State("today", say=("own.today",), options=(Option("own.opt_adviser", "adviser"),)),
        State("adviser", enter=(_hand_off,)),
    ),
    transitions=(
        {"trigger": "adviser", "source": ["start", "today"], "dest": "adviser"},
        {"trigger": "today", "source": "start", "dest": "today"},
    ),
)
