"""A person uses the real chat page in chromium: options, typing, reload, quick exit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, expect

from helpline.app import CONTENT
from tests.support import running, settings_for

pytestmark = pytest.mark.browser

TOKEN_JS = (
    "() => { try { return sessionStorage.getItem('helpline.token') } catch (e) { return null } }"
)


@asynccontextmanager
async def neutral_site() -> AsyncIterator[str]:
    """Stands in for the neutral site the quick exit goes to (no network here)."""
    app = web.Application()

    async def weather(_: web.Request) -> web.Response:
        return web.Response(text="<title>Weather</title>Sunny spells", content_type="text/html")

    app.router.add_get("/", weather)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def test_a_person_chats_reloads_and_leaves_with_quick_exit(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with neutral_site() as neutral:
        settings = settings_for(sqlite_url, tmp_path, exit_url=neutral)
        async with running(settings, serve=True) as (app, _, url):
            t = lambda key: app[CONTENT].text(key, "en")  # noqa: E731
            page = await browser.new_page(viewport={"width": 360, "height": 740})
            await page.goto(url + "/")
            log = page.get_by_role("log")
            await expect(log).to_contain_text(t("welcome.safe_now"))

            # Choose by clicking quick replies.
            await page.get_by_role("button", name=t("welcome.opt_safe")).click()
            await page.get_by_role("button", name=t("who.opt_self")).click()
            await expect(log).to_contain_text(t("own.about"))

            # Type an answer in their own words.
            await page.get_by_role("textbox", name="Message").fill("it's about my partner")
            await page.get_by_role("button", name="Send").click()
            await expect(log).to_contain_text(t("own.children"))

            # A reload in the same tab resumes the same conversation.
            await page.reload()
            await expect(page.get_by_role("log")).to_contain_text(t("own.children"))
            await expect(page.get_by_role("log")).to_contain_text("it's about my partner")

            # Quick exit: replaces the page, and Back does not return to the chat.
            await page.get_by_role("button", name="Exit this page").click()
            await page.wait_for_url(neutral)
            await expect(page.locator("body")).to_contain_text("Sunny spells")
            await page.go_back()
            assert not page.url.startswith(url)
            assert await page.evaluate(TOKEN_JS) is None
            await page.close()


async def test_escape_key_leaves_at_once(browser: Browser, sqlite_url: str, tmp_path: Path) -> None:
    async with neutral_site() as neutral:
        settings = settings_for(sqlite_url, tmp_path, exit_url=neutral)
        async with running(settings, serve=True) as (app, _, url):
            page = await browser.new_page()
            await page.goto(url + "/")
            await expect(page.get_by_role("log")).to_contain_text(
                app[CONTENT].text("welcome.safe_now", "en")
            )
            await page.keyboard.press("Escape")
            await page.wait_for_url(neutral)
            await page.close()


async def test_markup_from_anyone_stays_inert_text(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (_app, _, url):
        page = await browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await page.goto(url + "/")
        attack = '<img src=x onerror="alert(1)"><b>bold</b>'
        await page.get_by_role("textbox", name="Message").fill(attack)
        await page.get_by_role("button", name="Send").click()
        await expect(page.get_by_role("log")).to_contain_text(attack)
        assert await page.locator("#messages img").count() == 0
        assert await page.locator("#messages b").count() == 0
        assert dialogs == []
        await page.close()


NEWEST_CLEAR_OF_COMPOSER = """() => {
  const bots = document.querySelectorAll('#messages .message--bot');
  if (!bots.length || document.getElementById('options').hidden) return false;
  const newest = bots[bots.length - 1].getBoundingClientRect();
  const composer = document.getElementById('composer').getBoundingClientRect();
  return newest.bottom <= composer.top + 0.5 && newest.top >= 0;
}"""


async def test_the_newest_question_is_not_hidden_behind_the_reply_buttons(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        t = lambda key: app[CONTENT].text(key, "en")  # noqa: E731
        page = await browser.new_page(viewport={"width": 360, "height": 640})
        await page.goto(url + "/")
        await expect(page.get_by_role("button", name=t("welcome.opt_safe"))).to_be_visible()
        await page.wait_for_function(NEWEST_CLEAR_OF_COMPOSER, timeout=3000)
        await page.get_by_role("button", name=t("welcome.opt_safe")).click()
        await expect(page.get_by_role("button", name=t("who.opt_self"))).to_be_visible()
        await page.wait_for_function(NEWEST_CLEAR_OF_COMPOSER, timeout=3000)
        await page.close()


BLOCK_STORAGE = """
Object.defineProperty(window, 'sessionStorage', {
  get() { throw new DOMException('blocked', 'SecurityError'); },
});
window.__sockets = [];
window.__hellos = [];
const Native = window.WebSocket;
window.WebSocket = function (url) {
  const ws = new Native(url);
  const send = ws.send.bind(ws);
  ws.send = (data) => {
    const frame = JSON.parse(data);
    if (frame.type === 'hello') window.__hellos.push(frame);
    send(data);
  };
  window.__sockets.push(ws);
  return ws;
};
"""


async def test_a_network_blip_keeps_the_conversation_when_storage_is_blocked(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        t = lambda key: app[CONTENT].text(key, "en")  # noqa: E731
        page = await browser.new_page()
        await page.add_init_script(BLOCK_STORAGE)
        await page.goto(url + "/")
        log = page.get_by_role("log")
        await page.get_by_role("button", name=t("welcome.opt_safe")).click()
        await expect(page.get_by_role("button", name=t("who.opt_self"))).to_be_visible()
        await page.evaluate("() => window.__sockets[window.__sockets.length - 1].close()")
        await page.wait_for_function("() => window.__hellos.length === 2")
        await expect(page.get_by_role("status")).to_have_text(t("web.status_connected"))
        hellos = await page.evaluate("() => window.__hellos")
        assert hellos[0]["token"] is None
        assert hellos[1]["token"]
        await expect(log).to_contain_text(t("welcome.opt_safe"))
        await page.close()


RECORD_LIVENESS = """
window.__liveness = [];
new MutationObserver((records) => {
  for (const r of records) {
    if (r.target.id === 'messages' && r.addedNodes.length) {
      window.__liveness.push(r.target.getAttribute('aria-live'));
    }
  }
}).observe(document, { childList: true, subtree: true });
"""


async def test_a_screen_reader_hears_the_welcome_of_a_new_chat(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        page = await browser.new_page()
        await page.add_init_script(RECORD_LIVENESS)
        await page.goto(url + "/")
        await expect(page.get_by_role("log")).to_contain_text(
            app[CONTENT].text("welcome.safe_now", "en")
        )
        liveness = await page.evaluate("() => window.__liveness")
        assert liveness and set(liveness) == {"polite"}

        # A reload still redraws the conversation quietly.
        await page.reload()
        await expect(page.get_by_role("log")).to_contain_text(
            app[CONTENT].text("welcome.safe_now", "en")
        )
        assert set(await page.evaluate("() => window.__liveness")) == {"off"}
        await page.close()
