"""Being hurt: warm, immediate signposting to victim services, with 999 and 55 guidance, and
no further questions. Anything else they write gets the short version again."""

from helpline.flowkit import FlowSpec, State

FLOW = FlowSpec(
    name="victim",
    initial="signpost",
    states=(
        State("signpost", say=("victim.signpost",), free_text="again"),
        State("again", say=("victim.again",), free_text="again"),
    ),
    transitions=({"trigger": "again", "source": ["signpost", "again"], "dest": "again"},),
)
