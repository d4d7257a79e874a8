"""WhatsApp's 24 hours in the adviser's console (chromium through Playwright): a reply
WhatsApp refuses shows, beside it, that the person must write first; it goes, and the mark
with it, when they do."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from helpline.app import CONTENT
from tests.browser.test_console_browser import _log_in, _say
from tests.console_support import PLUGINS, add_staff
from tests.loopback import loopback
from tests.support import running
from tests.test_twilio import ACCOUNT, TOKEN, WHATSAPP, Env, twilio_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.browser
async def test_a_reply_whatsapp_refuses_shows_the_person_must_write_first_until_they_do(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    async with loopback(ACCOUNT, TOKEN) as lb:
        settings = twilio_settings(sqlite_url, tmp_path, lb.url)
        async with (
            running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url),
            aiohttp.ClientSession() as http,
        ):
            person = Env(app, url, settings, lb, http)
            content = app[CONTENT]
            await add_staff(app, "alice")
            await person.say("hello", WHATSAPP)
            await person.say("talk to someone", WHATSAPP)

            adviser = await _log_in(browser, url, "alice")
            claim = adviser.get_by_role("button", name="Claim", exact=True)
            await expect(claim).to_have_count(1)
            await claim.click()
            transcript = adviser.get_by_role("log", name="Transcript")
            await expect(
                transcript.get_by_text(content.text("handoff.joined", "en"))
            ).to_be_visible()

            lb.fail_twilio(63016)  # more than 24 hours since they wrote
            await _say(adviser, "Hello, I'm Alice. I've read your message.")
            mark = content.text("console.unreachable", "en")
            await expect(transcript.get_by_text(mark)).to_have_count(1)
            await expect(adviser.get_by_role("status")).to_have_text(mark)

            await person.say("hi, I'm here", WHATSAPP)
            assert lb.sms_bodies(WHATSAPP)[-1] == "Hello, I'm Alice. I've read your message."
            await expect(transcript.get_by_text(mark)).to_have_count(0)
            await expect(adviser.get_by_role("status")).to_have_text(
                content.text("console.reached", "en")
            )
