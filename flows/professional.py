"""Professionals: how referral to local programmes works, what runs in an area, national
services for practitioners, and the helpline's practitioner support (an adviser)."""

from helpline.flowkit import FlowSpec, Option, State, Turn


def _hand_off(turn: Turn) -> None:
    turn.answers["queue"] = "helpline"
    turn.effect("handoff", queue="helpline", reason="practitioner")


TOPICS = (
    Option("professional.opt_referral", "referral", keywords="topic_referral"),
    Option("professional.opt_area", "area", keywords="want_programme"),
    Option("professional.opt_support", "support", keywords="want_adviser"),
    Option("professional.opt_services", "services", keywords="topic_services"),
)
MORE = (*TOPICS, Option("flow.opt_done", "done", keywords="done"))
INFO = ("referral", "services")

FLOW = FlowSpec(
    name="professional",
    initial="start",
    states=(
        State("start", say=("professional.start",), options=TOPICS),
        State("referral", say=("professional.referral", "professional.more"), options=MORE),
        State("services", say=("professional.services", "professional.more"), options=MORE),
        State("support", enter=(_hand_off,)),
        State(
            "end",
            say=("professional.end",),
            options=(Option("flow.opt_start_again", "again", keywords="start_again"),),
        ),
    ),
    transitions=(
        {"trigger": "referral", "source": ["start", *INFO], "dest": "referral"},
        {"trigger": "services", "source": ["start", *INFO], "dest": "services"},
        {"trigger": "area", "source": ["start", *INFO], "dest": "goto:programme"},
        {"trigger": "support", "source": ["start", *INFO], "dest": "support"},
        {"trigger": "done", "source": list(INFO), "dest": "end"},
        {"trigger": "again", "source": "end", "dest": "goto:welcome.who"},
    ),
)
