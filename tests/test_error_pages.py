"""Error pages: a person's browser gets a calm page in both languages with the quick exit;
programs (webhooks, the console's API) keep their own answers."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from helpline.app import CONTENT
from tests.support import running, settings_for

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


async def test_a_missing_page_has_the_quick_exit_the_999_line_and_both_languages(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        content = app[CONTENT]
        async with aiohttp.ClientSession() as http, http.get(f"{url}/nope", headers=HTML) as r:
            body = await r.text()
            assert r.status == 404
            assert r.content_type == "text/html"
            assert "unsafe-inline" not in r.headers["Content-Security-Policy"]
        assert 'id="exit-this-page"' in body and "data-helpline-exit" in body
        assert '<script src="/static/exit.js"' in body
        assert app[CONTENT].text("web.exit_button", "en") in body.replace("&#x27;", "'")
        for lang in ("en", "cy"):
            shown = body.replace("&#x27;", "'").replace("&quot;", '"')
            assert content.text("web.error_not_found", lang) in shown
            assert content.text("web.safety_note", lang) in shown
            assert content.text("web.exit_tip", lang) in shown  # how to leave, in both
            assert f'href="/?lang={lang}"' in body
        assert "{{" not in body and "404: Not Found" not in body


async def test_a_welsh_browser_gets_the_welsh_first_and_a_welsh_quick_exit(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        headers = {**HTML, "Accept-Language": "cy-GB,cy;q=0.9,en;q=0.5"}
        async with aiohttp.ClientSession() as http, http.get(f"{url}/nope", headers=headers) as r:
            body = (await r.text()).replace("&#x27;", "'")
            assert r.status == 404
        assert '<html lang="cy">' in body
        assert app[CONTENT].text("web.exit_button", "cy") in body


async def test_programs_keep_their_own_error_answers(sqlite_url: str, tmp_path: Path) -> None:
    settings = settings_for(
        sqlite_url,
        tmp_path,
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token="t" * 32,
        twilio_from="+447700900000",
        public_url="https://helpline.example",
    )
    async with running(settings, serve=True) as (_app, _, url), aiohttp.ClientSession() as http:
        # A webhook opened in a browser: still the plain 405, and an unknown one the plain 404.
        async with http.get(f"{url}/channels/twilio/sms", headers=HTML) as r:
            assert r.status == 405
            assert await r.text() == "405: Method Not Allowed"
        async with http.post(f"{url}/channels/nope", headers=HTML) as r:
            assert r.status == 404
            assert await r.text() == "404: Not Found"
        async with http.get(f"{url}/console/api/nope", headers=HTML) as r:
            assert r.status == 404
            assert "data-helpline-exit" not in await r.text()
        # Not asked for as a page (a script, a fetch): unchanged too.
        async with http.get(f"{url}/nope", headers={"Accept": "application/json"}) as r:
            assert r.status == 404
            assert await r.text() == "404: Not Found"
