"""Own behaviour: a person worried about how they treat a partner, ex or family member.

A few questions they can skip, then what they want now: an adviser, a call back at a safe
time, a programme near them, or things to do today. Every ending signposts and offers a
person. No name is ever asked for."""

from helpline.directory import normalise_uk_phone
from helpline.flowkit import FlowSpec, Option, State, Turn

# Channels whose address is a phone number an adviser can call back (Twilio SMS, WhatsApp).
PHONE_CHANNELS = frozenset({"sms", "whatsapp"})


def _hand_off(turn: Turn) -> None:
    turn.answers["queue"] = "helpline"
    turn.effect("handoff", queue="helpline", reason="asked")


def _children_note(turn: Turn) -> None:
    if turn.answers.get("children") == "yes":
        turn.say("own.children_note")


def _after_window(turn: Turn) -> str | None:
    # On SMS and WhatsApp we can call the number they wrote from; elsewhere we must ask.
    return "callback_done" if turn.conversation.channel in PHONE_CHANNELS else "callback_number"


def _number(turn: Turn, text: str) -> str | None:
    try:
        turn.vars["callback_number"] = normalise_uk_phone(text)
    except ValueError:
        return None
    return "number"


def _book_callback(turn: Turn) -> None:
    window = str(turn.answers.pop("callback_window", ""))
    number = turn.vars.pop("callback_number", None)
    # The number goes to the console's call-back list only (sealed there), never to answers.
    turn.effect("callback", window=window, number=number, queue="helpline")
    turn.answers["callback"] = True


MORE = (
    Option("own.opt_adviser", "adviser", keywords="want_adviser"),
    Option("own.opt_programme", "programme", keywords="want_programme"),
    Option("own.opt_done", "done", keywords="done"),
)

FLOW = FlowSpec(
    name="own",
    initial="start",
    states=(
        State(
            "start",
            say=("own.start", "own.about"),
            options=(
                Option("own.opt_partner", "next", answer="partner", keywords="about_partner"),
                Option("own.opt_ex", "next", answer="ex", keywords="about_ex", rank=1),
                Option("own.opt_family", "next", answer="family", keywords="about_family"),
                Option("flow.opt_skip", "next", answer="unsaid", keywords="skip"),
            ),
            store_as="about",
        ),
        State(
            "children",
            say=("own.children",),
            options=(
                Option("flow.opt_yes", "next", answer="yes", keywords="yes"),
                Option("flow.opt_no", "next", answer="no", keywords="no"),
                Option("flow.opt_skip", "next", answer="unsaid", keywords="skip", rank=1),
            ),
            store_as="children",
        ),
        State(
            "want",
            say=("own.want",),
            enter=(_children_note,),
            options=(
                Option("own.opt_adviser", "adviser", keywords="want_adviser"),
                Option("own.opt_callback", "callback", keywords="want_callback", rank=1),
                Option("own.opt_programme", "programme", keywords="want_programme"),
                Option("own.opt_today", "today", keywords="want_today"),
            ),
            store_as="own_next",
        ),
        State("adviser", enter=(_hand_off,)),
        State(
            "callback",
            say=("own.callback_when",),
            store_as="callback_window",
            free_text="window",
        ),
        State("callback_check", enter=(_after_window,), exits=("callback_done", "callback_number")),
        State(
            "callback_number",
            say=("own.callback_number",),
            interpret=_number,
            retry="own.callback_number_retry",
        ),
        State(
            "callback_done",
            say=("own.callback_done", "own.end"),
            enter=(_book_callback,),
            options=(Option("flow.opt_start_again", "again", keywords="start_again"),),
        ),
        State("today", say=("own.today", "own.more"), options=MORE),
        State(
            "end",
            say=("own.end",),
            options=(
                Option("own.opt_adviser", "adviser", keywords="want_adviser"),
                Option("flow.opt_start_again", "again", keywords="start_again"),
            ),
        ),
    ),
    transitions=(
        {"trigger": "next", "source": "start", "dest": "children"},
        {"trigger": "next", "source": "children", "dest": "want"},
        {"trigger": "adviser", "source": ["want", "today", "end"], "dest": "adviser"},
        {"trigger": "callback", "source": "want", "dest": "callback"},
        {"trigger": "window", "source": "callback", "dest": "callback_check"},
        {"trigger": "number", "source": "callback_number", "dest": "callback_done"},
        {"trigger": "programme", "source": ["want", "today"], "dest": "goto:programme"},
        {"trigger": "today", "source": "want", "dest": "today"},
        {"trigger": "done", "source": "today", "dest": "end"},
        {"trigger": "again", "source": ["end", "callback_done"], "dest": "goto:welcome.who"},
    ),
)
