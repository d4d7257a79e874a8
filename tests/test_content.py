"""Content is checked at start-up: a broken file stops the service with a message naming the file
and the key. Also: our words never minimise abuse, numbers match the directory, and the
journey diagrams in docs/flows/ are up to date."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import flows
from flows.diagrams import DEFAULT_OUT, diagrams
from helpline.content import DEFAULT_ROOT, Content
from helpline.directory import normalise_uk_phone
from helpline.errors import ContentError
from helpline.flowkit import FlowRunner, FlowSpec, Option, State
from run import build
from tests.journey_support import content_copy
from tests.support import settings_for


def _edit(path: Path, change: object) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_the_real_content_loads_with_every_journey() -> None:
    content = Content.load()
    FlowRunner(flows.ALL, content)
    assert content.directory is not None
    assert {"welcome", "own", "family", "victim", "professional", "programme"} <= {
        f.name for f in flows.ALL
    }


@pytest.mark.parametrize(
    "path", ["messages/own.yaml", "keywords.yaml", "hours.yaml", "directory/services.yaml"]
)
def test_a_file_saved_in_another_encoding_stops_start_up_naming_it(
    tmp_path: Path, path: str
) -> None:
    # Saved as Windows-1252 by an editor: "Cymraeg" files hold ŵ and ô. It used to stop the
    # start with a bare UnicodeDecodeError, naming no file.
    root = content_copy(tmp_path)
    file = root / path
    file.write_bytes(file.read_bytes() + "\n# caf\u00e9\n".encode("cp1252"))
    with pytest.raises(ContentError, match=rf"{file.name}: cannot be read"):
        build(settings_for("sqlite+aiosqlite://", tmp_path, content_dir=root))


def test_a_missing_welsh_version_stops_start_up_naming_file_and_key(tmp_path: Path) -> None:
    root = content_copy(tmp_path)
    _edit(root / "messages" / "own.yaml", lambda d: d["own.today"].pop("cy"))
    with pytest.raises(ContentError, match=r"own\.yaml: own\.today: the cy version"):
        build(settings_for("sqlite+aiosqlite://", tmp_path, content_dir=root))


def test_a_message_a_journey_needs_but_is_gone_stops_start_up(tmp_path: Path) -> None:
    root = content_copy(tmp_path)
    _edit(root / "messages" / "family.yaml", lambda d: d.pop("family.victim"))
    with pytest.raises(ContentError, match=r"flows/family: state 'victim' .*'family\.victim'"):
        build(settings_for("sqlite+aiosqlite://", tmp_path, content_dir=root))


def test_different_placeholders_in_english_and_welsh_are_refused(tmp_path: Path) -> None:
    root = content_copy(tmp_path)

    def change(d: dict) -> None:  # type: ignore[type-arg]
        d["programme.found"]["cy"] = "Dyma beth sydd yn {ardal}:"

    _edit(root / "messages" / "programme.yaml", change)
    with pytest.raises(ContentError, match=r"programme\.yaml: programme\.found: .*placeholders"):
        Content.load(root)


def test_a_malformed_phone_number_in_a_message_is_refused(tmp_path: Path) -> None:
    root = content_copy(tmp_path)

    def change(d: dict) -> None:  # type: ignore[type-arg]
        d["victim.signpost"]["cy"] = d["victim.signpost"]["cy"].replace(
            "0808 2000 247", "0808 2000 24"
        )

    _edit(root / "messages" / "victim.yaml", change)
    with pytest.raises(
        ContentError, match=r"victim\.yaml: victim\.signpost \(cy\): .*0808 2000 24"
    ):
        Content.load(root)


def test_a_malformed_phone_number_in_the_directory_is_refused(tmp_path: Path) -> None:
    root = content_copy(tmp_path)

    def change(d: dict) -> None:  # type: ignore[type-arg]
        d["services"][0]["contacts"][0]["value"] = "0909 123 456"

    _edit(root / "directory" / "services.yaml", change)
    with pytest.raises(ContentError, match=r"services\.yaml: respect-phoneline"):
        Content.load(root)


@pytest.mark.parametrize(
    ("lang", "phrase"),
    [
        ("en", "she provoked you"),
        ("en", "You lost control"),
        ("en", "it takes two"),
        ("cy", "dim ond ffrae"),
    ],
)
def test_wording_that_minimises_abuse_is_refused(tmp_path: Path, lang: str, phrase: str) -> None:
    root = content_copy(tmp_path)

    def change(d: dict) -> None:  # type: ignore[type-arg]
        d["own.today"][lang] += f" {phrase}."

    _edit(root / "messages" / "own.yaml", change)
    with pytest.raises(ContentError, match=rf"own\.yaml: own\.today: the {lang} version says"):
        Content.load(root)


def test_a_guardrail_with_a_dangling_reply_or_a_bad_pattern_is_refused(tmp_path: Path) -> None:
    root = content_copy(tmp_path)
    _edit(root / "guardrails.yaml", lambda d: d["contact"].update(reply="guardrail.nope"))
    with pytest.raises(ContentError, match=r"guardrails\.yaml: contact: reply 'guardrail\.nope'"):
        Content.load(root)
    root = content_copy(tmp_path / "again")
    _edit(root / "guardrails.yaml", lambda d: d["message"]["cy"].append("(unclosed"))
    with pytest.raises(ContentError, match=r"guardrails\.yaml: message: cy pattern"):
        Content.load(root)
    root = content_copy(tmp_path / "waiting")
    _edit(root / "guardrails.yaml", lambda d: d["bot"].update(waiting="guardrail.nope"))
    with pytest.raises(ContentError, match=r"guardrails\.yaml: bot: waiting 'guardrail\.nope'"):
        Content.load(root)


def test_a_keyword_list_missing_a_language_is_refused(tmp_path: Path) -> None:
    root = content_copy(tmp_path)
    _edit(root / "keywords.yaml", lambda d: d["who_hurt"].pop("cy"))
    with pytest.raises(ContentError, match=r"keywords\.yaml: who_hurt"):
        Content.load(root)


def test_a_journey_with_an_unknown_state_is_refused() -> None:
    content = Content.load()
    broken = FlowSpec(
        name="broken",
        initial="start",
        states=(State("start", say=("own.start",), options=(Option("flow.opt_yes", "go"),)),),
        transitions=({"trigger": "go", "source": "start", "dest": "nowhere"},),
    )
    with pytest.raises(ContentError, match=r"flows/broken: unknown state 'nowhere'"):
        FlowRunner((*flows.ALL, broken), content)
    broken = FlowSpec(
        name="broken",
        initial="start",
        states=(State("start", say=("own.start",)),),
        transitions=({"trigger": "go", "source": "start", "dest": "goto:own.nowhere"},),
    )
    with pytest.raises(ContentError, match=r"flows/broken: goto to unknown state"):
        FlowRunner((*flows.ALL, broken), content)


def test_our_own_words_never_minimise_abuse() -> None:
    content = Content.load()
    banned = yaml.safe_load((DEFAULT_ROOT / "wording.yaml").read_text(encoding="utf-8"))
    assert len(banned["never_say"]["en"]) >= 20
    for versions in content.messages.values():
        for lang, text in versions.items():
            for phrase in banned["never_say"][lang]:
                assert phrase.lower() not in text.lower()


def test_every_number_in_our_messages_is_one_the_directory_lists() -> None:
    """A number typed into a message and a number in the directory must not drift apart."""
    content = Content.load()
    assert content.directory is not None
    listed = {"999", "111", "101"}
    for entry in (*content.directory.services, *content.directory.programmes):
        listed |= {c.dial for c in entry.contacts if c.dial}
    found = re.compile(r"(?<![\w+])(?:0|116 )\d(?:[ -]?\d){5,}")
    for key, versions in content.messages.items():
        for text in versions.values():
            for number in found.findall(text):
                assert normalise_uk_phone(number) in listed, f"{key}: {number}"


def test_journey_diagrams_in_docs_are_up_to_date() -> None:
    """Run `python run.py diagrams` (flows.diagrams.write_diagrams) after changing a flow."""
    expected = diagrams(flows.ALL)
    committed = {p.name: p.read_text(encoding="utf-8") for p in DEFAULT_OUT.glob("*.md")}
    assert committed == expected
