"""Stop: end the conversation; the person can come back any time."""

from helpline.flowkit import FlowSpec, State, Turn


def _end(turn: Turn) -> None:
    turn.conversation.closed = True
    turn.effect("cancel_handoff")


FLOW = FlowSpec(
    name="stop",
    initial="stopped",
    states=(State("stopped", say=("stop.done",), enter=(_end,), free_text="again"),),
    transitions=({"trigger": "again", "source": "stopped", "dest": "goto:welcome"},),
)
