"""Welcome: what this service is, what stays confidential, whether it is safe to talk, and who
is writing (numbered options, or the person's own words)."""

from helpline.content import normalise
from helpline.flowkit import FlowSpec, Option, State, Turn, longest_mention


def _danger(turn: Turn) -> None:
    # The person told us someone is in danger now: same priority as a risk-screened message.
    turn.conversation.risk_level = "immediate"
    turn.effect("handoff", queue="helpline", reason="risk:immediate")


def _who_said(turn: Turn, text: str) -> str | None:
    """Someone who answers "is it safe to message?" by saying who they are ("my husband hits
    me", "I hit my wife and need help") is taken at their word, not asked again: above all,
    someone being hurt gets the help meant for them at once. Being hurt outranks the rest,
    as in WHO below; only the two answers whose words leave no doubt."""
    said = normalise(text)
    if longest_mention(said, turn.content.all_words("who_hurt")):
        return "hurt"
    if longest_mention(said, turn.content.all_words("who_self")):
        return "self"
    return None


WHO = (
    Option("who.opt_self", "self", keywords="who_self", rank=1),
    Option("who.opt_other", "other", keywords="who_other"),
    # Being hurt outranks the rest: "my brother hits me" names a relative but needs victim help.
    Option("who.opt_hurt", "hurt", keywords="who_hurt", rank=2),
    Option("who.opt_professional", "professional", keywords="who_professional"),
)

FLOW = FlowSpec(
    name="welcome",
    initial="start",
    states=(
        State(
            "start",
            say=("welcome.intro", "welcome.confidential", "welcome.practical", "welcome.safe_now"),
            options=(
                Option("welcome.opt_safe", "safe", keywords="yes"),
                Option("welcome.opt_not_now", "later", keywords="not_now"),
                Option("welcome.opt_danger", "danger", keywords="danger_now", rank=1),
            ),
            store_as="safe_now",
            interpret=_who_said,
            retry="welcome.safe_retry",
        ),
        State("later", say=("welcome.not_safe",), interpret=_who_said, free_text="back"),
        State("danger", say=("risk.immediate",), enter=(_danger,)),
        State("who", say=("welcome.who",), options=WHO, store_as="who", retry="who.retry"),
    ),
    transitions=(
        {"trigger": "safe", "source": "start", "dest": "who"},
        {"trigger": "later", "source": "start", "dest": "later"},
        {"trigger": "back", "source": "later", "dest": "who"},
        {"trigger": "danger", "source": "start", "dest": "danger"},
        {"trigger": "hurt", "source": "start", "dest": "goto:victim"},
        {"trigger": "hurt", "source": "later", "dest": "goto:victim"},
        {"trigger": "self", "source": "start", "dest": "goto:own"},
        {"trigger": "self", "source": "later", "dest": "goto:own"},
        {"trigger": "self", "source": "who", "dest": "goto:own"},
        {"trigger": "other", "source": "who", "dest": "goto:family"},
        {"trigger": "hurt", "source": "who", "dest": "goto:victim"},
        {"trigger": "professional", "source": "who", "dest": "goto:professional"},
    ),
)
