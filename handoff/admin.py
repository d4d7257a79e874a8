"""The console's admin page: the content version, when the directory was last checked, and
opening hours and closures set without editing files.

Overrides live in the database. Every instance lays them over content/hours.yaml into
app[HOURS] (which routing reads at each hand-off): at start, at once when any instance
announces a change on the hub, and every RELOAD_SECONDS in case an announcement was missed
(or the change came from `run.py hours` with no Redis to announce it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiohttp import web

from handoff import hours_overrides
from handoff.accounts import User
from handoff.console import api, json_body
from handoff.hours_overrides import HoursRefused, local_text
from handoff.stats import page_for
from helpline.app import CLOCK, CONTENT, HOURS, HUB, STORE
from helpline.domain import storable
from helpline.hours import OpeningHours
from helpline.tasks import cancel_and_wait

log = logging.getLogger(__name__)

ADMIN = ("admin",)
RELOAD_SECONDS = 30
LIVE_HOURS = web.AppKey("live_hours", hours_overrides.LiveHours)
HOURS_LOCK = web.AppKey("hours_reload_lock", asyncio.Lock)
STATUS_QUEUES = ("helpline", "family")
MAX_ID = 2**31


# -- keeping app[HOURS] up to date on every instance -----------------------------------


async def reload_hours(app: web.Application) -> None:
    async with app[HOURS_LOCK]:
        found = await hours_overrides.overrides(app[STORE], now=app[CLOCK]())
        app[LIVE_HOURS].update(found)


async def _announce(app: web.Application, override_id: int) -> None:
    await reload_hours(app)
    await app[HUB].publish(hours_overrides.TOPIC, {"type": "hours", "id": override_id})


async def _follow_hub(app: web.Application, started: asyncio.Event) -> None:
    async with app[HUB].subscribe(hours_overrides.TOPIC) as events:
        started.set()
        async for _ in events:
            try:
                await reload_hours(app)
            except Exception:  # noqa: BLE001 - the periodic reload tries again
                log.exception("opening hours could not be reloaded")


async def _every_while(app: web.Application) -> None:
    while True:
        await asyncio.sleep(RELOAD_SECONDS)
        try:
            await reload_hours(app)
        except Exception:  # noqa: BLE001 - keep the loop alive; the next round retries
            log.exception("opening hours could not be reloaded")


async def _keep_hours(app: web.Application) -> AsyncIterator[None]:
    await reload_hours(app)
    started = asyncio.Event()
    tasks = [
        asyncio.create_task(_follow_hub(app, started), name="hours-hub"),
        asyncio.create_task(_every_while(app), name="hours-reload"),
    ]
    await started.wait()
    try:
        yield
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await cancel_and_wait(*tasks)  # again until they end (helpline/tasks.py)


# -- what the page shows ---------------------------------------------------------------


def _directory(app: web.Application, now: datetime) -> dict[str, Any]:
    directory = app[CONTENT].directory
    if directory is None:
        return {"checked_on": None, "oldest_check": None, "stale": [], "unconfirmed": 0}
    checked = [e.verified_on for e in directory.services if e.verified_on]
    checked += [e.verified_on for e in directory.programmes if e.verified_on]
    return {
        "checked_on": max(checked).isoformat() if checked else None,
        "oldest_check": min(checked).isoformat() if checked else None,
        "stale": directory.stale_entries(now.date()),
        "unconfirmed": len(directory.unconfirmed_entries()),
    }


def _programme_queues(app: web.Application) -> list[str]:
    directory = app[CONTENT].directory
    if directory is None:
        return []
    return [f"programme:{p.id}" for p in directory.programmes if p.accepts_referrals_via_helpline]


def _weekly(app: web.Application, found: list[hours_overrides.Override]) -> list[dict[str, Any]]:
    hours = app[LIVE_HOURS].current or hours_overrides.ALWAYS_OPEN
    changed = {o.queue: o.id for o in found if o.kind == "weekly"}
    names = list(dict.fromkeys([*hours.queues, *(q for q in changed if q)]))
    return [
        {
            "queue": name,
            "weekly": hours_overrides.weekly_text(hours.hours_for(name)),
            "override": changed.get(name),
        }
        for name in names
    ]


def _status(app: web.Application, queues: list[str], now: datetime) -> list[dict[str, Any]]:
    hours = app[LIVE_HOURS]
    out = []
    for queue in queues:
        is_open = hours.is_open(queue, now)
        opens = hours.next_opening(queue, now)  # None: closed past the horizon
        out.append({"queue": queue, "open": is_open, "opens": local_text(opens) if opens else None})
    return out


@api(ADMIN)
async def overview(request: web.Request, user: User) -> web.Response:
    app = request.app
    now = app[CLOCK]()
    found = await hours_overrides.overrides(app[STORE], now=now)
    programmes = _programme_queues(app)
    extra = [o.queue for o in found if o.queue and o.queue.startswith("programme:")]
    shown = list(dict.fromkeys([*STATUS_QUEUES, *extra]))
    return web.json_response(
        {
            "content_version": app[CONTENT].version,
            "directory": _directory(app, now),
            "queues": [*STATUS_QUEUES, *programmes],
            "weekly": _weekly(app, found),
            "closures": [o.view() for o in found if o.kind == "closure"],
            "status": _status(app, shown, now),
        }
    )


# -- changing the hours ----------------------------------------------------------------


def _refused(exc: HoursRefused) -> web.Response:
    return web.json_response({"error": "invalid", "detail": str(exc)}, status=400)


def _string(data: dict[str, Any], key: str, limit: int = 120) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise HoursRefused(f"{key} must be text of up to {limit} characters")
    return storable(value)


@api(ADMIN, write=True)
async def close(request: web.Request, user: User) -> web.Response:
    data = await json_body(request)
    try:
        queue = _string(data, "queue", 80) or None
        override_id = await hours_overrides.add_closure(
            request.app[STORE],
            starts_at=hours_overrides.parse_local(_string(data, "from", 20)),
            ends_at=hours_overrides.parse_local(_string(data, "to", 20)),
            queue=queue,
            name=_string(data, "name"),
            by=user.name,
            now=request.app[CLOCK](),
        )
    except HoursRefused as exc:
        return _refused(exc)
    await _announce(request.app, override_id)
    return web.json_response({"id": override_id})


@api(ADMIN, write=True)
async def weekly(request: web.Request, user: User) -> web.Response:
    data = await json_body(request)
    days = data.get("weekly")
    try:
        if not isinstance(days, dict):
            raise HoursRefused("weekly must give each day's times")
        override_id = await hours_overrides.set_weekly(
            request.app[STORE],
            queue=_string(data, "queue", 80),
            weekly={str(k): v if isinstance(v, str | list) else "" for k, v in days.items()},
            name=_string(data, "name"),
            by=user.name,
            now=request.app[CLOCK](),
        )
    except HoursRefused as exc:
        return _refused(exc)
    await _announce(request.app, override_id)
    return web.json_response({"id": override_id})


@api(ADMIN, write=True)
async def remove(request: web.Request, user: User) -> web.Response:
    try:
        override_id = int(request.match_info["override"])
    except ValueError:
        override_id = 0
    if not 1 <= override_id < MAX_ID:  # past the id column's 32 bits: not one of ours
        return web.json_response({"error": "not_found"}, status=404)
    await hours_overrides.remove(request.app[STORE], override_id, by=user.name)
    await _announce(request.app, override_id)
    return web.json_response({"ok": True})


def setup(app: web.Application) -> None:
    """Register after the console: the content hours are kept, and overrides laid over them."""
    base = app[HOURS]
    live = hours_overrides.LiveHours(base if isinstance(base, OpeningHours) else None)
    app[LIVE_HOURS] = live
    # Routing only calls is_open and next_opening on app[HOURS] (helpline/app.py, _hours).
    app[HOURS] = live
    app[HOURS_LOCK] = asyncio.Lock()
    app.cleanup_ctx.append(_keep_hours)
    app.router.add_routes(
        [
            web.get("/console/admin", page_for("admin", ADMIN)),
            web.get("/console/api/admin", overview),
            web.post("/console/api/admin/closures", close),
            web.post("/console/api/admin/weekly", weekly),
            web.post("/console/api/admin/overrides/{override}/remove", remove),
        ]
    )
