"""Helpers for journey tests: talk to the real engine as one person and read back what was said
as content keys, so golden tests pin journeys without pinning every word."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from helpline.app import CONTENT, STORE
from helpline.content import DEFAULT_ROOT, Content
from helpline.domain import Conversation, InboundMessage
from tests.support import FakeChannel, engine_of

_FIELD = re.compile(r"\\\{(\w+)\\\}")


class KeyFinder:
    """Turns a sent text back into the content key it came from (placeholders filled)."""

    def __init__(self, content: Content) -> None:
        self.exact: dict[str, str] = {}
        self.patterns: list[tuple[re.Pattern[str], str]] = []
        for key, versions in content.messages.items():
            if key.startswith("calendar."):
                continue  # pieces of other messages (a date), never a reply of their own
            if any(_FIELD.fullmatch(re.escape(text)) for text in versions.values()):
                continue  # a name in other words ("{force}"), never a reply of its own
            for text in versions.values():
                if "{" in text:
                    pattern = _FIELD.sub(r"(.+?)", re.escape(text))
                    self.patterns.append((re.compile(pattern, re.DOTALL), key))
                else:
                    self.exact.setdefault(text, key)

    def key(self, text: str) -> str:
        if text in self.exact:
            return self.exact[text]
        for pattern, key in self.patterns:
            if pattern.fullmatch(text):
                return key
        return "<text>"  # composed from the directory (a programme's details)


@dataclass
class Person:
    """One person writing to the service on one channel."""

    app: web.Application
    fake: FakeChannel
    address: str = "+447700900123"
    language: str = "en"
    channel: str = "test"
    conversation_id: str | None = None
    keys: KeyFinder = field(init=False)

    def __post_init__(self) -> None:
        self.keys = KeyFinder(self.app[CONTENT])

    async def says(self, text: str) -> list[str]:
        """Send one message; the content keys of every reply it got, in order."""
        before = len(self.fake.sent)
        accepted = await engine_of(self.app).handle(
            InboundMessage(self.channel, self.address, text), language=self.language
        )
        self.conversation_id = accepted.conversation_id
        return [self.keys.key(m.reply.text) for m in self.fake.sent[before:]]

    def last_options(self) -> tuple[str, ...]:
        return self.fake.sent[-1].reply.options

    def last_texts(self, n: int = 1) -> list[str]:
        return [m.reply.text for m in self.fake.sent[-n:]]

    async def conversation(self) -> Conversation:
        assert self.conversation_id is not None
        return await self.app[STORE].conversation(self.conversation_id)


async def run_golden(person: Person, script: list[tuple[str, list[str]]]) -> None:
    """Each input must get exactly these reply keys, in order."""
    for text, expected in script:
        got = await person.says(text)
        assert got == expected, f"after {text!r}: {got} != {expected}"


def content_copy(tmp_path: Path) -> Path:
    """A copy of content/ that a test may change."""
    root = tmp_path / "content"
    shutil.copytree(DEFAULT_ROOT, root)
    return root


def with_test_programme(
    root: Path, programme_id: str = "gwent-community-programme", **changes: Any
) -> dict[str, Any]:
    """Make a programme (Gwent's unless told) a confirmed one that takes referrals through
    the helpline."""
    path = root / "directory" / "programmes.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.pop("templates", None)
    for entry in data["programmes"]:
        if entry["id"] == programme_id:
            entry.update(
                placeholder=False,
                verified_on=date(2026, 1, 1),
                accepts_referrals_via_helpline=True,
                provider="Test provider",
                contacts=[{"channel": "phone", "value": "01632 960000"}],
            )
            entry.update(changes)
            chosen = entry
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return chosen
