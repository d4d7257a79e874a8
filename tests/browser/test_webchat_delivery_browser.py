"""Every message the person sends in the chat page is stored once, or stays "Not sent yet" and
goes again with the same id: refused, cut off on the way, or its acknowledgement lost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSCloseCode
from playwright.async_api import Browser, Page, expect

from channels import webchat
from helpline.app import CONTENT, ENGINE, PRIVACY, SENDERS, STORE
from helpline.domain import Direction
from helpline.errors import StoreUnavailable
from helpline.ratelimit import MemoryLimiter
from tests.support import eventually, running, settings_for

# One browser for the whole run (tests/browser/conftest.py): its tests share its event loop.
pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

TOKEN_JS = "() => sessionStorage.getItem('helpline.token')"


async def _chat(browser: Browser, url: str, app: Any) -> Page:
    page = await browser.new_page()
    await page.goto(url + "/")
    await expect(page.get_by_role("log")).to_contain_text(
        app[CONTENT].text("welcome.safe_now", "en")
    )
    return page


async def _send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    await box.fill(text)
    await page.get_by_role("button", name="Send").click()


async def _stored(app: Any, page: Page) -> list[str]:
    """What the service stored from the person, in order."""
    token = await page.evaluate(TOKEN_JS)
    conv = await app[STORE].open_conversation(app[PRIVACY].contact_key("web", token))
    if conv is None:
        return []
    return [m.text for m in await app[STORE].transcript(conv.id) if m.direction == Direction.IN]


async def _shown(page: Page) -> list[str]:
    """The person's messages on the page, in order."""
    return await page.locator(".message--person .message__text").all_inner_texts()


async def _all_stored(app: Any, page: Page, texts: list[str]) -> None:
    async def done() -> bool:
        return await _stored(app, page) == texts

    await eventually(done, timeout=30)
    # Acknowledged, so nothing is left marked, and each is on the page once.
    pending = app[CONTENT].text("web.message_pending", "en")
    await expect(page.get_by_text(pending)).to_have_count(0)
    assert await _shown(page) == texts


async def test_a_message_the_database_refused_stays_not_sent_yet_and_goes_again(
    browser: Browser, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database failed once for the second message while the first was being answered:
    # the first one's "typing" and reply used to confirm both, and the second was lost.
    monkeypatch.setattr(webchat, "RETRY_STORE", 3)
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        engine = app[ENGINE]
        real = engine.store.accept_inbound
        failed: list[str] = []

        async def accept_inbound(**kw: Any) -> Any:
            if kw["text"] == "second" and not failed:
                failed.append(kw["text"])
                raise StoreUnavailable("the database blinked")
            return await real(**kw)

        engine.store.accept_inbound = accept_inbound
        page = await _chat(browser, url, app)
        await _send(page, "first")
        await _send(page, "second")
        pending = app[CONTENT].text("web.message_pending", "en")
        second = page.locator(".message--person").filter(has_text="second")
        await expect(second.get_by_text(pending)).to_be_visible()
        await expect(page.get_by_role("status")).to_have_text(
            app[CONTENT].text("web.error_store", "en")
        )
        await _all_stored(app, page, ["first", "second"])
        assert failed == ["second"]
        await page.close()


async def test_messages_over_the_limit_stay_not_sent_yet_and_go_once_it_allows(
    browser: Browser, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Typing fast past the limit: the refused messages were shown as sent, never resent.
    monkeypatch.setattr(webchat, "RETRY_LIMITED", 2)
    settings = settings_for(sqlite_url, tmp_path, messages_per_minute=3)
    async with running(settings, serve=True) as (app, _, url):
        now = [0.0]
        app[ENGINE].limiter = MemoryLimiter(clock=lambda: now[0])
        page = await _chat(browser, url, app)
        texts = [f"line {n}" for n in range(5)]
        for text in texts:
            await _send(page, text)
        pending = app[CONTENT].text("web.message_pending", "en")
        await expect(page.get_by_text(pending)).to_have_count(2)
        await expect(page.get_by_role("status")).to_have_text(
            app[CONTENT].text("web.error_slow_down", "en")
        )
        assert await _stored(app, page) == texts[:3]
        now[0] += 60  # the next minute
        await _all_stored(app, page, texts)
        await page.close()


async def test_a_message_cut_off_on_its_way_goes_again_after_reconnecting(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # The connection dropped after the service took A, with B on its way: B disappeared.
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        engine = app[ENGINE]
        accept = engine.store.accept_inbound

        async def slow_accept(**kw: Any) -> Any:
            if kw["text"] == "message A":
                await asyncio.sleep(0.5)  # a busy database: B is sent while A is stored
            return await accept(**kw)

        engine.store.accept_inbound = slow_accept
        chat = app[SENDERS]["web"]
        real = chat._message
        cut: list[str] = []

        async def message(ws: Any, key: str, token: str, lang: str, text: str, cid: Any) -> None:
            if text == "message B" and not cut:
                cut.append(text)  # the network drops here: B never reaches the service
                await ws.close(code=WSCloseCode.GOING_AWAY)
                return
            await real(ws, key, token, lang, text, cid)

        chat._message = message
        page = await _chat(browser, url, app)
        await _send(page, "message A")
        await _send(page, "message B")
        await _all_stored(app, page, ["message A", "message B"])
        assert cut == ["message B"]
        await page.close()


async def test_a_message_stored_whose_ack_was_lost_is_shown_once_after_reconnecting(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # Stored, then the connection dropped before the page heard so: the history brings it
    # back, and the page must neither show it twice nor leave it "Not sent yet".
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        chat = app[SENDERS]["web"]
        real = chat._message
        lost: list[str] = []

        async def message(ws: Any, key: str, token: str, lang: str, text: str, cid: Any) -> None:
            if text == "hello there" and not lost:
                lost.append(text)
                assert await chat._take(key, token, lang, text, f"{key[:24]}:{cid}") is True
                await ws.close(code=WSCloseCode.GOING_AWAY)
                return
            await real(ws, key, token, lang, text, cid)

        chat._message = message
        page = await _chat(browser, url, app)
        await _send(page, "hello there")
        await expect(page.get_by_role("status")).to_have_text(
            app[CONTENT].text("web.status_connected", "en"), timeout=15_000
        )
        await _all_stored(app, page, ["hello there"])
        assert lost == ["hello there"]
        # Writing on carries on as usual.
        await _send(page, "and again")
        await _all_stored(app, page, ["hello there", "and again"])
        await page.close()
