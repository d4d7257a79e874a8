"""The flow kit without a network: what a journey asks the engine to do (effects), how text is
understood (numbers, labels, keywords with rank, computed choices), and the checks that stop a
broken journey at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

import flows
from helpline.content import Content
from helpline.domain import Conversation
from helpline.errors import ContentError
from helpline.flowkit import Effect, FlowRunner, FlowSpec, Option, State, Turn
from tests.journey_support import content_copy, with_test_programme


class Talk:
    """One conversation driven straight through a FlowRunner, turn by turn."""

    def __init__(self, content: Content, channel: str = "web", specs: tuple = flows.ALL) -> None:  # type: ignore[type-arg]
        self.content = content
        self.runner = FlowRunner(specs, content)
        self.conv = Conversation("c1", "k1", channel, "ref1")
        self.turn = Turn(self.conv, content)

    async def start(self, flow: str = "welcome", state: str | None = None) -> Turn:
        self.turn = Turn(self.conv, self.content)
        await self.runner.start(self.turn, flow, state)
        return self.turn

    async def says(self, text: str) -> Turn:
        self.turn = Turn(self.conv, self.content, text)
        await self.runner.step(self.turn, text)
        return self.turn

    def effects(self, kind: str) -> list[Effect]:
        return [e for e in self.turn.effects if e.kind == kind]


@pytest.fixture(scope="module")
def content() -> Content:
    return Content.load()


async def test_a_call_back_records_the_safe_time_and_number_but_no_name(content: Content) -> None:
    talk = Talk(content, channel="web")
    await talk.start("own", "want")
    await talk.says("2")
    await talk.says("Tuesday after 6pm")
    await talk.says("07700 900123")
    (callback,) = talk.effects("callback")
    assert callback.data == {
        "window": "Tuesday after 6pm",
        "number": "07700900123",
        "this_number": False,
        "queue": "helpline",
        # Where to ask again, and with which words, if a number cannot be called after all.
        "ask_again": "callback_number",
        "unusable": "own.callback_unusable",
    }
    # Neither the time nor the number stays in the conversation's answers.
    assert "07700900123" not in str(talk.conv.answers)
    assert "Tuesday" not in str(talk.conv.answers)


async def test_on_sms_a_call_back_can_use_the_number_they_wrote_from(content: Content) -> None:
    talk = Talk(content, channel="sms")
    await talk.start("own", "want")
    await talk.says("call me back")
    asked = await talk.says("evenings")
    assert asked.replies[0].text == content.text("own.callback_which", "en")
    turn = await talk.says("1")
    (callback,) = talk.effects("callback")
    assert callback.data["number"] is None and callback.data["this_number"] is True
    assert turn.replies[0].text == content.text("own.callback_done", "en")


async def test_a_referral_shares_only_area_language_and_relationship(tmp_path: Path) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    content = Content.load(root)
    talk = Talk(content)
    talk.conv.answers.update(who="self", about="partner", children="yes")
    await talk.start("programme")
    await talk.says("np20")
    await talk.says("1")
    turn = await talk.says("yes")
    (referral,) = [e for e in turn.effects if e.kind == "referral"]
    assert referral.data == {
        "programme": "gwent-community-programme",
        "shared": {"area": "Newport", "language": "en", "relationship": "partner"},
    }
    (handoff,) = [e for e in turn.effects if e.kind == "handoff"]
    assert handoff.data == {"queue": "programme:gwent-community-programme", "reason": "referral"}


async def test_with_two_programmes_the_person_chooses_by_number(tmp_path: Path) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    _second_programme(root)
    content = Content.load(root)
    talk = Talk(content)
    talk.conv.answers["who"] = "self"
    await talk.start("programme")
    await talk.says("Gwent")
    turn = await talk.says("refer me")
    assert turn.replies[-1].text == content.text("programme.which", "en")
    # The two programmes first, then "none of these" and "try another area" (never stuck).
    assert turn.replies[-1].options[2:] == (
        content.text("programme.opt_neither", "en"),
        content.text("programme.opt_another", "en"),
    )
    assert len(turn.replies[-1].options) == 4
    turn = await talk.says("2")
    assert talk.conv.answers["programme"] == "gwent-second"
    assert content.text("programme.opt_agree", "en") in turn.replies[-1].options


def _second_programme(root: Path) -> None:
    import yaml

    path = root / "directory" / "programmes.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    first = next(p for p in data["programmes"] if p["id"] == "gwent-community-programme")
    second = dict(first, id="gwent-second", name={"en": "Second", "cy": "Ail"})
    data["programmes"].append(second)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


async def test_a_guardrail_flags_the_conversation_for_advisers(content: Content) -> None:
    talk = Talk(content)
    await talk.start("family")
    turn = await talk.says("where is she living now?")
    assert [e.kind for e in turn.effects] == ["flag"]
    assert turn.effects[0].data == {"reason": "guardrail:whereabouts"}
    assert talk.conv.state == "start"


async def test_stop_cancels_any_wait_withdraws_call_backs_and_opts_out(content: Content) -> None:
    talk = Talk(content)
    turn = await talk.start("stop")
    assert [(e.kind, dict(e.data)) for e in turn.effects] == [
        ("cancel_handoff", {}),
        ("withdraw_callbacks", {}),
        ("settings", {"opted_out": True}),
    ]
    assert talk.conv.closed


async def test_a_higher_ranked_keyword_wins_over_a_longer_one(content: Content) -> None:
    talk = Talk(content)
    await talk.start("welcome", "who")
    await talk.says("my brother in law hits me")  # "my brother in law" is longer than "hits me"
    assert talk.conv.flow == "victim"


async def test_typos_in_an_option_label_are_understood(content: Content) -> None:
    talk = Talk(content)
    await talk.start("welcome", "who")
    await talk.says("Im worried about my own behavior")
    assert talk.conv.flow == "own"


def test_an_action_may_only_move_to_a_declared_exit(content: Content) -> None:
    spec = FlowSpec(
        name="odd",
        initial="a",
        states=(State("a", exits=("nowhere",)),),
        transitions=(),
    )
    with pytest.raises(ContentError, match="flows/odd: unknown state 'nowhere'"):
        FlowRunner((*flows.ALL, spec), content)


async def test_an_action_moving_somewhere_undeclared_fails_loudly(content: Content) -> None:
    spec = FlowSpec(
        name="odd",
        initial="a",
        states=(State("a", enter=(lambda turn: "b",)), State("b", say=("own.start",))),
        transitions=(),
    )
    talk = Talk(content, specs=(*flows.ALL, spec))
    with pytest.raises(ContentError, match="may not exit to 'b'"):
        await talk.start("odd")


def test_a_transition_from_an_unknown_state_is_refused(content: Content) -> None:
    spec = FlowSpec(
        name="odd",
        initial="a",
        states=(State("a", options=(Option("flow.opt_yes", "go"),)),),
        transitions=({"trigger": "go", "source": "zzz", "dest": "a"},),
    )
    with pytest.raises(ContentError, match="flows/odd: transition from unknown state 'zzz'"):
        FlowRunner((*flows.ALL, spec), content)
