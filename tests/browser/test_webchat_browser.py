"""A person uses the real chat page in chromium: options, typing, reload, quick exit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, Locator, Page, expect

from helpline.app import CONTENT, ENGINE, PRIVACY, STORE
from helpline.domain import Reply, utcnow
from tests.support import LoopbackProxy, engine_of, eventually, running, settings_for

# One browser for the whole run (tests/browser/conftest.py): its tests share its event loop.
pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

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


async def _phone_chat(browser: Browser, url: str, app: Any) -> tuple[Page, Locator]:
    """The chat page on a phone-sized screen with its welcome shown: the page, and its log."""
    page = await browser.new_page(viewport={"width": 360, "height": 640})
    await page.goto(url + "/")
    log = page.get_by_role("log")
    await expect(log).to_contain_text(app[CONTENT].text("welcome.safe_now", "en"))
    return page, log


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


async def test_exit_before_the_page_s_scripts_load_still_leaves_nothing_to_go_back_to(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # On a slow network, "Exit this page" is tapped before exit.js has run: the plain link
    # used to leave the chat one Back away, with the whole conversation on screen.
    async with neutral_site() as neutral:
        settings = settings_for(sqlite_url, tmp_path, exit_url=neutral)
        async with running(settings, serve=True) as (app, _, url):
            page, _log = await _phone_chat(browser, url, app)
            await page.get_by_role("textbox", name="Message").fill("I pushed my wife")
            await page.get_by_role("button", name="Send").click()
            await expect(page.get_by_role("log")).to_contain_text("I pushed my wife")
            await page.route("**/static/exit.js", lambda route: route.abort())
            await page.reload()
            await expect(page.get_by_role("log")).to_contain_text("I pushed my wife")
            await page.get_by_role("button", name="Exit this page").click()
            await page.wait_for_url(neutral)
            await page.go_back()
            await expect(page.get_by_role("log")).to_contain_text(
                app[CONTENT].text("welcome.safe_now", "en")
            )
            await expect(page.get_by_role("log")).not_to_contain_text("I pushed my wife")
            await page.close()


async def test_focus_on_a_quick_reply_moves_to_the_new_ones_when_they_arrive(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # A keyboard user is on a quick reply when the next message arrives (the same chat in
    # another tab answers): focus used to drop to the page's body.
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        t = lambda key: app[CONTENT].text(key, "en")  # noqa: E731
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(url + "/")
        await expect(page.get_by_role("log")).to_contain_text(t("welcome.safe_now"))
        token = await page.evaluate(TOKEN_JS)
        await page.get_by_role("button", name=t("welcome.opt_not_now")).focus()
        other = await context.new_page()
        await other.add_init_script(f"sessionStorage.setItem('helpline.token', '{token}')")
        await other.goto(url + "/")
        await other.get_by_role("textbox", name="Message").fill("yes")
        await other.get_by_role("button", name="Send").click()
        first = page.get_by_role("button", name=t("who.opt_self"))
        await expect(first).to_be_focused()
        await context.close()


async def test_at_400_percent_zoom_every_quick_reply_is_on_the_page_not_in_a_box(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        page = await browser.new_page(viewport={"width": 320, "height": 256})
        await page.goto(url + "/")
        danger = page.get_by_role("button", name=app[CONTENT].text("welcome.opt_danger", "en"))
        await danger.scroll_into_view_if_needed()
        await expect(danger).to_be_in_viewport()
        clipped = await page.evaluate(
            "() => { const b = document.querySelector('.options');"
            " return b.scrollHeight > b.clientHeight + 1; }"
        )
        assert not clipped
        await page.close()


@pytest.mark.parametrize("language", ["en", "cy"])
async def test_a_number_to_text_opens_a_message_and_a_number_to_call_a_call(
    language: str, browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # Live Fear Free's text line used to open the phone's dialler.
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        page = await browser.new_page()
        await page.goto(url + f"/?lang={language}")
        await expect(page.get_by_role("log")).to_contain_text(
            app[CONTENT].text("welcome.safe_now", language)
        )
        token = await page.evaluate(TOKEN_JS)
        conv = await app[STORE].open_conversation(app[PRIVACY].contact_key("web", token))
        assert conv is not None
        signpost = app[CONTENT].text("victim.signpost", language)
        assert "07860 077333" in signpost and "0808 80 10 800" in signpost
        await engine_of(app).deliver(conv, await app[STORE].save_turn(conv, [], [Reply(signpost)]))
        log = page.get_by_role("log")
        text_line = log.get_by_role("link", name="07860 077333").last
        await expect(text_line).to_have_attribute("href", "sms:07860077333")
        call_line = log.get_by_role("link", name="0808 80 10 800").last
        await expect(call_line).to_have_attribute("href", "tel:08088010800")
        await page.close()


async def test_the_emergency_guidance_stands_apart_with_its_own_label_after_a_reload_too(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # It came as one more "Automated reply" bubble, like the journey's questions.
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        t = lambda key: app[CONTENT].text(key, "en")  # noqa: E731
        page, log = await _phone_chat(browser, url, app)
        await page.get_by_role("textbox", name="Message").fill("he has a knife and he's coming")
        await page.get_by_role("button", name="Send").click()
        first_line = t("risk.immediate").splitlines()[0]
        guidance = log.locator(".message--urgent")
        await expect(guidance).to_contain_text(first_line)
        await expect(guidance.locator(".message__author")).to_have_text(t("web.author_urgent"))
        await expect(guidance.locator(".message__author")).to_be_visible()
        await expect(log.locator(".message--urgent")).to_have_count(1)
        await page.reload()
        await expect(page.locator(".message--urgent")).to_contain_text(first_line)
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


async def test_stop_takes_the_conversation_off_the_screen_and_writing_starts_again(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        t = lambda key: app[CONTENT].text(key, "en")  # noqa: E731
        page, log = await _phone_chat(browser, url, app)
        box = page.get_by_role("textbox", name="Message")
        await box.fill("I shouted at my partner again")
        await page.get_by_role("button", name="Send").click()
        await box.fill("stop")
        await page.get_by_role("button", name="Send").click()

        # Only the goodbye is left: someone picking up the phone sees nothing they wrote.
        await expect(log).to_contain_text(t("stop.done"))
        await expect(log).not_to_contain_text("I shouted at my partner")
        await expect(log).not_to_contain_text(t("welcome.safe_now"))
        assert await page.evaluate(TOKEN_JS) is None
        await expect(page.get_by_role("button", name=t("web.new_chat"))).to_be_visible()

        # "If you want to talk again, just send a message": the box is there and does that.
        await box.fill("can I talk again")
        await page.get_by_role("button", name="Send").click()
        await expect(log).to_contain_text(t("welcome.safe_now"))
        await expect(log).to_contain_text("can I talk again")
        await page.close()


async def test_deleting_my_data_takes_it_off_the_screen_too(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        t = lambda key: app[CONTENT].text(key, "en")  # noqa: E731
        page, log = await _phone_chat(browser, url, app)
        token = await page.evaluate(TOKEN_JS)
        assert token
        box = page.get_by_role("textbox", name="Message")
        await box.fill("delete my data")
        await page.get_by_role("button", name="Send").click()
        await page.get_by_role("button", name=t("erase.opt_yes")).click()
        done = t("erase.done").split("{")[0]
        await expect(log).to_contain_text(done)
        await expect(log).not_to_contain_text("delete my data")
        await expect(log).not_to_contain_text(t("welcome.safe_now"))
        await expect(log).to_contain_text(done)
        await expect(page.get_by_role("status")).not_to_have_text(t("web.status_connected"))
        assert await page.evaluate(TOKEN_JS) is None
        await expect(page.get_by_role("button", name=t("web.new_chat"))).to_be_visible()
        await page.close()


async def test_an_idle_close_leaves_the_chat_to_reread_and_the_box_to_start_again(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # The wall clock: the chat is opened now, and idleness is measured from then.
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, serve=True, clock=utcnow) as (app, _, url):
        t = lambda key: app[CONTENT].text(key, "en")  # noqa: E731
        page, log = await _phone_chat(browser, url, app)
        # Everything counts as quiet with a zero idle time.
        await eventually(lambda: app[ENGINE].close_idle(timedelta(0)))
        await expect(log).to_contain_text(t("idle.closed"))
        await expect(log).to_contain_text(t("welcome.safe_now"))
        box = page.get_by_role("textbox", name="Message")
        await expect(box).to_be_visible()
        await box.fill("I'm back")
        await page.get_by_role("button", name="Send").click()
        await expect(log).not_to_contain_text(t("idle.closed"))
        await expect(log).to_contain_text(t("welcome.safe_now"))
        await expect(log).to_contain_text("I'm back")
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


async def test_too_many_new_chats_from_one_network_leaves_the_notice_and_999_on_screen(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # Thirty new chats in ten minutes from one address (a shared Wi-Fi, say): the next page
    # is told to wait, with the 999 line. It used to be replaced at once by "Reconnecting…",
    # and every retry counted against the same limit.
    import aiohttp

    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        notice = app[CONTENT].text("web.error_slow_down", "en")
        async with aiohttp.ClientSession() as http:
            for _ in range(30):
                async with http.ws_connect(f"{url}/chat/ws") as ws:
                    await ws.send_json({"type": "hello", "token": None, "lang": "en"})
                    assert (await ws.receive_json(timeout=10))["type"] == "session"
            async with http.ws_connect(f"{url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": None, "lang": "en"})
                assert (await ws.receive_json(timeout=10))["type"] == "error"
                closed = await ws.receive(timeout=10)
                assert closed.data == 4429, "a close code of its own, for the page to know"
        page = await browser.new_page()
        await page.goto(url + "/")
        status = page.get_by_role("status")
        await expect(status).to_have_text(notice)
        await page.wait_for_timeout(3000)  # the old page had retried twice by now
        await expect(status).to_have_text(notice)
        await page.close()


async def test_a_message_sent_into_a_connection_that_died_silently_is_sent_again(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # A connection that dies without closing (a phone changing network, a frozen proxy)
    # looked open for minutes: the message sat there, "Connected", never read.
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        t = lambda key: app[CONTENT].text(key, "en")  # noqa: E731
        proxy = LoopbackProxy(int(url.rsplit(":", 1)[1]))
        port = await proxy.start()
        try:
            page, log = await _phone_chat(browser, f"http://127.0.0.1:{port}", app)
            proxy.frozen = True
            box = page.get_by_role("textbox", name="Message")
            await box.fill("1")
            await page.get_by_role("button", name="Send").click()
            await page.wait_for_timeout(1000)
            proxy.frozen = False  # the network is back; the old connection is still dead
            await expect(log).to_contain_text(t("welcome.who"), timeout=20_000)
            await page.close()
        finally:
            proxy.close()


async def _inbound_texts(app: Any, token: str) -> list[str]:
    """What the service stored from the person, in order."""
    from helpline.app import PRIVACY, STORE
    from helpline.domain import Direction

    conv = await app[STORE].open_conversation(app[PRIVACY].contact_key("web", token))
    if conv is None:
        return []
    return [m.text for m in await app[STORE].transcript(conv.id) if m.direction == Direction.IN]


async def test_a_long_pasted_story_reaches_the_service_whole_and_the_person_is_told(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # A story pasted into the box used to be cut at 2,000 characters, mid-word, without a word.
    from channels.webchat import MAX_TEXT

    story = ("He shouted at me again last night and I pushed him. " * 200)[: MAX_TEXT + 400]
    story += " THE END OF MY STORY"
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        t = lambda key, lang="en": app[CONTENT].text(key, lang)  # noqa: E731
        page, log = await _phone_chat(browser, url, app)
        box = page.get_by_role("textbox", name="Message")
        await box.focus()
        await page.keyboard.insert_text(story)  # as a paste arrives
        await expect(box).to_have_value(story)
        await expect(box).to_have_accessible_description(t("web.long_will_split"))
        await page.get_by_role("button", name="Send").click()
        await expect(page.locator("#length-note")).to_have_text(t("web.long_sent"))
        await expect(log).to_contain_text("THE END OF MY STORY")

        token = await page.evaluate(TOKEN_JS)

        async def whole_story_stored() -> list[str] | None:
            texts = await _inbound_texts(app, token)
            return texts if " ".join("".join(texts).split()) == " ".join(story.split()) else None

        parts = await eventually(whole_story_stored)
        assert len(parts) == 2 and all(len(p) <= MAX_TEXT for p in parts)
        await page.close()

        # On the Welsh page the notice is in Welsh.
        page = await browser.new_page(viewport={"width": 360, "height": 640})
        await page.goto(url + "/?lang=cy")
        box = page.get_by_role("textbox", name=t("web.message_label", "cy"))
        await box.focus()
        await page.keyboard.insert_text(story)
        await expect(box).to_have_accessible_description(t("web.long_will_split", "cy"))
        await page.close()


async def test_a_very_long_paste_keeps_what_was_not_sent_yet_in_the_box(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # Five pieces at most go at once (the server takes 20 messages a minute): the rest waits.
    from channels.webchat import MAX_TEXT
    from helpline.engine import SEALED_TEXT

    story = "word " * (MAX_TEXT * 6 // 5) + "LAST"  # six pieces' worth
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        t = lambda key: app[CONTENT].text(key, "en")  # noqa: E731
        page, _log = await _phone_chat(browser, url, app)
        box = page.get_by_role("textbox", name="Message")
        await box.focus()
        await page.keyboard.insert_text(story)
        await page.get_by_role("button", name="Send").click()
        await expect(box).to_have_accessible_description(t("web.long_rest_kept"))
        token = await page.evaluate(TOKEN_JS)

        async def five_stored_and_handled() -> list[str] | None:
            # A piece that arrives while earlier ones wait is stored sealed (it might answer a
            # question whose answer is not kept) and opened once the journey has handled it.
            texts = await _inbound_texts(app, token)
            handled = not any(text.startswith(SEALED_TEXT) for text in texts)
            return texts if len(texts) == 5 and handled else None

        sent = await eventually(five_stored_and_handled)
        assert "".join(sent) + await box.input_value() == story
        await page.close()


SCROLL_AND_NEWEST = """() => {
  const msgs = document.querySelectorAll('#messages .message');
  const last = msgs[msgs.length - 1].getBoundingClientRect();
  const composer = document.getElementById('composer').getBoundingClientRect();
  return [Math.round(document.scrollingElement.scrollTop), last.bottom <= composer.top + 0.5];
}"""


async def test_tabbing_to_exit_this_page_leaves_the_newest_question_in_view(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # The scroll padding that keeps focus clear of the sticky top bar also applied to the
    # bar's own controls: one Tab scrolled the chat 176px and hid the newest question.
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        t = lambda key: app[CONTENT].text(key, "en")  # noqa: E731
        page = await browser.new_page(viewport={"width": 360, "height": 640})
        await page.goto(url + "/")
        await expect(page.get_by_role("button", name=t("welcome.opt_safe"))).to_be_visible()
        await page.wait_for_function(NEWEST_CLEAR_OF_COMPOSER, timeout=3000)
        before = await page.evaluate(SCROLL_AND_NEWEST)
        assert before[0] > 0, "the page must be scrolled for this test to mean anything"
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("button", name="Exit this page")).to_be_focused()
        # Focus scrolls at once (the page never scrolls smoothly), so this is the end state.
        assert await page.evaluate(SCROLL_AND_NEWEST) == before
        await page.close()


async def test_a_keyboard_user_skips_straight_to_the_message_box(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        t = lambda key, lang="en": app[CONTENT].text(key, lang)  # noqa: E731
        page, _log = await _phone_chat(browser, url, app)
        skip = page.get_by_role("link", name="Skip to message")
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("button", name="Exit this page")).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(skip).to_be_focused()
        box = await skip.bounding_box()
        assert box and box["width"] > 40 and box["height"] > 20, "seen when focused"
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("textbox", name="Message")).to_be_focused()
        assert "#" not in page.url, "no history entry for Back to return to"
        await page.close()

        # The Welsh page has it in Welsh, second in keyboard order too.
        page = await browser.new_page(viewport={"width": 360, "height": 640})
        await page.goto(url + "/?lang=cy")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("link", name=t("web.skip_to_message", "cy"))).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("textbox", name=t("web.message_label", "cy"))).to_be_focused()
        await page.close()


# Chromium's local-network-access checks would stop a page on "localhost" framing the chat on
# 127.0.0.1; both are loopback here, standing in for an operator's site and the helpline.
LOOPBACK_CROSS_ORIGIN = (
    "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,"
    "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecksWebSockets"
)

DEEP_FOCUS = """() => {
  let e = document.activeElement;
  while (e && e.shadowRoot && e.shadowRoot.activeElement) e = e.shadowRoot.activeElement;
  return e ? (e.tagName + ' ' + (e.textContent || '').trim()).trim() : '';
}"""


@asynccontextmanager
async def operator_site_with_widget(
    browser: Browser, sqlite_url: str, tmp_path: Path, *, chat_loads: bool = True
) -> AsyncIterator[tuple[Page, Any, str, str]]:
    """An operator's page on another origin (localhost) with the widget open on it, the chat
    (on 127.0.0.1) loaded in its frame, or failing to load: the page, the app, the host page's
    and the exit URL."""
    from tests.browser.conftest import ARGS, CHROMIUM

    async with neutral_site() as neutral:
        settings = settings_for(
            sqlite_url, tmp_path, exit_url=neutral, frame_ancestors="'self' http://localhost:*"
        )
        async with running(settings, serve=True) as (app, _, url):
            cross = await browser.browser_type.launch(
                executable_path=str(CHROMIUM), args=[*ARGS, LOOPBACK_CROSS_ORIGIN], headless=True
            )
            try:
                page = await cross.new_page(viewport={"width": 1000, "height": 700})
                host = neutral.replace("127.0.0.1", "localhost") + "operator"
                html = (
                    "<!doctype html><title>Operator</title><h1>Operator site</h1>"
                    '<a href="#a">host link 1</a> <a href="#b">host link 2</a>'
                    f'<script src="{url}/static/widget.js" data-helpline-lang="en" defer></script>'
                    '<a href="#c">host link after the widget</a>'
                )
                await page.route(host, lambda r: r.fulfill(body=html, content_type="text/html"))
                if not chat_loads:
                    await page.route(f"{url}/?embed=1*", lambda r: r.abort())
                await page.goto(neutral + "?before")
                await page.goto(host)
                await page.get_by_role(
                    "button", name=app[CONTENT].text("web.widget_open", "en")
                ).click()
                chat = page.frame_locator("[data-helpline-widget] >> iframe")
                if chat_loads:
                    await expect(chat.get_by_role("log")).to_contain_text(
                        app[CONTENT].text("welcome.safe_now", "en")
                    )
                yield page, app, host, neutral
            finally:
                await cross.close()


async def test_keyboard_focus_stays_in_the_open_widget(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # Tab used to leave the open chat for the operator's page behind it, unseen.
    async with operator_site_with_widget(browser, sqlite_url, tmp_path) as (page, app, _, _n):
        close_name = app[CONTENT].text("web.widget_close", "en")
        await expect(page.get_by_role("dialog")).to_have_attribute("aria-modal", "true")
        assert await page.evaluate(DEEP_FOCUS) == "IFRAME", "focus goes into the chat"

        seen = []
        for _ in range(30):  # more than every control in the chat: round at least once
            await page.keyboard.press("Tab")
            seen.append(await page.evaluate(DEEP_FOCUS))
        assert f"BUTTON {close_name}" in seen, seen
        assert all(f in ("IFRAME", f"BUTTON {close_name}") for f in seen), seen

        # From the close button, both ways lead into the chat, not to the page behind.
        close = page.get_by_role("button", name=close_name)
        for key in ("Tab", "Shift+Tab"):
            await close.focus()
            await page.keyboard.press(key)
            assert await page.evaluate(DEEP_FOCUS) == "IFRAME", key

        # A click on the page behind brings focus back to the widget too.
        await page.get_by_role("link", name="host link 1").click()
        assert await page.evaluate(DEEP_FOCUS) == f"BUTTON {close_name}"

        # Closed, the widget lets focus go where it will.
        await close.click()
        await page.get_by_role("link", name="host link 1").focus()
        assert await page.evaluate(DEEP_FOCUS) == "A host link 1"


async def _escape_on_the_widget_leaves(page: Page, app: Any, host: str, neutral: str) -> None:
    """Escape on the widget's own bar: the host page is replaced by the neutral site, with no
    way Back to the chat."""
    await page.get_by_role("button", name=app[CONTENT].text("web.widget_close", "en")).focus()
    await page.keyboard.press("Escape")
    await expect(page).to_have_url(neutral)  # (a second navigation may abort the first)
    await expect(page.locator("body")).to_contain_text("Sunny spells")
    await page.go_back()
    assert page.url != host, "Back does not return to the operator's page with the chat"


async def test_escape_on_the_widgets_close_button_is_the_quick_exit_too(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # Escape leaves from inside the chat; on the widget's own bar it used to do nothing.
    async with operator_site_with_widget(browser, sqlite_url, tmp_path) as (
        page,
        app,
        host,
        neutral,
    ):
        await _escape_on_the_widget_leaves(page, app, host, neutral)


async def test_escape_on_the_widget_leaves_for_the_neutral_site_when_the_chat_cannot_answer(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # The chat in the frame cannot answer the widget (it failed to load, say): the widget's own
    # fallback used to leave for a blank page, which looks like exactly what it is.
    async with operator_site_with_widget(browser, sqlite_url, tmp_path, chat_loads=False) as (
        page,
        app,
        host,
        neutral,
    ):
        await _escape_on_the_widget_leaves(page, app, host, neutral)


async def test_the_quick_exit_tells_the_service_so_an_adviser_knows_the_person_has_gone(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with neutral_site() as neutral:
        settings = settings_for(sqlite_url, tmp_path, exit_url=neutral)
        async with running(settings, serve=True) as (app, _, url):
            page, log = await _phone_chat(browser, url, app)
            await page.get_by_role("textbox", name="Message").fill("adviser")
            await page.get_by_role("button", name="Send").click()
            token = await page.evaluate(TOKEN_JS)
            key = app[PRIVACY].contact_key("web", token)

            async def waiting() -> Any:
                found = await app[STORE].open_conversation(key)
                return found if found is not None and found.owner.value == "queue" else None

            conv = await eventually(waiting)
            await page.get_by_role("button", name="Exit this page").click()
            await page.wait_for_url(neutral)

            line = app[CONTENT].text("event.quick_exit", "en")

            async def told() -> bool:
                return line in [m.text for m in await app[STORE].transcript(conv.id)]

            await eventually(told)
            await page.close()
