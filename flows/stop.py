"""Stop: end the conversation and opt out of any further messages; writing again starts anew."""

from helpline.flowkit import FlowSpec, State, Turn


def _end(turn: Turn) -> None:
    turn.conversation.closed = True
    turn.effect("cancel_handoff")
    # People say stop when it is no longer safe: nobody may phone them now either.
    turn.effect("withdraw_callbacks")
    # Nothing more is sent unless they write again (held replies, call-backs): the engine
    # stores this on the contact and clears it when they next write.
    turn.effect("settings", opted_out=True)


FLOW = FlowSpec(
    name="stop",
    initial="stopped",
    states=(State("stopped", say=("stop.done",), enter=(_end,), free_text="again"),),
    transitions=({"trigger": "again", "source": "stopped", "dest": "goto:welcome"},),
)
