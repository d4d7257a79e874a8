"""Being hurt: warm, immediate signposting to victim services, and no further questions."""

from helpline.flowkit import FlowSpec, State

FLOW = FlowSpec(
    name="victim",
    initial="signpost",
    states=(State("signpost", say=("victim.signpost",), free_text="again"),),
    transitions=({"trigger": "again", "source": "signpost", "dest": "signpost"},),
)
