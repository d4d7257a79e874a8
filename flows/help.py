"""Help: the words that work at any point, then back to where the person was."""

from helpline.flowkit import FlowSpec, Option, State

FLOW = FlowSpec(
    name="help",
    initial="show",
    states=(
        State(
            "show",
            say=("help.show",),
            options=(Option("help.opt_back", "back", keywords="carry_on"),),
            free_text="back",
        ),
    ),
    transitions=({"trigger": "back", "source": "show", "dest": "goto:resume"},),
)
