"""Journeys as data on transitions: one AsyncMachine per flow, shared by every conversation.

A flow module declares states (what to say, which options) and transitions (triggers between
states, with optional conditions). The runner attaches a conversation's turn to the flow's
machine at its stored state, turns the person's text into a trigger, fires it, and renders
what the new state says. A destination "goto:<flow>" or "goto:<flow>.<state>" moves to another
journey; "goto:resume" returns to where the person was before a detour (help, delete).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz
from transitions.extensions.asyncio import AsyncMachine

from helpline.content import Content, normalise
from helpline.domain import Conversation, Reply
from helpline.errors import ContentError

Action = Callable[["Turn"], None]
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


@dataclass(frozen=True)
class State:
    name: str
    say: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    store_as: str | None = None
    interpret: Interpreter | None = None
    free_text: str | None = None  # trigger fired for any other text (the text is stored)
    enter: tuple[Action, ...] = ()
    retry: str = "flow.not_understood"


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


class Flow:
    """One journey and its one shared machine."""

    def __init__(self, spec: FlowSpec) -> None:
        self.spec = spec
        self.name = spec.name
        names = [s.name for s in spec.states]
        gotos = sorted(
            {t["dest"] for t in spec.transitions if str(t.get("dest", "")).startswith(GOTO)}
        )
        self.machine = AsyncMachine(
            model=None,
            states=names + gotos,
            transitions=[dict(t) for t in spec.transitions],
            initial=spec.initial,
            auto_transitions=False,
            queued="model",
            send_event=True,
        )

    def check(self, content: Content, flows: Mapping[str, Flow]) -> None:
        """Fail loudly on a dangling content key, unknown state or unknown goto target."""
        where = f"flows/{self.name}"
        for state in self.spec.states:
            keys = [*state.say, *(o.label for o in state.options), state.retry]
            for key in keys:
                if not content.has(key):
                    raise ContentError(f"{where}: state {state.name!r} uses unknown id {key!r}")
            for option in state.options:
                if option.keywords and option.keywords not in content.keywords:
                    raise ContentError(
                        f"{where}: state {state.name!r} uses unknown keywords {option.keywords!r}"
                    )
        for t in self.spec.transitions:
            dest = str(t["dest"])
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
        turn.conversation.flow, turn.conversation.state = flow_name, state_name
        await self._render(turn, flow, flow.spec.state(state_name))

    async def render_current(self, turn: Turn) -> None:
        flow = self.flow(turn.conversation.flow)
        await self._render(turn, flow, flow.spec.state(turn.conversation.state))

    async def step(self, turn: Turn, text: str) -> None:
        """Advance the conversation's flow with the person's text."""
        conv = turn.conversation
        flow = self.flow(conv.flow)
        state = flow.spec.state(conv.state)
        trigger = self._interpret(turn, state, text)
        if trigger is None:
            turn.say(state.retry)
            await self._render(turn, flow, state, say=False)
            return
        flow.machine.add_model(turn, initial=conv.state)
        try:
            fired = await turn.trigger(trigger)  # type: ignore[attr-defined]
            new_state = turn.state
        finally:
            flow.machine.remove_model(turn)
        if not fired:
            turn.say(state.retry)
            await self._render(turn, flow, state, say=False)
            return
        await self._arrive(turn, flow, new_state)

    async def _arrive(self, turn: Turn, flow: Flow, state_name: str) -> None:
        if not state_name.startswith(GOTO):
            turn.conversation.state = state_name
            await self._render(turn, flow, flow.spec.state(state_name))
            return
        target = state_name[len(GOTO) :]
        if target == "resume":
            back = turn.answers.pop("_resume", None) or ["welcome", None]
            await self.start(turn, back[0], back[1])
            return
        flow_name, _, sub = target.partition(".")
        await self.start(turn, flow_name, sub or None)

    async def detour(self, turn: Turn, flow_name: str, state_name: str | None = None) -> None:
        """Go somewhere for a moment (help, delete my data) remembering where to come back."""
        conv = turn.conversation
        if "_resume" not in conv.answers and conv.flow != flow_name:
            conv.answers["_resume"] = [conv.flow, conv.state]
        await self.start(turn, flow_name, state_name)

    async def _render(self, turn: Turn, flow: Flow, state: State, *, say: bool = True) -> None:
        turn.vars.setdefault("options", [])
        if say:
            for action in state.enter:
                action(turn)
                if turn.conversation.flow != flow.name or turn.conversation.state != state.name:
                    return  # the action moved the conversation on (and rendered there)
            for key in state.say:
                turn.say(key, **turn.vars)
        labels = tuple(self.content.text(o.label, turn.language) for o in state.options)
        if labels:
            if turn.replies:
                last = turn.replies[-1]
                turn.replies[-1] = Reply(last.text, labels, last.author)
            else:
                turn.say("flow.choose", options=labels)

    def _interpret(self, turn: Turn, state: State, text: str) -> str | None:
        said = normalise(text)
        number = _NUMBER.match(text)
        chosen: Option | None = None
        if number and 1 <= int(number.group(1)) <= len(state.options):
            chosen = state.options[int(number.group(1)) - 1]
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
                turn.answers[state.store_as] = text.strip()[:500]
            return state.free_text
        return None

    def _match_option(self, turn: Turn, state: State, said: str) -> Option | None:
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
        if best[0] >= 85:
            return best[1]
        # Free text: the option whose longest keyword phrase appears in what was said.
        longest: tuple[int, Option | None] = (0, None)
        for option in state.options:
            if option.keywords:
                length = longest_mention(said, self.content.all_words(option.keywords))
                if length > longest[0]:
                    longest = (length, option)
        return longest[1]


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
