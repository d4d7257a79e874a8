"""Delete my data: confirm first, then erase everything held about this person."""

from flows.answers import UNCLEAR, UNSURE, yes_or_no
from helpline.flowkit import FlowSpec, Option, State, Turn


def _lead(turn: Turn, found: str) -> None:
    turn.say(f"erase.{found}")


def _erase(turn: Turn) -> None:
    turn.effect("erase")


FLOW = FlowSpec(
    name="erase",
    initial="confirm",
    states=(
        State(
            "confirm",
            say=("erase.confirm",),
            options=(
                Option("erase.opt_yes", "yes", keywords="yes"),
                Option("erase.opt_no", "no", keywords="no", rank=1),
            ),
            retry="erase.retry",
            # Only a clear yes deletes: "what happens if I agree?" is a question.
            interpret_first=yes_or_no(
                "yes", "no", _lead, ("delete them", "delete it", "dilewch nhw")
            ),
            # Answered while waiting for, or talking with, an adviser too: the person's
            # right to have their data deleted does not wait for the bot to have them back.
            while_queued=True,
        ),
        State("erasing", enter=(_erase,)),
    ),
    transitions=(
        {"trigger": "yes", "source": "confirm", "dest": "erasing"},
        {"trigger": "no", "source": "confirm", "dest": "goto:resume"},
        {"trigger": UNSURE, "source": "confirm", "dest": "confirm"},
        {"trigger": UNCLEAR, "source": "confirm", "dest": "confirm"},
    ),
)
