"""The console's statistics page for supervisors and admins: anonymous counts as JSON, CSV and
charts, small numbers suppressed month by month (stats_counts.report). Also keeps the counts
through retention (a BEFORE_PURGE hook) and reports the advisers online gauge."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Awaitable, Callable
from datetime import datetime

from aiohttp import web

from handoff import accounts, live, pages, referrals, stats_counts
from handoff.accounts import SUPERVISING, User
from handoff.console import api, current_session
from helpline.app import BEFORE_PURGE, CONTENT, METRICS, STORE
from helpline.content import Content
from helpline.routing import OUTCOMES

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


# -- pages shared with the admin page --------------------------------------------------


def _labels(content: Content, lang: str) -> dict[str, str]:
    """Names of values (channels, journeys, outcomes...) for the scripts, by data-label-*."""
    out = {
        key.removeprefix("stats.value.").replace(".", "-"): content.text(key, lang)
        for key in content.messages
        if key.startswith("stats.value.")
    }
    for level in stats_counts.RISKS:
        out[f"risk-{level}"] = content.text(f"console.risk_{level}", lang)
    for outcome in OUTCOMES:
        out[f"outcome-{outcome}"] = content.text(f"console.outcome.{outcome}", lang)
    for status in referrals.STATUSES:
        out[f"status-{status}"] = content.text(f"console.referral.{status}", lang)
    for key in content.messages:
        for prefix in ("stats.", "admin."):
            if key.startswith(prefix) and not key.startswith("stats.value."):
                out[key.replace(".", "-").replace("_", "-")] = content.text(key, lang)
    return out


def render_page(app: web.Application, name: str, lang: str) -> str:
    """The statistics or admin page (handoff/pages.py), with the names of values its script
    shows."""
    return pages.render(app, name, lang, _labels(app[CONTENT], lang))


def page_for(
    name: str, roles: tuple[str, ...]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page only `roles` may open; anyone not logged in is sent to the console to log in."""

    async def page(request: web.Request) -> web.StreamResponse:
        session = await current_session(request)
        if session is None:
            raise web.HTTPFound("/console")
        if session.user.role not in roles:
            return web.json_response({"error": "role"}, status=403)
        lang = "cy" if request.query.get("lang") == "cy" else "en"
        return web.Response(text=render_page(request.app, name, lang), content_type="text/html")

    return page


# -- the statistics --------------------------------------------------------------------


def _period(request: web.Request) -> tuple[str | None, str | None]:
    first = request.query.get("from") or None
    last = request.query.get("to") or None
    for month in (first, last):
        if month is not None and not _MONTH.match(month):
            raise web.HTTPBadRequest(text='{"error": "period"}', content_type="application/json")
    if first and last and first > last:
        raise web.HTTPBadRequest(text='{"error": "period"}', content_type="application/json")
    return first, last


async def _report(request: web.Request) -> dict[str, object]:
    first, last = _period(request)
    counts = await stats_counts.tally(
        request.app[STORE], request.app[CONTENT].directory, first, last
    )
    return {"period": {"from": first, "to": last}, **stats_counts.report(counts)}


@api(SUPERVISING)
async def statistics(request: web.Request, user: User) -> web.Response:
    return web.json_response(await _report(request))


@api(SUPERVISING)
async def statistics_csv(request: web.Request, user: User) -> web.Response:
    report = await _report(request)
    lang = "cy" if request.query.get("lang") == "cy" else "en"
    out = io.StringIO()
    csv.writer(out).writerows(stats_counts.csv_rows(report))
    # The rule behind "<5", "withheld" and "N+", in the file itself for whoever opens it later.
    csv.writer(out).writerow(["rule", "", request.app[CONTENT].text("stats.rule", lang), ""])
    period = report["period"]
    await accounts.audit(request.app[STORE], user.name, "stats_export", None, period=period)
    name = "helpline-statistics.csv"
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- retention and the advisers online gauge -------------------------------------------


def _keep_counts(app: web.Application) -> None:
    async def before_purge(cutoff: datetime) -> None:
        await stats_counts.roll_up(app[STORE], app[CONTENT].directory, cutoff)

    app[BEFORE_PURGE].append(before_purge)


def _advisers_online(app: web.Application) -> None:
    """Consoles connected to this instance, read at each scrape (sum across instances)."""

    def count() -> float:
        sockets = app.get(live.SOCKETS)
        return float(sum(1 for ws in sockets if not ws.closed)) if sockets is not None else 0.0

    app[METRICS].advisers_online.set_function(count)


def setup(app: web.Application) -> None:
    """Register after the console (its static files, session and helpers are used here)."""
    _keep_counts(app)
    _advisers_online(app)
    app.router.add_routes(
        [
            web.get("/console/stats", page_for("stats", SUPERVISING)),
            web.get("/console/api/stats", statistics),
            web.get("/console/api/stats.csv", statistics_csv),
        ]
    )
