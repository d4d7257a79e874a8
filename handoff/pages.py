"""The console's pages (console, statistics, admin): one layout with the quick exit and the
language links, each page's own <main>, filled with content words in the page's language."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from helpline.app import CONTENT, SETTINGS

STATIC = Path(__file__).resolve().parent / "static"
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_.]*)\s*\}\}")
LABELS = "labels"  # the placeholder that becomes the page's data-label-* attributes


@dataclass(frozen=True)
class Page:
    path: str  # where it is served: the language links point here
    titles: tuple[str, ...]  # content keys, most specific first
    script: str
    stylesheets: tuple[str, ...] = ()


PAGES = {
    "console": Page("/console", ("console.page_title",), "console.js"),
    "stats": Page(
        "/console/stats", ("stats.page_title", "console.page_title"), "stats.js", ("stats.css",)
    ),
    "admin": Page(
        "/console/admin", ("admin.page_title", "console.page_title"), "admin.js", ("stats.css",)
    ),
}


def render(
    app: web.Application, name: str, lang: str, labels: Mapping[str, str] | None = None
) -> str:
    """handoff/static/<name>.html inside layout.html, every {{key}} filled with a content word
    (escaped); {{labels}} becomes data-label-* attributes for the page's script."""
    page = PAGES[name]
    content = app[CONTENT]
    layout = (STATIC / "layout.html").read_text(encoding="utf-8")
    main = (STATIC / f"{name}.html").read_text(encoding="utf-8")
    values = {
        "lang": lang,
        "exit_url": app[SETTINGS].exit_url,
        "path": page.path,
        "script": page.script,
        "title": " – ".join(content.text(key, lang) for key in page.titles),
    }
    raw = {
        "stylesheets": "".join(
            f'\n  <link rel="stylesheet" href="/console/static/{sheet}">'
            for sheet in page.stylesheets
        ),
        LABELS: "\n        ".join(
            f'data-label-{k}="{html.escape(v, quote=True)}"'
            for k, v in sorted((labels or {}).items())
        ),
    }

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in raw:
            return raw[key]
        value = values[key] if key in values else content.text(key, lang)
        return html.escape(value, quote=True)

    main = _PLACEHOLDER.sub(fill, main)
    return _PLACEHOLDER.sub(lambda m: main if m.group(1) == "main" else fill(m), layout)
