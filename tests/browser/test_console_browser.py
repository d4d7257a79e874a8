"""A person in web chat and an adviser in the console, in two real browsers (Debian's
chromium through Playwright), found by role and label as a screen reader would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from helpline.app import CONTENT
from helpline.domain import InboundMessage
from tests.console_support import PASSWORD, PLUGINS, add_staff, person_asks_for_adviser
from tests.loopback import loopback
from tests.support import engine_of, running, settings_for
from tests.test_twilio import ACCOUNT, PHONE, TOKEN, Env, twilio_settings

# Markup a person might type (on purpose or not); it must reach the adviser as plain text.
MARKUP = '<img src=x onerror="document.title=1"> <b>thanks</b>'

# One browser for the whole run (tests/browser/conftest.py): its tests share its event loop.
pytestmark = pytest.mark.asyncio(loop_scope="session")


@asynccontextmanager
async def _served(
    sqlite_url: str, tmp_path: Path, name: str, role: str = "adviser"
) -> AsyncIterator[tuple[Any, str]]:
    """The service listening on a loopback port, with one member of staff to log in as."""
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, name, role)
        yield app, url


async def _page(browser: Browser) -> Page:
    context = await browser.new_context()
    return await context.new_page()


async def _log_in(browser: Browser, url: str, name: str, page: Page | None = None) -> Page:
    adviser = page or await _page(browser)
    await adviser.goto(url + "/console")
    await adviser.get_by_label("Username", exact=True).fill(name)
    await adviser.get_by_label("Password", exact=True).fill(PASSWORD)
    await adviser.get_by_role("button", name="Log in", exact=True).click()
    return adviser


async def _say(page: Page, text: str) -> None:
    await page.get_by_role("textbox", name="Message", exact=True).fill(text)
    await page.get_by_role("button", name="Send", exact=True).click()


@pytest.mark.browser
async def test_a_person_and_an_adviser_talk_both_ways_until_the_adviser_ends_it(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, "alice") as (app, url):
        content = app[CONTENT]
        person = await _page(browser)
        await person.goto(url + "/")
        await expect(person.get_by_text(content.text("welcome.intro", "en")[:40])).to_be_visible()
        await _say(person, "adviser")

        adviser = await _page(browser)
        await adviser.goto(url + "/console")
        await adviser.get_by_label("Username", exact=True).fill("alice")
        await adviser.get_by_label("Password", exact=True).fill(PASSWORD)
        await adviser.get_by_role("button", name="Log in", exact=True).click()
        # The queue is live: the waiting person is there without a reload.
        claim = adviser.get_by_role("button", name="Claim", exact=True)
        await expect(claim).to_have_count(1)
        await claim.click()

        await _say(adviser, "Hello, I'm Alice. Is it safe to talk?")
        await expect(person.get_by_text("Hello, I'm Alice. Is it safe to talk?")).to_be_visible()

        await _say(person, MARKUP)
        transcript = adviser.get_by_role("log", name="Transcript")
        await expect(transcript.get_by_text(MARKUP, exact=True)).to_be_visible()
        assert await transcript.locator("img").count() == 0
        assert await adviser.title() != "1"

        await adviser.get_by_label("Outcome", exact=True).select_option("signposted")
        adviser.on("dialog", lambda dialog: dialog.accept())  # "End the conversation...?"
        await adviser.get_by_role("button", name="End", exact=True).click()
        ended = content.text("handoff.ended", "en")
        await expect(person.get_by_text(ended[:40])).to_be_visible()
        await expect(adviser.get_by_role("button", name="Claim", exact=True)).to_have_count(0)


@pytest.mark.browser
async def test_the_same_conversation_carried_over_sms_with_the_adviser_in_a_browser(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    """The person texts (webhooks signed with Twilio's RequestValidator); the adviser works in
    the console in chromium; what the adviser types leaves as Twilio API calls."""
    async with loopback(ACCOUNT, TOKEN) as lb:
        settings = twilio_settings(sqlite_url, tmp_path, lb.url)
        async with (
            running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url),
            aiohttp.ClientSession() as http,
        ):
            person = Env(app, url, settings, lb, http)
            await add_staff(app, "alice")
            await person.say("hello")
            await person.say("talk to someone")
            assert any("adviser" in body.lower() for body in lb.sms_bodies(PHONE)[-2:])

            adviser = await _log_in(browser, url, "alice")
            claim = adviser.get_by_role("button", name="Claim", exact=True)
            await expect(claim).to_have_count(1)
            page_text = await adviser.locator("body").inner_text()
            assert PHONE not in page_text and PHONE[3:] not in page_text
            await claim.click()

            await _say(adviser, "Hello, I'm Alice. Is now a good time to text?")
            await eventually_sent(lb, "Hello, I'm Alice. Is now a good time to text?")

            await person.say("yes it's fine, I shouted at my partner last night")
            transcript = adviser.get_by_role("log", name="Transcript")
            await expect(
                transcript.get_by_text("yes it's fine, I shouted at my partner last night")
            ).to_be_visible()

            await adviser.get_by_label("Outcome", exact=True).select_option("signposted")
            adviser.on("dialog", lambda dialog: dialog.accept())
            await adviser.get_by_role("button", name="End", exact=True).click()
            await eventually_sent(lb, app[CONTENT].text("handoff.ended", "en"))
            await expect(adviser.get_by_role("button", name="Claim", exact=True)).to_have_count(0)


async def eventually_sent(lb: Any, text: str, timeout: float = 10.0) -> None:
    """Wait until the loopback Twilio has been asked to send `text` to the person."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if any(text in body for body in lb.sms_bodies(PHONE)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never sent by SMS: {text!r}; sent: {lb.sms_bodies(PHONE)[-3:]}")


@pytest.mark.browser
async def test_the_statistics_and_admin_pages_draw_themselves_without_script_errors(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, "ada", "admin") as (app, url):
        for n in range(6):  # enough contacts for a count to be shown, not suppressed
            from tests.console_support import person_asks_for_adviser

            await person_asks_for_adviser(app, f"+4477009004{n:02d}")
        page = await _log_in(browser, url, "ada")
        await expect(page.locator("#logout")).to_be_visible()  # logged in
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url + "/console/stats")
        # A longer wait than Playwright's 5 s: on a busy CI machine the page takes its time.
        await expect(page.locator("#contacts")).to_have_text("6", timeout=15_000)
        await expect(page.locator("#tables svg").first).to_be_visible(timeout=15_000)
        await page.goto(url + "/console/admin")
        await expect(page.locator("#content-facts dd").first).to_be_visible(timeout=15_000)
        assert errors == []


@pytest.mark.browser
async def test_the_console_reconnects_when_the_session_check_fails_for_a_moment(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # The live connection drops, and the check of the session before reconnecting fails
    # (the database busy or restarting, a 503): the adviser stays logged in and the console
    # reconnects, instead of showing the login form as if the session had ended.
    async with _served(sqlite_url, tmp_path, "alice") as (app, url):
        adviser = await _page(browser)
        sockets: list[Any] = []

        def through(ws: Any) -> None:
            ws.connect_to_server()
            sockets.append(ws)

        await adviser.route_web_socket("**/console/ws", through)
        await _log_in(browser, url, "alice", adviser)
        await expect(adviser.locator("#logout")).to_be_visible()
        for _ in range(100):
            if sockets:
                break
            await asyncio.sleep(0.05)
        await adviser.route(
            "**/console/api/me", lambda route: route.fulfill(status=503, body="unavailable")
        )
        await sockets[0].close(code=1013, reason="try again")
        for _ in range(200):  # the console waits a second before reconnecting
            if len(sockets) > 1:
                break
            await asyncio.sleep(0.05)
        assert len(sockets) > 1, "the console did not reconnect"
        await expect(adviser.locator("#logout")).to_be_visible()
        await expect(adviser.locator("#login")).to_be_hidden()


@pytest.mark.browser
async def test_a_console_opened_while_the_service_is_not_answering_waits_and_stays_logged_in(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # An adviser with a live session opens the console while the session check cannot be
    # answered (the network drops the request, a 503 while the database restarts, a proxy's
    # own page): they are told the service is not answering and the console asks again, then
    # opens logged in. Before, any answer but 200 showed the login form as if the session
    # had ended, and a 200 that was not the console's answer left a blank page.
    async with _served(sqlite_url, tmp_path, "alice") as (app, url):
        adviser = await _log_in(browser, url, "alice")
        await expect(adviser.locator("#logout")).to_be_visible()
        answers: list[str] = []

        async def flaky(route: Any) -> None:
            answers.append("")
            if len(answers) == 1:
                await route.abort()
            elif len(answers) == 2:
                await route.fulfill(status=503, body="unavailable")
            elif len(answers) == 3:
                await route.fulfill(status=200, body="<html>Sign in to the network</html>")
            else:
                await route.continue_()

        await adviser.route("**/console/api/me", flaky)
        await adviser.reload()
        not_answering = app[CONTENT].text("console.status_not_answering", "en")
        await expect(adviser.get_by_role("status")).to_have_text(not_answering)
        await expect(adviser.locator("#login")).to_be_hidden()
        await expect(adviser.locator("#logout")).to_be_visible(timeout=15000)
        await expect(adviser.get_by_role("status")).not_to_have_text(not_answering)
        assert len(answers) >= 4

        # A session that has really ended still gets the login form at once.
        await adviser.unroute("**/console/api/me")
        await adviser.context.clear_cookies()
        await adviser.reload()
        await expect(adviser.get_by_label("Username", exact=True)).to_be_visible()


@pytest.mark.browser
async def test_the_console_shows_what_was_said_while_it_opened_a_conversation_or_reconnected(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # The transcript is fetched, then watched live: what the person says in between, and
    # while the console's connection is down (every rolling restart), must still be shown.
    address = "+447700900777"
    async with _served(sqlite_url, tmp_path, "alice") as (app, url):
        engine = engine_of(app)
        await person_asks_for_adviser(app, address)
        adviser = await _page(browser)
        sockets: list[Any] = []

        def through(ws: Any) -> None:
            ws.connect_to_server()
            sockets.append(ws)

        async def claim_then_the_person_speaks(route: Any) -> None:
            response = await route.fetch()  # the conversation as it was when claimed
            await engine.handle(InboundMessage("test", address, "said while it was opening"))
            await route.fulfill(response=response)

        await adviser.route_web_socket("**/console/ws", through)
        await adviser.route("**/console/api/conversations/*/claim", claim_then_the_person_speaks)
        await _log_in(browser, url, "alice", adviser)
        claim = adviser.get_by_role("button", name="Claim", exact=True)
        await expect(claim).to_have_count(1)
        await claim.click()
        transcript = adviser.get_by_role("log", name="Transcript")
        await expect(transcript.get_by_text("said while it was opening")).to_be_visible()

        # Before reconnecting (a second later) the console asks whether its session is still
        # alive: held until the person has spoken, however long their turn takes.
        said = asyncio.Event()

        async def once_said(route: Any) -> None:
            await said.wait()
            await route.fallback()

        await adviser.route("**/console/api/me", once_said)
        await sockets[-1].close(code=1001, reason="restarting")
        await engine.handle(InboundMessage("test", address, "said while it reconnected"))
        assert len(sockets) == 1, "said while the console was away"
        said.set()
        await expect(transcript.get_by_text("said while it reconnected")).to_be_visible(
            timeout=15_000
        )
        # Once each, in the order said.
        texts = await transcript.locator(".message .text").all_inner_texts()
        assert texts.count("said while it was opening") == 1
        assert texts[-2:] == ["said while it was opening", "said while it reconnected"]


@pytest.mark.browser
async def test_programme_staff_cannot_mark_a_withdrawn_or_declined_referral_again(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # Only the person's own consent sends them to a programme: once withdrawn (they left the
    # queue) or declined, a referral offers no buttons to bring it back.
    from handoff import referrals
    from helpline.app import STORE
    from tests.console_support import person_asks_for_adviser

    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "pat", "programme", "north")
        left = await person_asks_for_adviser(app, "+447700900501", queue="programme:north")
        gone = await referrals.create_referral(app[STORE], left, "north", {"area": "Newport"})
        stayed = await person_asks_for_adviser(app, "+447700900502", queue="programme:north")
        kept = await referrals.create_referral(app[STORE], stayed, "north", {"area": "Cardiff"})
        await engine_of(app).handle(InboundMessage("test", "+447700900501", "cancel"))
        page = await _log_in(browser, url, "pat")
        items = page.locator("#referral-list > li")
        await expect(items).to_have_count(2, timeout=15_000)
        withdrawn = items.filter(has_text=gone)
        new = items.filter(has_text=kept)
        await expect(withdrawn).to_have_count(1)
        await expect(withdrawn.get_by_role("button")).to_have_count(0)
        # What they shared went with their consent: their area is no longer on screen.
        await expect(withdrawn).not_to_contain_text("Newport")
        await expect(new).to_contain_text("Cardiff")
        await expect(new.get_by_role("button", name="Accepted", exact=True)).to_be_visible()
        page.on("dialog", lambda dialog: dialog.accept())  # declined is final: asked first
        await new.get_by_role("button", name="Declined", exact=True).click()
        await expect(new.get_by_text("Status")).to_be_visible()
        await expect(new.get_by_role("button")).to_have_count(0, timeout=15_000)
        await expect(new).not_to_contain_text("Cardiff")


async def _claim_first(page: Page) -> None:
    await page.get_by_role("button", name="Claim", exact=True).first.click()
    await expect(page.get_by_role("textbox", name="Message", exact=True)).to_be_visible()


@pytest.mark.browser
async def test_a_reply_typed_for_one_person_stays_with_them_and_never_reaches_the_next(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, "alice") as (app, url):
        first = await person_asks_for_adviser(app, "+447700900801")
        await person_asks_for_adviser(app, "+447700900802")
        page = await _log_in(browser, url, "alice")
        await expect(page.get_by_role("button", name="Claim", exact=True)).to_have_count(2)
        await _claim_first(page)
        reference = await page.locator("#conversation-reference").inner_text()
        message = page.get_by_role("textbox", name="Message", exact=True)
        await message.fill("half a reply for the first person")
        await page.get_by_label("Private note", exact=True).fill("a note for the first")
        await page.get_by_role("button", name="Close this panel", exact=True).click()
        await expect(page.locator("#conversation")).to_be_hidden()
        # The first is shown as taken (its button reads "Open") once the queue's live
        # update comes: until then both still read "Claim".
        claim = page.get_by_role("button", name="Claim", exact=True)
        await expect(claim).to_have_count(1)
        await claim.click()
        await expect(page.locator("#conversation-reference")).not_to_have_text(reference)
        await expect(message).to_have_value("")
        await expect(page.locator("#note")).to_have_value("")
        # Back to the first: its draft is there again.
        await page.locator(f'[data-key="c-{first}"]').click()
        await expect(page.locator("#conversation-reference")).to_have_text(reference)
        await expect(message).to_have_value("half a reply for the first person")
        await expect(page.locator("#note")).to_have_value("a note for the first")
        # Kept in this tab only (for a reload), never in storage that outlives it.
        assert await page.evaluate("() => localStorage.length") == 0


@pytest.mark.browser
async def test_when_the_person_stops_the_adviser_is_told_and_can_still_record_the_outcome(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, "alice") as (app, url):
        conversation = await person_asks_for_adviser(app, "+447700900803")
        page = await _log_in(browser, url, "alice")
        await _claim_first(page)
        await engine_of(app).handle(InboundMessage("test", "+447700900803", "stop"))
        await expect(page.get_by_role("status")).to_have_text(
            "The person has ended this chat. You can still record the outcome."
        )
        await expect(page.get_by_role("button", name="Send", exact=True)).to_be_hidden()
        await page.get_by_label("Outcome", exact=True).select_option("signposted")
        page.on("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="End", exact=True).click()
        await expect(page.locator("#conversation")).to_be_hidden()
        await expect(page.get_by_role("alert")).to_have_text("")
        await expect(page.get_by_role("status")).to_have_text("Conversation ended.")
        assert await page.evaluate("document.activeElement.id") == "queue-heading"
        # Recorded and audited, and nothing more said to the person who left.
        from sqlalchemy import select

        from handoff.models import AuditRow
        from helpline.app import STORE
        from helpline.storage.models import HandoffRow

        async with app[STORE].session() as session:
            outcomes = list(await session.scalars(select(HandoffRow.outcome)))
            audited = list(await session.scalars(select(AuditRow.action)))
        assert outcomes == ["signposted"]
        assert "end" in audited
        said = [m.text for m in await app[STORE].transcript(conversation)]
        assert said[-1] == app[CONTENT].text("stop.done", "en")


@pytest.mark.browser
async def test_a_risky_message_raises_the_risk_shown_in_the_open_conversation(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, "alice") as (app, url):
        await person_asks_for_adviser(app, "+447700900804")
        page = await _log_in(browser, url, "alice")
        await _claim_first(page)
        details = page.locator("#conversation-details")
        await expect(details).to_contain_text("None found")
        await engine_of(app).handle(
            InboundMessage("test", "+447700900804", "I am going to kill myself tonight")
        )
        await expect(details).not_to_contain_text("None found")
        await expect(details).not_to_contain_text("suicide_")
        await expect(page.get_by_role("status")).to_contain_text("Risk is now")
        # The message itself is marked, in words.
        risky = page.locator(".message--risky").filter(has_text="kill myself tonight")
        await expect(risky).to_contain_text("Suicide risk")


@pytest.mark.browser
async def test_double_clicks_on_claim_and_send_act_once(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, "alice") as (app, url):
        await person_asks_for_adviser(app, "+447700900805")
        page = await _log_in(browser, url, "alice")
        claim = page.get_by_role("button", name="Claim", exact=True)
        await expect(claim).to_have_count(1)
        await claim.dblclick()
        await expect(page.get_by_role("textbox", name="Message", exact=True)).to_be_visible()
        await page.wait_for_load_state("networkidle")
        await expect(page.get_by_role("alert")).to_have_text("")
        await page.get_by_role("textbox", name="Message", exact=True).fill("Hello once")
        await page.get_by_role("button", name="Send", exact=True).dblclick()
        transcript = page.get_by_role("log", name="Transcript")
        await expect(transcript.get_by_text("Hello once")).to_have_count(1)
        await page.wait_for_load_state("networkidle")
        await expect(transcript.get_by_text("Hello once")).to_have_count(1)


@pytest.mark.browser
async def test_a_new_person_waiting_is_announced_once_naming_no_risk_when_none_was_found(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, "alice") as (app, url):
        page = await _log_in(browser, url, "alice")
        await expect(page.locator("#waiting")).to_be_visible()
        await person_asks_for_adviser(app, "+447700900806")
        await expect(page.get_by_role("status")).to_have_text(
            "Someone new is waiting.", timeout=15_000
        )


@pytest.mark.browser
async def test_a_draft_comes_back_after_the_session_ends_and_the_adviser_logs_in_again(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    from sqlalchemy import delete

    from handoff.models import SessionRow
    from helpline.app import STORE

    async with _served(sqlite_url, tmp_path, "alice") as (app, url):
        await person_asks_for_adviser(app, "+447700900807")
        page = await _log_in(browser, url, "alice")
        await _claim_first(page)
        await page.get_by_role("textbox", name="Message", exact=True).fill("a careful reply")
        async with app[STORE].session() as session, session.begin():
            await session.execute(delete(SessionRow))
        await page.get_by_role("button", name="Send", exact=True).click()
        username = page.get_by_label("Username", exact=True)
        await expect(username).to_be_focused()
        await username.fill("alice")
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_role("button", name="Log in", exact=True).click()
        message = page.get_by_role("textbox", name="Message", exact=True)
        await expect(message).to_have_value("a careful reply")


@pytest.mark.browser
async def test_a_supervisors_half_typed_decision_survives_a_new_concern_and_joins_name_theirs(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, "alice") as (app, url):
        await add_staff(app, "sam", "supervisor")
        await person_asks_for_adviser(app, "+447700900808")
        await engine_of(app).handle(
            InboundMessage("test", "+447700900808", "I am going to kill myself tonight")
        )
        alice = await _log_in(browser, url, "alice")
        sam = await _log_in(browser, url, "sam")
        await _claim_first(alice)
        record = alice.get_by_role("button", name="Record safeguarding concern", exact=True)
        await alice.locator("#concern").fill("A child mentioned at home")
        await record.click()
        await expect(alice.locator("#concern")).to_be_focused()
        decision = sam.get_by_role("textbox", name="Decision taken", exact=True)
        await expect(decision).to_have_count(1)
        await decision.fill("half a decision")
        await alice.locator("#concern").fill("A second concern")
        await record.click()
        await expect(decision).to_have_count(2)
        await expect(decision.first).to_have_value("half a decision")
        await expect(decision.first).to_be_focused()
        # Each "Join read-only" of the urgent list says whose conversation it joins.
        join = sam.locator("#urgent").get_by_role("button", name="Join read-only", exact=True)
        await expect(join).to_have_count(1)
        described = await join.get_attribute("aria-describedby")
        reference = await alice.locator("#conversation-reference").inner_text()
        assert described and await sam.locator(f"#{described}").inner_text() == reference


@pytest.mark.browser
async def test_a_supervisor_watching_is_told_the_chat_ended_not_to_record_an_outcome(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # Only the adviser who held it records the outcome: a supervisor watching read-only is
    # told only that it ended.
    async with _served(sqlite_url, tmp_path, "alice") as (app, url):
        await add_staff(app, "sam", "supervisor")
        await person_asks_for_adviser(app, "+447700900805")
        adviser = await _log_in(browser, url, "alice")
        await _claim_first(adviser)
        supervisor = await _log_in(browser, url, "sam")
        join = supervisor.get_by_role("button", name="Join read-only").first
        await join.click()
        await expect(supervisor.locator("#read-only")).to_be_visible()
        await engine_of(app).handle(InboundMessage("test", "+447700900805", "stop"))
        await expect(supervisor.get_by_role("status")).to_have_text(
            app[CONTENT].text("console.chat_ended", "en")
        )
        await expect(adviser.get_by_role("status")).to_have_text(
            app[CONTENT].text("console.person_ended", "en")
        )
