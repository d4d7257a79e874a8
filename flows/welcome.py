"""Welcome: what this service is, what stays confidential, whether it is safe to talk, and who
is writing (numbered options, or the person's own words, including their very first message)."""

from collections.abc import Callable
from typing import Any

from helpline.content import normalise
from helpline.flowkit import FlowSpec, Option, State, Turn, longest_mention

# Where what the first message said is kept until "is it safe?" is answered.
FIRST_SAID = "_first_said"


def _danger(turn: Turn) -> None:
    # The person told us someone is in danger now: same priority as a risk-screened message.
    turn.conversation.risk_level = "immediate"
    turn.effect("handoff", queue="helpline", reason="risk:immediate")


# Words that only look like being hurt: fear of their own temper ("I'm scared of my temper",
# "mae gen i ofn fy nhymer") is not fear of someone else.
NOT_HURT = ("who_own_fear",)
# Words that only look like their own behaviour: what the person hurting them calls them ("he
# says I'm the problem"), or help for themselves ("can I refer myself to a refuge?").
NOT_SELF = ("who_self_not",)


def who_said(
    turn: Turn, text: str, not_hurt: tuple[str, ...] = NOT_HURT, hurt: str = "who_hurt"
) -> str | None:
    """Someone who answers "is it safe to message?" by saying who they are ("my husband hits
    me", "I hit my wife and need help") is taken at their word, not asked again: above all,
    someone being hurt gets the help meant for them at once. Being hurt outranks the rest,
    as in `_who_at_who` below; only the answers whose words leave no doubt. Hurting and being
    hurt, both said ("I hit her but she hits me too"), is neither: see `_both`. The
    own-behaviour journey asks the same at each of its questions, with more words set aside
    (`not_hurt`: keyword lists whose phrases do not count as being hurt) and only plain words
    of being hurt (`hurt`: the keyword list that says so)."""
    said = normalise(text)
    if _both(turn, said, not_hurt, hurt):
        return "both"
    if _hurt(turn, said, not_hurt, hurt):
        return "hurt"
    if _own(turn, said):
        return "self"
    return None


def _without(turn: Turn, said: str, lists: tuple[str, ...]) -> str:
    """`said` (normalised) less the phrases of the keyword `lists`."""
    padded = f" {said} "
    for name in lists:
        for phrase in turn.content.all_words(name):
            padded = padded.replace(f" {phrase} ", " ")
    return padded.strip()


def _hurt(
    turn: Turn, said: str, not_hurt: tuple[str, ...] = NOT_HURT, hurt: str = "who_hurt"
) -> bool:
    """Whether `said` (normalised) says they are being hurt in the words of the `hurt` list,
    less the phrases of `not_hurt` ("scared of my temper" is not "scared of my husband")."""
    words = turn.content.all_words
    # The plain words the own-behaviour journey listens for are words of being hurt here too,
    # whatever the welcome's own list says: the two lists drifted ("he punches me").
    heard = (*words(hurt), *(words("who_hurt_clear") if hurt == "who_hurt" else ()))
    if (
        hurt == "who_hurt"
        and longest_mention(said, words("who_hurt_whole"))
        and not longest_mention(said, (*words("who_other"), *words("who_professional")))
    ):
        # "scared of him", said alone or within more ("really scared of him tbh"): the
        # writer's own fear, unless they write of someone else ("my sister is scared of her
        # husband", "my client is being hurt").
        return True
    return bool(longest_mention(_without(turn, said, not_hurt), heard))


def _own(turn: Turn, said: str, acts: bool = False) -> int:
    """How plainly `said` (normalised) speaks of their own behaviour (the length of the
    phrase that does, 0 if none): in who_self's words, or with `acts` only the harm they say
    they did (who_self_acts), less what someone being hurt may say (`NOT_SELF`)."""
    if not acts and turn.content.is_exactly("who_self_whole", said):
        return len(said)
    words = turn.content.all_words("who_self_acts" if acts else "who_self")
    return longest_mention(_without(turn, said, NOT_SELF), words)


def _both(
    turn: Turn, said: str, not_hurt: tuple[str, ...] = NOT_HURT, hurt: str = "who_hurt"
) -> bool:
    """Hurting someone and being hurt, both said: "I hit my wife but she hits me too", "she
    hit me first so I hit her back", "it's mutual", "I shouted at her because she hurt me".
    Not "it is not your fault" (that would agree the harm is all the other person's), and not
    only the victim's services (that would drop the help with their own behaviour): both are
    offered (the `both` state). `said` is normalised."""
    content = turn.content
    if content.is_exactly("who_mutual_whole", said) or longest_mention(
        said, content.all_words("who_mutual")
    ):
        return True
    return _hurt(turn, said, not_hurt, hurt) and bool(_own(turn, said, acts=True))


def _who_at_who(turn: Turn, text: str) -> str | None:
    """Who they are, in their own words, at "why are you here?": as `who_said` reads it
    (hurting and being hurt, being hurt, their own behaviour), else someone writing for work
    before someone writing about a friend or relative ("I'm a social worker, my client's
    partner hits her"). One reading for every answer, so that the words set aside there ("he
    says I'm the problem") are set aside here too."""
    who = who_said(turn, text)
    if who is None:
        said = normalise(text)
        words = turn.content.all_words
        found = [
            (1, longest_mention(said, words("who_professional")), "professional"),
            (0, longest_mention(said, words("who_other")), "other"),
        ]
        named = [answer for answer in found if answer[1]]
        who = max(named)[2] if named else None
    if who is not None:
        turn.answers["who"] = who
    return who


def _first_message(turn: Turn) -> str | None:
    """The first message, read before the welcome is said. A Welsh greeting ("shwmae", "bore
    da") on a channel that starts in English means Welsh, as typing "Cymraeg" does; and who
    they said they are ("my boyfriend hits me") is kept for after the safety question, which
    still comes first (a shared device), so that they are not asked it again."""
    if _welsh_greeting(turn, turn.text):
        turn.conversation.language = "cy"
    who = who_said(turn, turn.text)
    if who is not None:
        turn.answers[FIRST_SAID] = who
    # Someone who says at once that they are being hurt hears at once that there is help for
    # them (numbers are safe to give), before the same safety question (`heard`).
    return "heard" if who == "hurt" else None


def _welsh_greeting(turn: Turn, text: str) -> bool:
    said = normalise(text)
    return turn.language != "cy" and bool(said) and said in turn.content.all_words("welsh_greeting")


def _at_start(turn: Turn, text: str) -> str | None:
    """Who they are (above), or a Welsh greeting typed where the welcome was already shown in
    English (a web chat opened in English): the welcome again, in Welsh."""
    return who_said(turn, text) or ("welsh" if _welsh_greeting(turn, text) else None)


def _heard_at(turn: Turn, text: str) -> str | None:
    """After "I'm being hurt" first: who they are or a Welsh greeting, as at the start, or
    else a question of theirs ("what about my kids?", "will he find out?"), answered."""
    return _at_start(turn, text) or ("asked" if normalise(text) else None)


def _answer_worry(turn: Turn) -> None:
    """What someone who said they are being hurt asks before "is it safe?" is answered: about
    their children, about being found out, about a service for men; else a warm word. Never
    "didn't catch that": the safety question follows (the `heard_asked` state)."""
    said = normalise(turn.text)
    words = turn.content.all_words
    found = {
        "victim.children": longest_mention(said, words("victim_children")),
        "welcome.heard_private": longest_mention(said, words("victim_found_out")),
        "victim.men": longest_mention(said, words("victim_man")),
    }
    key, length = max(found.items(), key=lambda item: item[1])
    turn.say(key if length else "welcome.heard_general")


def _still_not_safe(turn: Turn, text: str) -> str | None:
    """After "not right now", any message means they can talk again, unless it says it is
    still not safe ("he's here", "not now", "mae e yma o hyd"): then "that's OK" again, and
    who they said they are meanwhile is kept for when it is safe. Else who they are, as at the
    start, or back to the question of who they are."""
    who = who_said(turn, text)
    if not longest_mention(normalise(text), turn.content.all_words("not_now")):
        return who
    if who is not None:
        turn.answers[FIRST_SAID] = who
    return "wait"


def _said(who: str) -> Callable[[Any], bool]:
    """A condition on "it's safe" (or "back" after "not right now"): the person has already
    said who they are, in their first message or in this one ("yes, he hits me")."""

    def condition(event: Any) -> bool:
        turn: Turn = event.model
        return (who_said(turn, turn.text) or turn.answers.get(FIRST_SAID)) == who

    return condition


def _forget(event: Any) -> None:
    """After "is it safe?" is answered: the first message's words are used once only (a later
    "menu" asks afresh), and who they said they are is kept as the who question keeps it."""
    turn: Turn = event.model
    first = turn.answers.pop(FIRST_SAID, None)
    if event.transition.dest in ("goto:victim", "goto:own", "both"):
        turn.answers["who"] = who_said(turn, turn.text) or first


def _moving_on(trigger: str, source: str | list[str]) -> tuple[dict[str, Any], ...]:
    """Out of `source` once it is safe to talk: to the journey they already named, if any,
    else to the who question."""
    return (
        {
            "trigger": trigger,
            "source": source,
            "dest": "both",
            "conditions": _said("both"),
            "after": _forget,
        },
        {
            "trigger": trigger,
            "source": source,
            "dest": "goto:victim",
            "conditions": _said("hurt"),
            "after": _forget,
        },
        {
            "trigger": trigger,
            "source": source,
            "dest": "goto:own",
            "conditions": _said("self"),
            "after": _forget,
        },
        {"trigger": trigger, "source": source, "dest": "who", "after": _forget},
    )


SAFE_NOW = (
    Option("welcome.opt_safe", "safe", keywords="yes"),
    Option("welcome.opt_not_now", "later", keywords="not_now"),
    Option("welcome.opt_danger", "danger", keywords="danger_now", rank=1),
)
# The safety question's states: the welcome, and after "I'm being hurt" as a first message.
ASKING = ["start", "heard", "heard_asked"]

# Their own words are read by `_who_at_who`, not by each option's keywords: being hurt
# outranks the rest ("my brother hits me" names a relative but needs victim help).
WHO = (
    Option("who.opt_self", "self"),
    Option("who.opt_other", "other"),
    Option("who.opt_hurt", "hurt"),
    Option("who.opt_professional", "professional"),
)

FLOW = FlowSpec(
    name="welcome",
    initial="start",
    states=(
        State(
            "start",
            say=("welcome.intro", "welcome.confidential", "welcome.practical", "welcome.safe_now"),
            enter=(_first_message,),
            options=SAFE_NOW,
            store_as="safe_now",
            interpret=_at_start,
            retry="welcome.safe_retry",
            exits=("heard",),
        ),
        # "My husband hits me" as the first message: help for them at once, then the same
        # safety question; what they ask meanwhile is answered, the question asked again.
        State(
            "heard",
            say=(
                "welcome.heard",
                "welcome.confidential",
                "welcome.practical",
                "welcome.heard_safe",
            ),
            options=SAFE_NOW,
            store_as="safe_now",
            interpret=_heard_at,
            retry="welcome.heard_general",
        ),
        State(
            "heard_asked",
            say=("welcome.heard_safe",),
            enter=(_answer_worry,),
            options=SAFE_NOW,
            store_as="safe_now",
            interpret=_heard_at,
            retry="welcome.heard_general",
        ),
        State("later", say=("welcome.not_safe",), interpret=_still_not_safe, free_text="back"),
        State("danger", say=("risk.immediate",), enter=(_danger,)),
        State(
            "who",
            say=("welcome.who",),
            options=WHO,
            store_as="who",
            interpret_first=_who_at_who,
            retry="who.retry",
        ),
        # Hurting and being hurt, both said: help with their own behaviour, and the services
        # for anyone being hurt, side by side (never "it is not your fault").
        State(
            "both",
            say=("welcome.both",),
            options=(
                Option("welcome.opt_both_own", "self", answer="self", keywords="who_self"),
                Option(
                    "welcome.opt_both_adviser", "adviser", answer="both", keywords="want_adviser"
                ),
            ),
            store_as="who",
        ),
    ),
    transitions=(
        *_moving_on("safe", ASKING),
        {"trigger": "later", "source": ASKING, "dest": "later"},
        {"trigger": "welsh", "source": "start", "dest": "start"},
        {"trigger": "welsh", "source": ["heard", "heard_asked"], "dest": "heard"},
        {"trigger": "asked", "source": ["heard", "heard_asked"], "dest": "heard_asked"},
        *_moving_on("back", "later"),
        {"trigger": "wait", "source": "later", "dest": "later"},
        {"trigger": "danger", "source": ASKING, "dest": "danger", "after": _forget},
        {"trigger": "both", "source": ASKING, "dest": "both", "after": _forget},
        {"trigger": "both", "source": "later", "dest": "both", "after": _forget},
        {"trigger": "both", "source": "who", "dest": "both"},
        {"trigger": "self", "source": "both", "dest": "goto:own"},
        {"trigger": "adviser", "source": "both", "dest": "goto:own.adviser"},
        {"trigger": "hurt", "source": ASKING, "dest": "goto:victim", "after": _forget},
        {"trigger": "hurt", "source": "later", "dest": "goto:victim", "after": _forget},
        {"trigger": "self", "source": ASKING, "dest": "goto:own", "after": _forget},
        {"trigger": "self", "source": "later", "dest": "goto:own", "after": _forget},
        {"trigger": "self", "source": "who", "dest": "goto:own"},
        {"trigger": "other", "source": "who", "dest": "goto:family"},
        {"trigger": "hurt", "source": "who", "dest": "goto:victim"},
        {"trigger": "professional", "source": "who", "dest": "goto:professional"},
    ),
)
