"""What an adviser, a supervisor and programme staff see and do in the console, in Debian's
chromium through Playwright: keys that must not lose a reply, what is announced, and the
steps that cannot be undone asking first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Dialog, Page, expect

from handoff import callbacks, referrals, safeguarding
from helpline.app import HUB, STORE
from helpline.domain import InboundMessage
from tests.console_support import PASSWORD, console_service, person_asks_for_adviser
from tests.support import engine_of

# One browser for the whole run (tests/browser/conftest.py): its tests share its event loop.
pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@asynccontextmanager
async def _served(
    sqlite_url: str, tmp_path: Path, *staff: tuple[str, ...]
) -> AsyncIterator[tuple[Any, str]]:
    async with console_service(sqlite_url, tmp_path, *staff) as (app, _fake, url):
        yield app, url


async def _log_in(browser: Browser, url: str, name: str) -> Page:
    page = await (await browser.new_context()).new_page()
    await page.goto(url + "/console")
    await page.get_by_label("Username", exact=True).fill(name)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Log in", exact=True).click()
    await expect(page.get_by_role("button", name="Log out", exact=True)).to_be_visible()
    return page


async def _claim_first(page: Page) -> str:
    await page.get_by_role("button", name="Claim", exact=True).first.click()
    await expect(page.get_by_role("textbox", name="Message", exact=True)).to_be_visible()
    return await page.locator("#conversation-reference").inner_text()


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (up to 10 seconds) until the condition holds."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.05)


class _Dialogs:
    """Every dialog the page opens, answered yes (`accept`) or no; their words kept."""

    def __init__(self, page: Page, accept: bool) -> None:
        self.seen: list[str] = []
        self.accept = accept
        page.on("dialog", self._answer)

    async def _answer(self, dialog: Dialog) -> None:
        self.seen.append(dialog.message)
        await (dialog.accept() if self.accept else dialog.dismiss())


async def test_escape_in_the_console_keeps_the_adviser_and_their_reply_on_the_page(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, ("alice",)) as (app, url):
        await person_asks_for_adviser(app, "+447700900901")
        page = await _log_in(browser, url, "alice")
        reference = await _claim_first(page)
        message = page.get_by_role("textbox", name="Message", exact=True)
        await message.fill("I hear you. Can you tell me whether you have ")
        await message.press("Escape")
        await page.keyboard.press("Escape")
        await expect(message).to_have_value("I hear you. Can you tell me whether you have ")
        assert page.url.startswith(url + "/console")
        # Staff keep a visible way out, without the key.
        await expect(page.get_by_role("button", name="Exit this page")).to_be_visible()
        # A reload (or leaving and coming back in this tab) keeps the draft too.
        await page.reload()
        await expect(page.locator("#conversation-reference")).to_have_text(reference)
        await expect(message).to_have_value("I hear you. Can you tell me whether you have ")
        # Sent: the draft is gone, from the box and from the tab's storage.
        await message.fill("I hear you.")
        await page.get_by_role("button", name="Send", exact=True).click()
        await expect(message).to_have_value("")
        await page.reload()
        await expect(page.locator("#conversation-reference")).to_have_text(reference)
        await expect(message).to_have_value("")


async def test_logging_out_leaves_no_draft_in_the_tab(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, ("alice",), ("bob",)) as (app, url):
        await person_asks_for_adviser(app, "+447700900902")
        page = await _log_in(browser, url, "alice")
        await _claim_first(page)
        await page.get_by_role("textbox", name="Message", exact=True).fill("for alice only")
        await page.get_by_role("button", name="Log out", exact=True).click()
        await expect(page.get_by_label("Username", exact=True)).to_be_visible()
        assert await page.evaluate("() => [localStorage.length, sessionStorage.length]") == [0, 0]


async def test_a_waiting_persons_raised_risk_is_announced_and_none_found_never_is(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, ("alice",)) as (app, url):
        page = await _log_in(browser, url, "alice")
        await expect(page.locator("#waiting")).to_contain_text("No one is waiting")
        await page.clock.install()
        status = page.get_by_role("status").first
        await person_asks_for_adviser(app, "+447700900903")
        await expect(status).to_have_text("Someone new is waiting.")
        reference = await page.locator("#waiting strong").first.inner_text()
        await engine_of(app).handle(
            InboundMessage("test", "+447700900903", "I am going to kill her tonight")
        )
        await expect(status).to_have_text(f"Now marked: Immediate danger — {reference}")
        # The line does not stay for good.
        await page.clock.run_for(61_000)
        await expect(status).to_have_text("")


async def test_a_supervisor_can_release_or_transfer_another_advisers_conversation(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, ("alice",), ("sam", "supervisor")) as (app, url):
        await person_asks_for_adviser(app, "+447700900904")
        alice = await _log_in(browser, url, "alice")
        await _claim_first(alice)
        sam = await _log_in(browser, url, "sam")
        await sam.locator("#claimed").get_by_role("button", name="Join read-only").click()
        await expect(sam.locator("#read-only")).to_be_visible()
        await expect(sam.get_by_role("button", name="Release", exact=True)).to_be_visible()
        await expect(sam.get_by_role("button", name="Transfer", exact=True)).to_be_visible()
        await expect(sam.get_by_role("button", name="Send", exact=True)).to_be_hidden()
        await expect(sam.get_by_role("button", name="End", exact=True)).to_be_hidden()
        asked = _Dialogs(sam, accept=True)
        await sam.get_by_role("button", name="Release", exact=True).click()
        await expect(sam.get_by_role("status").first).to_have_text(
            "Conversation released to the queue."
        )
        assert len(asked.seen) == 1
        await expect(sam.locator("#waiting").get_by_role("button", name="Claim")).to_have_count(1)


async def test_end_needs_an_outcome_chosen_and_a_yes(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, ("alice",)) as (app, url):
        await person_asks_for_adviser(app, "+447700900905")
        page = await _log_in(browser, url, "alice")
        reference = await _claim_first(page)
        outcome = page.get_by_label("Outcome", exact=True)
        await expect(outcome).to_have_value("")
        end = page.get_by_role("button", name="End", exact=True)
        asked = _Dialogs(page, accept=False)
        await end.click()
        await expect(page.get_by_role("alert")).to_have_text(
            "Choose an outcome before you end the conversation."
        )
        await expect(outcome).to_be_focused()
        assert asked.seen == []
        await outcome.select_option("signposted")
        await end.click()
        await _until(lambda: len(asked.seen) == 1)
        assert reference in asked.seen[0] and "Signposted" in asked.seen[0]
        await expect(page.locator("#conversation")).to_be_visible()
        asked.accept = True
        await end.click()
        await expect(page.locator("#conversation")).to_be_hidden()
        await expect(page.get_by_role("status").first).to_have_text("Conversation ended.")
        assert len(asked.seen) == 2


async def test_release_and_transfer_ask_first(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, ("alice",), ("bob",)) as (app, url):
        await person_asks_for_adviser(app, "+447700900906")
        page = await _log_in(browser, url, "alice")
        reference = await _claim_first(page)
        asked = _Dialogs(page, accept=False)
        await page.get_by_role("button", name="Release", exact=True).click()
        await page.get_by_role("button", name="Transfer", exact=True).click()
        await _until(lambda: len(asked.seen) == 2)
        assert all(reference in words for words in asked.seen)
        await expect(page.locator("#conversation")).to_be_visible()
        await expect(page.locator("#claimed")).to_contain_text(reference)


async def test_declining_a_referral_and_a_call_back_done_ask_first(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, ("alice",), ("pat", "programme", "north")) as (
        app,
        url,
    ):
        referred = await person_asks_for_adviser(app, "+447700900907", queue="programme:north")
        await referrals.create_referral(app[STORE], referred, "north", {"area": "Cardiff"})
        pat = await _log_in(browser, url, "pat")
        asked = _Dialogs(pat, accept=False)
        item = pat.locator("#referral-list > li").filter(has_text="Cardiff")
        await item.get_by_role("button", name="Declined", exact=True).click()
        await _until(lambda: len(asked.seen) == 1)
        await expect(item.get_by_role("button", name="Accepted", exact=True)).to_be_visible()

        wants_call = await person_asks_for_adviser(app, "+447700900908")
        await callbacks.request_callback(app[STORE], wants_call, "after 6pm")
        alice = await _log_in(browser, url, "alice")
        asked_alice = _Dialogs(alice, accept=False)
        done = alice.locator("#callback-list").get_by_role("button", name="Done", exact=True)
        await done.click()
        await _until(lambda: len(asked_alice.seen) == 1)
        await expect(done).to_be_visible()

        # They leave the chat with the quick exit: the call-back says so at once.
        warning = alice.locator("#callback-list .callback-warning")
        await expect(warning).to_have_count(0)
        await engine_of(app).quick_exit("test", "+447700900908")
        await expect(warning).to_contain_text("left the chat with the quick exit")


async def test_signing_off_without_a_decision_says_what_is_missing(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with _served(sqlite_url, tmp_path, ("sam", "supervisor")) as (app, url):
        conv = await person_asks_for_adviser(app, "+447700900909")
        await safeguarding.raise_concern(app[STORE], app[HUB], conv, "alice", "A child at home")
        sam = await _log_in(browser, url, "sam")
        await sam.get_by_role("button", name="Sign off", exact=True).click()
        await expect(sam.get_by_role("alert")).to_have_text(
            "Write the decision taken before you sign off."
        )
        await expect(sam.get_by_role("textbox", name="Decision taken", exact=True)).to_be_focused()


async def test_the_queue_names_queues_languages_and_answers_in_words_not_codes(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # The console showed "adviser:bob", "Language en", "who: other" and a Python dict for the
    # area (the console review).
    async with _served(sqlite_url, tmp_path, ("alice",), ("bob",)) as (app, url):
        conv_id = await person_asks_for_adviser(app, "+447700900911")
        engine = engine_of(app)
        async with engine.locks.hold(conv_id):
            conv = await app[STORE].conversation(conv_id)
            conv.answers["who"] = "other"
            conv.answers["area"] = {"force": "gwent", "la": "Newport", "nation": "wales"}
            await app[STORE].save_turn(conv, [], [])
        await person_asks_for_adviser(app, "+447700900912", queue="adviser:bob")
        page = await _log_in(browser, url, "alice")
        queue = page.locator("#waiting")
        await expect(queue).to_contain_text("Who they are: Friend or family")
        await expect(queue).to_contain_text("Area: Newport, gwent, wales")
        await expect(queue).to_contain_text("For bob only")
        await expect(queue).to_contain_text("English")
        text = await queue.inner_text()
        for code in ("adviser:bob", "who: other", "{'", "\nen\n"):
            assert code not in text, code
