"""Reading a yes or no to a question whose yes cannot be taken back (a referral, deleting
everything): only a clear yes counts. A question or a doubt is answered by asking again; a yes
said among other words ("I agree but...") is asked again too; a no counts anywhere, as it
does nothing that cannot be undone."""

import re
from collections.abc import Callable

from helpline.content import normalise
from helpline.flowkit import Interpreter, Turn, longest_mention

# What the interpreter returns for a question or a doubt, and for a yes among other words.
UNSURE = "unsure"
UNCLEAR = "unclear"

# Doubts, anywhere in the message (normalised: accents folded, apostrophes as spaces).
_DOUBTS = (
    "not sure", "unsure", "don t know", "dont know", "do not know", "not certain", "maybe",
    "not yet", "thinking about it", "ddim yn siwr", "dim yn siwr", "ddim yn sicr", "ansicr",
    "dwn i ddim", "dwi ddim yn gwybod", "efallai", "falle", "ella", "ddim eto",
)  # fmt: skip
# How a question starts, in either language, when it has no question mark.
_ASKS = re.compile(
    r"^(what|whats|how|will|would|wont|can|could|do|does|did|is|are|who|when|where|why|which|"
    r"should|shall|if|before|but|beth|be|sut|pwy|pryd|ble|lle|pam|fydd|a fydd|a oes|a yw|"
    r"ydy e|ydy o|oes rhaid|alla i|gaf i|ga i)\b"
)
# Said with a yes, these leave it a plain yes ("yes please", "ok then", "yes x": a text's
# kiss); alone, they are none ("thanks" is not consent). Each question adds its own ("yes,
# refer me"), never another's: the erase button's words at the referral question are not a
# yes to it.
_FILLERS = (
    "please", "thanks", "thank you", "then", "do it", "plis", "diolch",
    "diolch yn fawr", "te", "x", "xx", "xxx",
)  # fmt: skip


def _only(said: str, phrases: tuple[str, ...]) -> bool:
    """Whether the message is made of nothing but these phrases (longest taken first)."""
    rest = f" {said} "
    for phrase in sorted(phrases, key=len, reverse=True):
        while phrase and f" {phrase} " in rest:
            rest = rest.replace(f" {phrase} ", " ")
    return not rest.strip()


def yes_or_no(
    yes: str, no: str, lead: Callable[[Turn, str], None], fillers: tuple[str, ...] = ()
) -> Interpreter:
    """An interpreter (State.interpret_first) firing `yes` or `no`, or UNSURE or UNCLEAR
    (asked again: `lead(turn, which)` says what comes first). None if the message has no yes
    or no in it: the state's retry is said as usual. `fillers`: this question's own words
    that may go with a yes ("refer me"). A yes to "is it safe to talk?" ("I'm safe") is no
    yes here."""
    own = (*_FILLERS, *fillers)

    def read(turn: Turn, text: str) -> str | None:
        said = normalise(text)
        safe = turn.content.all_words("yes_safe")
        yes_words = [w for w in turn.content.all_words("yes") if w not in safe]
        no_words = turn.content.all_words("no")
        if not said:
            return None
        padded = f" {said} "
        if any(f" {d} " in padded for d in _DOUBTS) or text.strip().endswith("?"):
            found = UNSURE
        elif _only(said, (*yes_words, *own)) and not _only(said, own):
            return yes
        elif _only(said, (*safe, *own)):
            found = UNCLEAR  # "I'm safe": the answer to another question (the buttons' too)
        elif _ASKS.match(said):
            found = UNSURE
        elif longest_mention(said, no_words):
            return no
        elif longest_mention(said, yes_words) or set(said.split()) & set(yes_words):
            found = UNCLEAR
        else:
            return None
        lead(turn, found)
        return found

    return read
