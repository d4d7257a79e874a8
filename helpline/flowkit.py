"""Journeys as data on transitions: one AsyncMachine per flow, shared by every conversation.

A flow module declares states (what to say, which options) and transitions (triggers between
states, with optional conditions). The runner attaches a conversation's turn to the flow's
machine at its stored state, turns the person's text into a trigger, fires it, and renders
what the new state says. A destination "goto:<flow>" or "goto:<flow>.<state>" moves to another
journey; "goto:resume" returns to where the person was before a detour (help, delete).

Before any state reads the person's text, the runner applies the guardrails from content/
(requests for someone's whereabouts, contact or words; questions with a set answer): from any
state, the set answer is said, a note is flagged for advisers, and the journey carries on where
it was. While the person waits for an adviser, the engine applies them (Engine._while_waiting).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz
from transitions.extensions.asyncio import AsyncMachine

from helpline.content import Content, Guardrail, normalise
from helpline.domain import Conversation, Reply
from helpline.errors import ContentError

# An enter action may return a destination ("state", "goto:flow.state") to move on at once.
Action = Callable[["Turn"], "str | None"]
Choices = Callable[["Turn"], Sequence[str]]
Interpreter = Callable[["Turn", str], "str | None"]

GOTO = "goto:"
_NUMBER = re.compile(r"^\s*(\d{1,2})\s*[.)]?\s*$")


@dataclass(frozen=True)
class Option:
    """A numbered quick reply: its label's content key, the trigger it fires, and optionally
    an answer recorded under the state's `store_as` and a keyword list that also selects it."""

    label: str
    trigger: str
    answer: str | None = None
    keywords: str | None = None
    rank: int = 0  # when several options' keywords appear, the higher rank wins ("hits me")


@dataclass(frozen=True)
class State:
    name: str
    say: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    store_as: str | None = None
    interpret: Interpreter | None = None
    # Read before the options' keywords (after a number or a label): a reading of the whole
    # message that must win over any one keyword list ("I hit her but she hits me too").
    interpret_first: Interpreter | None = None
    free_text: str | None = None  # trigger fired for any other text (the text is stored)
    enter: tuple[Action, ...] = ()
    retry: str = "flow.not_understood"
    # Options computed when the state is shown (programmes in an area), numbered before the
    # fixed ones; choosing one stores its index under `store_as` and fires `chose`.
    choices: Choices | None = None
    chose: str | None = None
    exits: tuple[str, ...] = ()  # where an enter action may send the person (checked, drawn)
    # The person's answer to this state is kept out of the transcript (a phone number): the
    # engine stores this content key's words in its place.
    redacted: str | None = None
    # Or only part of it is (a phone number typed in with a safe time to call): the transcript
    # and the stored answer keep the text as this returns it.
    scrub: Callable[[str], str] | None = None
    # Whether it scrubs words about danger too. A phone number is, as it is asked for on its
    # own; a place is not, as whoever decides on calling 999 may need it.
    scrub_in_danger: bool = True
    # The answer may still come once the question has been cut short by a hand-off (danger,
    # at "what number should we call?"): while the queue or an adviser has them, a message
    # `interpret_later` (or `interpret`) reads as the answer is taken by these actions (the
    # call-back booked), unless a command or a detour answered it, and the transcript keeps
    # it as `scrub` leaves it, or the `redacted` words if nothing else was said. Any other
    # message is for the adviser, kept as written. An action may return the state the
    # answer reaches: "cancel" then goes back there, not to the question.
    answered_later: tuple[Action, ...] = ()
    # How such an answer is read, if more strictly than `interpret` reads it at the question
    # (the adviser may be told about someone else's number: only their own, said alone).
    interpret_later: Interpreter | None = None
    # An offer made to someone waiting for an adviser: its options are answered even while
    # the queue owns the conversation; any other words go to the adviser as usual.
    while_queued: bool = False


@dataclass(frozen=True)
class FlowSpec:
    name: str
    initial: str
    states: tuple[State, ...]
    transitions: tuple[Mapping[str, Any], ...]

    def state(self, name: str) -> State:
        for s in self.states:
            if s.name == name:
                return s
        raise KeyError(name)


@dataclass(frozen=True)
class Effect:
    """Something the engine must do after the turn: hand off, erase, end, refer..."""

    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)


class Turn:
    """The model transitions drives for one step of one conversation (identity equality)."""

    state: str

    def __init__(self, conversation: Conversation, content: Content, text: str = "") -> None:
        self.conversation = conversation
        self.content = content
        self.text = text
        self.replies: list[Reply] = []
        self.effects: list[Effect] = []
        self.vars: dict[str, Any] = {}
        self.guarded: str | None = None  # the text the guardrails have already checked
        self.railed: str | None = None  # the text a guardrail answered (a whole question)

    @property
    def language(self) -> str:
        return self.conversation.language

    @property
    def answers(self) -> dict[str, Any]:
        return self.conversation.answers

    def t(self, key: str, **params: Any) -> str:
        return self.content.text(key, self.language, **params)

    def say(self, key: str, options: Iterable[str] = (), **params: Any) -> None:
        self.replies.append(Reply(self.t(key, **params), tuple(options)))

    def say_text(self, text: str, options: Iterable[str] = ()) -> None:
        self.replies.append(Reply(text, tuple(options)))

    def effect(self, kind: str, **data: Any) -> None:
        self.effects.append(Effect(kind, data))


class _Machine(AsyncMachine):
    """An AsyncMachine that attaches models without convenience methods.

    A turn is attached for one step and fired through `machine.events` (see FlowRunner.step),
    so the `is_<state>`, `<trigger>` and `may_<trigger>` methods that transitions binds onto
    every model it is given are never called; binding them on every message cost about a
    tenth of the event loop's time under load (docs/performance.md)."""

    def _add_trigger_to_model(self, trigger: str, model: object) -> None:
        pass

    def _add_model_to_state(self, state: object, model: object) -> None:
        pass

    @staticmethod
    async def await_all(callables: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
        """Callbacks one after another, in the order declared. transitions gathers them,
        which makes a task of each (several per message); ours are quick, and none waits for
        another."""
        return [await func() for func in callables]


class Flow:
    """One journey and its one shared machine."""

    def __init__(self, spec: FlowSpec) -> None:
        self.spec = spec
        self.name = spec.name
        names = [s.name for s in spec.states]
        gotos = sorted(
            {t["dest"] for t in spec.transitions if str(t.get("dest", "")).startswith(GOTO)}
        )
        try:
            self.machine = _Machine(
                model=None,
                states=names + gotos,
                transitions=[dict(t) for t in spec.transitions],
                initial=spec.initial,
                auto_transitions=False,
                queued="model",
                send_event=True,
            )
        except (ValueError, KeyError) as exc:
            raise ContentError(f"flows/{spec.name}: {exc}") from exc

    def check(self, content: Content, flows: Mapping[str, Flow]) -> None:
        """Fail loudly on a dangling content key, unknown state or unknown goto target."""
        where = f"flows/{self.name}"
        for state in self.spec.states:
            keys = [*state.say, *(o.label for o in state.options), state.retry]
            keys += [state.redacted] if state.redacted else []
            if (state.choices is None) != (state.chose is None):
                raise ContentError(f"{where}: state {state.name!r} needs both choices and chose")
            for key in keys:
                if not content.has(key):
                    raise ContentError(f"{where}: state {state.name!r} uses unknown id {key!r}")
            for option in state.options:
                if option.keywords and option.keywords not in content.keywords:
                    raise ContentError(
                        f"{where}: state {state.name!r} uses unknown keywords {option.keywords!r}"
                    )
        names = {s.name for s in self.spec.states}
        if self.spec.initial not in names:
            raise ContentError(f"{where}: unknown initial state {self.spec.initial!r}")
        for t in self.spec.transitions:
            sources = t["source"] if isinstance(t["source"], list | tuple) else [t["source"]]
            for source in sources:
                if source != "*" and source not in names:
                    raise ContentError(f"{where}: transition from unknown state {source!r}")
        dests = [str(t["dest"]) for t in self.spec.transitions]
        dests += [e for s in self.spec.states for e in s.exits]
        for dest in dests:
            if not dest.startswith(GOTO) and dest not in names:
                raise ContentError(f"{where}: unknown state {dest!r}")
            if dest.startswith(GOTO):
                target = dest[len(GOTO) :]
                if target == "resume":
                    continue
                flow_name, _, state_name = target.partition(".")
                if flow_name not in flows:
                    raise ContentError(f"{where}: goto to unknown flow {flow_name!r}")
                if state_name and state_name not in {s.name for s in flows[flow_name].spec.states}:
                    raise ContentError(f"{where}: goto to unknown state {target!r}")


class FlowRunner:
    """Runs any journey: render a state, or interpret text and advance."""

    def __init__(self, flows: Iterable[FlowSpec], content: Content) -> None:
        self.flows = {spec.name: Flow(spec) for spec in flows}
        self.content = content
        # What the questions answered after a hand-off keep out (may_answer_later), once.
        self._later_scrubs = tuple(
            {
                state.scrub
                for flow in self.flows.values()
                for state in flow.spec.states
                if state.answered_later and state.scrub is not None
            }
        )
        for flow in self.flows.values():
            flow.check(content, self.flows)

    def flow(self, name: str) -> Flow:
        try:
            return self.flows[name]
        except KeyError:
            raise ContentError(f"unknown flow {name!r}") from None

    async def start(self, turn: Turn, flow_name: str, state_name: str | None = None) -> None:
        """Put the conversation at a flow's state and say what that state says."""
        flow = self.flow(flow_name)
        state_name = state_name or flow.spec.initial
        state = flow.spec.state(state_name)
        instead: dict[str, str] = {}
        if turn.text:
            # A first message can already ask for someone, or whether this is confidential:
            # an answer the state says anyway in full is said in its place, not twice.
            rail = self.rail(turn, turn.text)
            if rail is not None and rail.instead_of in state.say:
                instead[rail.instead_of] = rail.reply
            elif rail is not None:
                turn.say(rail.reply)
        turn.conversation.flow, turn.conversation.state = flow_name, state_name
        await self._render(turn, flow, state, instead=instead)

    async def render_current(self, turn: Turn) -> None:
        flow = self.flow(turn.conversation.flow)
        await self._render(turn, flow, flow.spec.state(turn.conversation.state))

    async def step(self, turn: Turn, text: str) -> None:
        """Advance the conversation's flow with the person's text."""
        conv = turn.conversation
        flow = self.flow(conv.flow)
        state = flow.spec.state(conv.state)
        if self.guard(turn, text):
            await self._render(turn, flow, state, say=False)
            return
        trigger = self._interpret(turn, state, text)
        if trigger is None:
            await self._not_understood(turn, flow, state)
            return
        flow.machine.add_model(turn, initial=conv.state)
        try:
            # Through the machine, not `turn.trigger`: transitions never rebinds a model's
            # trigger method, so a turn that has already moved through one journey (several
            # messages answered in one turn) would fire into that journey's machine.
            event = flow.machine.events.get(trigger)
            fired = event is not None and await event.trigger(turn)
            new_state = turn.state
        finally:
            flow.machine.remove_model(turn)
        if not fired:
            await self._not_understood(turn, flow, state)
            return
        conv.answers.pop("_misses", None)
        await self._arrive(turn, flow, new_state)

    def _state(self, flow_name: str, state_name: str) -> State | None:
        flow = self.flows.get(flow_name)
        if flow is None:
            return None
        try:
            return flow.spec.state(state_name)
        except KeyError:
            return None

    def has_state(self, flow_name: str, state_name: object) -> bool:
        return isinstance(state_name, str) and self._state(flow_name, state_name) is not None

    def takes_as_answer(self, flow_name: str, state_name: str, said: str) -> bool:
        """Whether the whole (normalised) message is one of the words an option of this
        state answers to ("cancel" is "no" at "delete everything?")."""
        state = self._state(flow_name, state_name)
        if state is None:
            return False
        return any(
            self.content.is_exactly(o.keywords, said)
            for o in state.options
            if o.keywords is not None
        )

    def private(self, flow_name: str, state_name: str) -> bool:
        """Whether an answer to this state may hold what is not kept in clear (the engine
        stores it sealed until it is handled)."""
        state = self._state(flow_name, state_name)
        return state is not None and (state.redacted is not None or state.scrub is not None)

    def answered_later(self, flow_name: str, state_name: str) -> bool:
        """Whether this question's answer may still come after a hand-off cut it short."""
        state = self._state(flow_name, state_name)
        return state is not None and bool(state.answered_later)

    def may_answer_later(self, text: str) -> bool:
        """Whether `text` may be the answer to any such question (it holds what one's
        `scrub` takes out: a number): quick, with no turn, to store it sealed as it arrives."""
        return any(scrub(text) != text for scrub in self._later_scrubs)

    def reads_later_answer(self, turn: Turn, flow_name: str, state_name: str, text: str) -> bool:
        """After a hand-off cut this question short: whether `text` answers it (read as the
        state reads an answer, into the turn, for `take_later_answer`)."""
        state = self._state(flow_name, state_name)
        read = None if state is None else state.interpret_later or state.interpret
        if state is None or not state.answered_later or read is None:
            return False
        return read(turn, text) is not None

    def take_later_answer(self, turn: Turn, flow_name: str, state_name: str) -> str | None:
        """Take the answer `reads_later_answer` read: the state's `answered_later` actions.
        Returns the state the journey has reached with it, if one says (where leaving the
        queue brings them back to, rather than the question again)."""
        state = self._state(flow_name, state_name)
        reached = None
        for action in state.answered_later if state is not None else ():
            reached = action(turn) or reached
        return reached

    def kept_later(self, flow_name: str, state_name: str, text: str, language: str) -> str:
        """What the transcript keeps of an answer taken after a hand-off: the words around
        it are for the adviser (less what the state scrubs); the stand-in if there are none."""
        state = self._state(flow_name, state_name)
        if state is None or state.scrub is None:
            return text
        scrubbed = state.scrub(text)
        if state.redacted and not any(c.isalnum() for c in scrubbed):
            return self.content.text(state.redacted, language)
        return scrubbed

    def kept(
        self, flow_name: str, state_name: str, text: str, language: str, *, risky: bool
    ) -> str:
        """What the transcript keeps of `text` as the answer to this state. Words about
        danger are kept for the adviser, less what the state scrubs even then, never a
        stand-in."""
        state = self._state(flow_name, state_name)
        if state is not None and state.redacted and not risky:
            return self.content.text(state.redacted, language)
        if state is not None and state.scrub is not None and (state.scrub_in_danger or not risky):
            return state.scrub(text)
        return text

    async def answer_offer(self, turn: Turn, text: str) -> bool:
        """While queued: if the current state is an offer and the text picks one of its
        options, move on as `step` would and return True; otherwise say nothing. Stricter
        than `step`: a number, a label, or a whole keyword phrase; words meant for the
        adviser ("I had a call from the police") are not taken as a choice."""
        state = self._state(turn.conversation.flow, turn.conversation.state)
        if state is None or not state.while_queued:
            return False
        said = normalise(text)
        number = _NUMBER.match(text)
        if number:
            chosen = 0 <= int(number.group(1)) - 1 < len(state.options)
        else:
            chosen = bool(said) and (
                self._match_label(turn, state, said) is not None
                or any(
                    o.keywords and said in self.content.all_words(o.keywords) for o in state.options
                )
            )
        if not chosen:
            return False
        await self.step(turn, text)
        return True

    def guard(self, turn: Turn, text: str) -> bool:
        """Refuse a request for someone's whereabouts, contact or words, from any state.

        Says the refusal and flags the conversation for advisers; True if it did. Each text
        is checked once per turn, however many times the journey moves on."""
        rail = self.rail(turn, text)
        if rail is None:
            return False
        turn.say(rail.reply)
        return True

    def rail(self, turn: Turn, text: str, *, flagged: Collection[str] = ()) -> Guardrail | None:
        """The guardrail a text trips, the first time it is checked this turn; an adviser
        is told (flagged) if the rail says so, unless it is one of `flagged` (told already).
        The caller says its reply (the engine too, while the person waits for an adviser)."""
        if turn.guarded == text:
            return None
        turn.guarded = text
        rail = self.content.guardrail(text)
        if rail is not None:
            turn.railed = text
        if rail is not None and rail.flag and rail.name not in flagged:
            turn.effect("flag", reason=f"guardrail:{rail.name}")
        return rail

    async def ask_again(self, turn: Turn, key: str) -> None:
        """Say `key`, then the current question again, without moving on (a message with
        nothing in it answers nothing): the state's last words (the question itself, not
        what led up to it, such as the welcome's introduction) unless they are filled in by
        what was done on arriving (a placeholder), then its options. Nothing is done again."""
        flow = self.flow(turn.conversation.flow)
        state = flow.spec.state(turn.conversation.state)
        turn.say(key)
        if state.say and "{" not in self.content.text(state.say[-1], turn.language):
            turn.say(state.say[-1])
        await self._render(turn, flow, state, say=False)

    async def _not_understood(self, turn: Turn, flow: Flow, state: State) -> None:
        misses = int(turn.answers.get("_misses", 0)) + 1
        turn.answers["_misses"] = misses
        turn.say(state.retry)
        if misses >= 2 and self.content.has("flow.offer_adviser"):
            turn.say("flow.offer_adviser")  # still stuck: a person can help
        await self._render(turn, flow, state, say=False)

    async def _arrive(self, turn: Turn, flow: Flow, state_name: str) -> None:
        if not state_name.startswith(GOTO):
            turn.conversation.state = state_name
            await self._render(turn, flow, flow.spec.state(state_name))
            return
        target = state_name[len(GOTO) :]
        if target == "resume":
            back = turn.answers.pop("_resume", None) or ["welcome", None]
            await self._resume(turn, back[0], back[1])
            return
        flow_name, _, sub = target.partition(".")
        await self.start(turn, flow_name, sub or None)

    async def _resume(self, turn: Turn, flow_name: str, state_name: str | None) -> None:
        """Back from a detour (help, "delete everything?" answered no) to the question they
        were at: the question and its options again, as `ask_again` says them, not the whole
        state (the welcome's three introductions) nor what it does on arriving (the
        welcome's reading of a first message took the "1" that left help for one). A state
        whose last words are filled in on arriving is started again instead."""
        flow = self.flow(flow_name)
        state = flow.spec.state(state_name or flow.spec.initial)
        last = state.say[-1] if state.say else None
        if last is None or "{" in self.content.text(last, turn.language):
            await self.start(turn, flow_name, state.name)
            return
        turn.conversation.flow, turn.conversation.state = flow_name, state.name
        turn.say(last)
        await self._render(turn, flow, state, say=False)

    def leave_detour(self, turn: Turn) -> None:
        """Back to where the person was before a detour, saying nothing (a human has them)."""
        conv = turn.conversation
        flow, state = turn.answers.pop("_resume", None) or ["welcome", None]
        conv.flow, conv.state = flow, state or self.flows[flow].spec.initial

    async def detour(self, turn: Turn, flow_name: str, state_name: str | None = None) -> None:
        """Go somewhere for a moment (help, delete my data) remembering where to come back."""
        conv = turn.conversation
        if "_resume" not in conv.answers and conv.flow != flow_name:
            conv.answers["_resume"] = [conv.flow, conv.state]
        await self.start(turn, flow_name, state_name)

    async def _render(
        self,
        turn: Turn,
        flow: Flow,
        state: State,
        *,
        say: bool = True,
        instead: Mapping[str, str] | None = None,
    ) -> None:
        turn.vars.setdefault("options", [])
        if say:
            for action in state.enter:
                dest = action(turn)
                if dest is not None:
                    if dest not in state.exits:
                        raise ContentError(
                            f"flows/{flow.name}: state {state.name!r} may not exit to {dest!r}"
                        )
                    for reply in (instead or {}).values():
                        turn.say(reply)  # not said in its place: said before
                    await self._arrive(turn, flow, dest)  # the action moved the person on
                    return
            for key in state.say:
                turn.say((instead or {}).get(key, key), **turn.vars)
        labels = (*self._choices(turn, state), *self._labels(turn, state))
        if labels:
            if turn.replies:
                last = turn.replies[-1]
                turn.replies[-1] = Reply(last.text, labels, last.author)
            else:
                turn.say("flow.choose", options=labels)

    def _labels(self, turn: Turn, state: State) -> tuple[str, ...]:
        return tuple(self.content.text(o.label, turn.language) for o in state.options)

    @staticmethod
    def _choices(turn: Turn, state: State) -> tuple[str, ...]:
        return tuple(state.choices(turn)) if state.choices is not None else ()

    def _interpret(self, turn: Turn, state: State, text: str) -> str | None:
        said = normalise(text)
        number = _NUMBER.match(text)
        chosen: Option | None = None
        choices = self._choices(turn, state)
        picked = int(number.group(1)) - 1 if number else None
        if picked is None and said:
            picked = next((i for i, c in enumerate(choices) if normalise(c) == said), None)
        if picked is not None and 0 <= picked < len(choices) and state.chose is not None:
            turn.answers[state.store_as or "_choice"] = picked
            return state.chose
        if picked is not None and number:
            picked -= len(choices)
            if 0 <= picked < len(state.options):
                chosen = state.options[picked]
        first = state.interpret_first
        if chosen is None and said and first is not None and not number:
            trigger = None if self._match_label(turn, state, said) else first(turn, text)
            if trigger is not None:
                return trigger
        if chosen is None and said:
            chosen = self._match_option(turn, state, said)
        if chosen is not None:
            if state.store_as:
                turn.answers[state.store_as] = chosen.answer or chosen.trigger
            return chosen.trigger
        if state.interpret is not None:
            trigger = state.interpret(turn, text)
            if trigger is not None:
                return trigger
        if state.free_text is not None and said:
            if state.store_as:
                kept = state.scrub(text) if state.scrub is not None else text
                turn.answers[state.store_as] = kept.strip()[:500]
            return state.free_text
        return None

    def _match_option(self, turn: Turn, state: State, said: str) -> Option | None:
        by_label = self._match_label(turn, state, said)
        if by_label is not None:
            return by_label
        # Free text: the option whose keyword phrase appears in what was said; the highest
        # rank first ("my brother hits me" is about being hurt), then the longest phrase.
        best_kw: tuple[tuple[int, int], Option | None] = ((0, 0), None)
        for option in state.options:
            if option.keywords:
                length = longest_mention(said, self.content.all_words(option.keywords))
                if length and (option.rank, length) > best_kw[0]:
                    best_kw = ((option.rank, length), option)
        return best_kw[1]

    def _match_label(self, turn: Turn, state: State, said: str) -> Option | None:
        """The option whose label (in either language) is what was said, or nearly."""
        best: tuple[float, Option | None] = (0.0, None)
        for option in state.options:
            label = normalise(self.content.text(option.label, turn.language))
            other = normalise(
                self.content.text(option.label, "cy" if turn.language == "en" else "en")
            )
            if said in (label, other):
                return option
            score = max(fuzz.ratio(said, label), fuzz.ratio(said, other))
            if score > best[0]:
                best = (score, option)
        return best[1] if best[0] >= 85 else None


def longest_mention(said: str, words: Iterable[str]) -> int:
    """Length of the longest keyword found in normalised text, 0 if none.

    A single word counts only when it is the whole message ("help", "stop", "me"), so that
    "I need help with my temper" is not taken as a command; a phrase counts anywhere."""
    padded = f" {said} "
    best = 0
    for w in words:
        if not w:
            continue
        if (w == said or (" " in w and f" {w} " in padded)) and len(w) > best:
            best = len(w)
    return best


def mentions(said: str, words: Iterable[str]) -> bool:
    return longest_mention(said, words) > 0
