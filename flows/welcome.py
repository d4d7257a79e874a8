"""Welcome: what this service is, what is confidential, and who is writing."""

from helpline.flowkit import FlowSpec, Option, State

FLOW = FlowSpec(
    name="welcome",
    initial="who",
    states=(
        State(
            "who",
            say=("welcome.intro", "welcome.confidential", "welcome.who"),
            options=(
                Option("who.opt_self", "self", keywords="who_self"),
                Option("who.opt_other", "other", keywords="who_other"),
                Option("who.opt_hurt", "hurt", keywords="who_hurt"),
                Option("who.opt_professional", "professional", keywords="who_professional"),
            ),
            store_as="who",
            retry="who.retry",
        ),
    ),
    transitions=(
        {"trigger": "self", "source": "who", "dest": "goto:own"},
        {"trigger": "other", "source": "who", "dest": "goto:family"},
        {"trigger": "hurt", "source": "who", "dest": "goto:victim"},
        {"trigger": "professional", "source": "who", "dest": "goto:professional"},
    ),
)
