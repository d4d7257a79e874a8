"""Professionals: how referral to local programmes works and how to reach practitioner support."""

from helpline.flowkit import FlowSpec, State

FLOW = FlowSpec(
    name="professional",
    initial="start",
    states=(State("start", say=("professional.start",), free_text="again"),),
    transitions=({"trigger": "again", "source": "start", "dest": "start"},),
)
