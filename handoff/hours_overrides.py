"""Opening hours changed without editing files: closures and weekly hours an admin stores in
the database, laid over content/hours.yaml. Used by the admin page and `run.py hours`."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select

from handoff import accounts
from handoff.models import HoursOverrideRow
from helpline.errors import HelplineError, NotFound
from helpline.hours import DAY_MINUTES, DAYS, Closure, OpeningHours, QueueHours
from helpline.storage import SqlStore

LONDON = ZoneInfo("Europe/London")
TOPIC = "hours"  # hub topic: an override changed, every instance reloads
# Closures can follow one another past next_opening's horizon: it then answers None.
MAX_CLOSURE = timedelta(days=90)
MAX_AHEAD = timedelta(days=730)
KEEP_PAST = timedelta(days=1)
CLOSURE_QUEUE = re.compile(r"^(helpline|family|programme:[a-z0-9][a-z0-9_-]{0,63})$")
WEEKLY_QUEUE = re.compile(
    r"^(default|helpline|family|programme|programme:[a-z0-9][a-z0-9_-]{0,63})$"
)
_SLOT = re.compile(r"^([0-2]\d):([0-5]\d)-([0-2]\d):([0-5]\d)$")
_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}$")

# No content file: open around the clock, except where an admin says otherwise.
ALWAYS_OPEN = OpeningHours(
    LONDON,
    {"default": QueueHours("default", (((0, DAY_MINUTES),),) * 7, False)},
    frozenset(),
    (),
)


class HoursRefused(HelplineError):
    """An override was refused; the message says which rule it broke."""


@dataclass(frozen=True, slots=True)
class Override:
    id: int
    kind: str  # "closure" or "weekly"
    queue: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    weekly: dict[str, list[str]] | None
    name: str
    created_by: str
    created_at: datetime

    def describe(self) -> str:
        """One tab-separated line for `run.py hours list`."""
        if self.kind == "weekly":
            week = " ".join(
                f"{d}={','.join(s) or 'closed'}" for d, s in (self.weekly or {}).items()
            )
            return f"{self.id}\tweekly\t{self.queue}\t{week}"
        start = local_text(self.starts_at) if self.starts_at else ""
        end = local_text(self.ends_at) if self.ends_at else ""
        return f"{self.id}\tclosed\t{self.queue or 'every queue'}\t{start} to {end}\t{self.name}"

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "queue": self.queue,
            "from": local_text(self.starts_at) if self.starts_at else None,
            "to": local_text(self.ends_at) if self.ends_at else None,
            "weekly": self.weekly,
            "name": self.name,
            "by": self.created_by,
            "at": self.created_at.isoformat(),
        }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_local(text: str) -> datetime:
    """ "2026-12-24T13:00" (or with a space) in UK time, as UTC."""
    text = text.strip()
    if not _LOCAL.match(text):
        raise HoursRefused(f"{text!r} is not a UK date and time like 2026-12-24T13:00")
    try:
        naive = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        raise HoursRefused(f"{text!r} is not a real date and time") from None
    return naive.replace(tzinfo=LONDON).astimezone(UTC)


def local_text(at: datetime) -> str:
    return _aware(at).astimezone(LONDON).strftime("%Y-%m-%dT%H:%M")


def _minutes(hours: str, minutes: str) -> int:
    return int(hours) * 60 + int(minutes)


def parse_slots(text: str, day: str) -> list[str]:
    """ "09:00-13:00, 14:00-17:00" -> checked, sorted slots; empty or "closed" -> []."""
    text = text.strip()
    if text.lower() in ("", "closed", "-"):
        return []
    found: list[tuple[int, int]] = []
    for part in text.split(","):
        m = _SLOT.match(part.strip())
        if not m:
            raise HoursRefused(f"{day}: {part.strip()!r} is not HH:MM-HH:MM")
        start, end = _minutes(m[1], m[2]), _minutes(m[3], m[4])
        if start > DAY_MINUTES or end > DAY_MINUTES:
            raise HoursRefused(f"{day}: {part.strip()!r} is not a time of day (00:00 to 24:00)")
        if start >= end:
            raise HoursRefused(f"{day}: {part.strip()!r} ends before it starts")
        found.append((start, end))
    found.sort()
    for (_, end), (start, _) in zip(found, found[1:], strict=False):
        if start < end:
            raise HoursRefused(f"{day}: opening times overlap")
    return [f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in found]


def _row(row: HoursOverrideRow) -> Override:
    return Override(
        row.id,
        row.kind,
        row.queue,
        _aware(row.starts_at) if row.starts_at else None,
        _aware(row.ends_at) if row.ends_at else None,
        dict(row.weekly) if row.weekly else None,
        row.name,
        row.created_by,
        _aware(row.created_at),
    )


async def overrides(store: SqlStore, *, now: datetime | None = None) -> list[Override]:
    """Weekly changes, and closures that have not ended (or every one when `now` is None)."""
    query = select(HoursOverrideRow).order_by(HoursOverrideRow.id)
    if now is not None:
        query = query.where(
            (HoursOverrideRow.kind == "weekly") | (HoursOverrideRow.ends_at > now - KEEP_PAST)
        )
    async with store.session() as session:
        return [_row(r) for r in await session.scalars(query)]


async def add_closure(
    store: SqlStore,
    *,
    starts_at: datetime,
    ends_at: datetime,
    queue: str | None,
    name: str,
    by: str,
    now: datetime,
) -> int:
    if queue is not None and not CLOSURE_QUEUE.match(queue):
        raise HoursRefused(f"unknown queue {queue!r}")
    if ends_at <= starts_at:
        raise HoursRefused("a closure must end after it starts")
    if ends_at <= now:
        raise HoursRefused("that closure is already over")
    if ends_at - starts_at > MAX_CLOSURE or starts_at > now + MAX_AHEAD:
        raise HoursRefused("a closure can last up to 90 days and start up to two years ahead")
    return await _add(
        store,
        HoursOverrideRow(
            kind="closure",
            queue=queue,
            starts_at=starts_at,
            ends_at=ends_at,
            name=name.strip()[:120],
            created_by=by,
            created_at=now,
        ),
        detail={"queue": queue, "from": local_text(starts_at), "to": local_text(ends_at)},
    )


async def set_weekly(
    store: SqlStore,
    *,
    queue: str,
    weekly: dict[str, str | list[str]],
    by: str,
    now: datetime,
    name: str = "",
) -> int:
    """Replace a queue's weekly hours (every day given, as in hours.yaml)."""
    if not WEEKLY_QUEUE.match(queue):
        raise HoursRefused(f"unknown queue {queue!r}")
    if set(weekly) != set(DAYS):
        raise HoursRefused(f"give every day: {', '.join(DAYS)}")
    slots = {}
    for day in DAYS:
        given = weekly[day]
        if not isinstance(given, str) and not all(isinstance(s, str) for s in given):
            raise HoursRefused(f"{day}: give times as text like 09:00-17:00")
        slots[day] = parse_slots(given if isinstance(given, str) else ",".join(given), day)
    if not any(slots.values()):
        raise HoursRefused("a queue must open at some time in the week; add a closure instead")
    return await _add(
        store,
        HoursOverrideRow(
            kind="weekly",
            queue=queue,
            weekly=slots,
            name=name.strip()[:120],
            created_by=by,
            created_at=now,
        ),
        detail={"queue": queue, "weekly": slots},
    )


async def _add(store: SqlStore, row: HoursOverrideRow, detail: dict[str, Any]) -> int:
    async with store.session() as session, session.begin():
        if row.kind == "weekly":  # one weekly change per queue: the new one replaces it
            await session.execute(
                delete(HoursOverrideRow).where(
                    HoursOverrideRow.kind == "weekly", HoursOverrideRow.queue == row.queue
                )
            )
        session.add(row)
        await session.flush()
        override_id = row.id
    await accounts.audit(store, row.created_by, f"hours_{row.kind}", None, id=override_id, **detail)
    return override_id


async def remove(store: SqlStore, override_id: int, *, by: str) -> Override:
    """Take an override away (reopen a closure, or go back to the content file's week)."""
    async with store.session() as session, session.begin():
        row = await session.get(HoursOverrideRow, override_id)
        if row is None:
            raise NotFound("no such override")
        gone = _row(row)
        await session.delete(row)
    await accounts.audit(store, by, "hours_removed", None, id=override_id, kind=gone.kind)
    return gone


# -- laying the overrides over the content file's hours --------------------------------


def _weekly(slots: dict[str, list[str]]) -> tuple[tuple[tuple[int, int], ...], ...]:
    def slot(text: str) -> tuple[int, int]:
        m = _SLOT.match(text)
        if not m:
            raise HoursRefused(f"stored slot {text!r} is not HH:MM-HH:MM")
        return _minutes(m[1], m[2]), _minutes(m[3], m[4])

    return tuple(tuple(slot(s) for s in slots.get(day, [])) for day in DAYS)


def _closures(o: Override, zone: ZoneInfo) -> list[Closure]:
    """A closure between two instants as the content file's per-day closures."""
    assert o.starts_at is not None and o.ends_at is not None
    start, end = o.starts_at.astimezone(zone), o.ends_at.astimezone(zone)
    queues = frozenset({o.queue}) if o.queue else None
    out = []
    day: date = start.date()
    while day <= end.date():
        first = start.hour * 60 + start.minute if day == start.date() else 0
        last = end.hour * 60 + end.minute if day == end.date() else DAY_MINUTES
        if last > first:
            out.append(Closure(day, (first, last), o.name, queues))
        day += timedelta(days=1)
    return out


def merged(base: OpeningHours | None, found: list[Override]) -> OpeningHours | None:
    """The content file's hours with the stored overrides laid over them."""
    if not found:
        return base
    hours = base or ALWAYS_OPEN
    queues = dict(hours.queues)
    closures = list(hours.closures)
    for o in found:
        if o.kind == "weekly" and o.queue and o.weekly:
            keeps = hours.hours_for(o.queue).closed_on_bank_holidays
            queues[o.queue] = QueueHours(o.queue, _weekly(o.weekly), keeps)
        elif o.kind == "closure":
            closures.extend(_closures(o, hours.zone))
    return replace(hours, queues=queues, closures=tuple(closures))


class LiveHours:
    """What app[HOURS] holds once the admin page is plugged in: the content file's hours
    with the overrides laid over them, swapped whole whenever the overrides are reloaded.
    Routing asks it, at every hand-off, exactly as it would ask an OpeningHours."""

    def __init__(self, base: OpeningHours | None) -> None:
        self.base = base
        self.current = base

    def update(self, found: list[Override]) -> None:
        self.current = merged(self.base, found)

    def is_open(self, queue: str, at: datetime) -> bool:
        return self.current is None or self.current.is_open(queue, at)

    def next_opening(self, queue: str, at: datetime) -> datetime | None:
        """None when closed for longer than OpeningHours looks ahead (closures can chain)."""
        return at if self.current is None else self.current.next_opening(queue, at)


def weekly_text(hours: QueueHours) -> dict[str, list[str]]:
    return {
        day: [f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in slots]
        for day, slots in zip(DAYS, hours.weekly, strict=True)
    }
