"""Error pages for people: a page that is not there, too many requests or a fault answers a
browser with a calm page in English and Welsh, with the chat page's quick exit and the 999
line, not aiohttp's bare "404: Not Found". Machines (the console's API, webhooks, the chat's
socket) keep their own answers."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from aiohttp import web

from helpline.app import CONTENT, HEALTH_PATHS, SETTINGS
from helpline.content import fill_page

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
SHOWN = {404: "web.error_not_found", 405: "web.error_not_found", 429: "web.error_busy"}
BROKEN = "web.error_broken"
# Answered for programs, not people: left as they are.
NOT_PAGES = (
    *("/console/api/", "/console/ws", "/console/login", "/console/logout"),
    *("/channels/", "/chat/", *HEALTH_PATHS),
)
# The chat page's quick-exit control, taken from chat.html so that there is one of it.
_EXIT_CONTROL = re.compile(r"<a\b[^>]*\bdata-helpline-exit\b.*?</a>", re.DOTALL)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _for_a_person(request: web.Request) -> bool:
    if "text/html" not in request.headers.get("Accept", ""):
        return False
    path = request.path
    return not any(path == p.rstrip("/") or path.startswith(p) for p in NOT_PAGES)


def _language(request: web.Request) -> str:
    if request.query.get("lang") == "cy":
        return "cy"
    return "cy" if request.headers.get("Accept-Language", "").lower().startswith("cy") else "en"


class ErrorPages:
    """The middleware, with each page rendered once per status and language."""

    def __init__(self) -> None:
        chat = (STATIC / "chat.html").read_text(encoding="utf-8")
        found = _EXIT_CONTROL.search(chat)
        if found is None:
            raise RuntimeError("chat.html has no quick-exit control for the error pages")
        template = (STATIC / "error.html").read_text(encoding="utf-8")
        self._template = template.replace("{{exit_control}}", found.group(0))
        self._pages: dict[tuple[int, str], str] = {}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as error:
            if error.status not in SHOWN or not _for_a_person(request):
                raise
            return self._page(request, error.status, error.headers)
        except Exception:
            if not _for_a_person(request):
                raise
            log.exception("a page failed")
            return self._page(request, 500, None)

    def _page(
        self, request: web.Request, status: int, headers: Mapping[str, str] | None
    ) -> web.Response:
        lang = _language(request)
        body = self._pages.get((status, lang))
        if body is None:
            body = self._render(request.app, status, lang)
            self._pages[(status, lang)] = body
        response = web.Response(text=body, status=status, content_type="text/html")
        for name in ("Allow", "Retry-After"):
            if headers is not None and name in headers:
                response.headers[name] = headers[name]
        return response

    def _render(self, app: web.Application, status: int, lang: str) -> str:
        content = app[CONTENT]
        other = "en" if lang == "cy" else "cy"
        title = SHOWN.get(status, BROKEN)
        values = {
            "lang": lang,
            "other_lang": other,
            "exit_url": app[SETTINGS].exit_url,
            "error_title": content.text(title, lang),
            "other.error_title": content.text(title, other),
        }

        def words(key: str) -> str:
            if key in values:
                return values[key]
            if key.startswith("other."):
                return content.text(key.removeprefix("other."), other)
            return content.text(key, lang)

        return fill_page(self._template, words)


def setup(app: web.Application) -> None:
    app.middlewares.append(ErrorPages().middleware)
