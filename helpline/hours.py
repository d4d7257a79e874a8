"""When each queue of advisers is open: weekly hours in Europe/London, bank holidays, closures.

Times go in and come out as timezone-aware UTC; only the comparison is made in local time, so
the GMT/BST changes need no special handling by callers.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from helpline.errors import ContentError
from helpline.yamlfile import read_yaml

FILE = "hours.yaml"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MINUTES = 24 * 60
# How far ahead next_opening looks; a queue closed for longer has no next opening (None).
HORIZON_DAYS = 400

_SLOT = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")
_TIME = re.compile(r"(\d\d):(\d\d)")

Slot = tuple[int, int]  # minutes since local midnight, [start, end)


@dataclass(frozen=True, slots=True)
class QueueHours:
    name: str
    weekly: tuple[tuple[Slot, ...], ...]  # Monday first
    closed_on_bank_holidays: bool


@dataclass(frozen=True, slots=True)
class Closure:
    day: date
    slot: Slot
    name: str
    queues: frozenset[str] | None  # None: every queue

    def covers(self, queue: str, day: date, minute: int) -> bool:
        applies = self.queues is None or queue in self.queues
        return applies and self.day == day and self.slot[0] <= minute < self.slot[1]


def _fail(where: str, problem: str) -> NoReturn:
    raise ContentError(f"{FILE}: {where}: {problem}")


def _minutes(h: str, m: str, where: str) -> int:
    value = int(h) * 60 + int(m)
    if int(m) > 59 or value > DAY_MINUTES:
        _fail(where, f"{h}:{m} is not a time of day")
    return value


def _slot(text: Any, where: str) -> Slot:
    m = _SLOT.fullmatch(str(text).strip())
    if not m:
        _fail(where, f"{text!r} is not HH:MM-HH:MM")
    start, end = _minutes(m[1], m[2], where), _minutes(m[3], m[4], where)
    if start >= end:
        _fail(where, f"{text!r} ends before it starts")
    return start, end


def _day(value: Any, where: str) -> date:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = date.fromisoformat(value)
    if not isinstance(value, date) or isinstance(value, datetime):
        _fail(where, f"{value!r} is not a date (YYYY-MM-DD)")
    return value


def _queue(name: str, raw: Any) -> QueueHours:
    where = f"queues.{name}"
    if not isinstance(raw, dict) or set(raw) - {"weekly", "closed_on_bank_holidays"}:
        _fail(where, "expected weekly and closed_on_bank_holidays")
    weekly = raw.get("weekly")
    if not isinstance(weekly, dict) or set(weekly) != set(DAYS):
        _fail(f"{where}.weekly", f"needs each of {', '.join(DAYS)} (use [] for closed)")
    days = tuple(
        tuple(sorted(_slot(s, f"{where}.weekly.{d}") for s in weekly[d] or ())) for d in DAYS
    )
    if not any(days):
        _fail(where, "is never open")
    closed = raw.get("closed_on_bank_holidays", True)
    if not isinstance(closed, bool):
        _fail(where, "closed_on_bank_holidays must be true or false")
    return QueueHours(name, days, closed)


def _closure(n: int, raw: Any) -> Closure:
    where = f"closures[{n + 1}]"
    if not isinstance(raw, dict) or set(raw) - {"date", "from", "to", "name", "queues"}:
        _fail(where, "expected date, name and optional from, to, queues")
    day = _day(raw.get("date"), where)
    start, end = str(raw.get("from", "00:00")), str(raw.get("to", "24:00"))
    slot = _slot(f"{start}-{end}", where)
    queues = raw.get("queues")
    return Closure(
        day=day,
        slot=slot,
        name=str(raw.get("name") or ""),
        queues=frozenset(map(str, queues)) if queues else None,
    )


@dataclass(frozen=True)
class OpeningHours:
    """Opening hours of every queue; ask with aware datetimes, get UTC back."""

    zone: ZoneInfo
    queues: dict[str, QueueHours]
    bank_holidays: frozenset[date]
    closures: tuple[Closure, ...]

    @classmethod
    def load(cls, root: Path) -> OpeningHours:
        """Read and check content/hours.yaml under `root` (the content folder)."""
        path = root / FILE
        data = read_yaml(path, FILE)
        if not isinstance(data, dict):
            _fail("top level", "expected timezone, queues, bank_holidays and closures")
        try:
            zone = ZoneInfo(str(data.get("timezone", "Europe/London")))
        except (ZoneInfoNotFoundError, ValueError):
            _fail("timezone", f"unknown time zone {data.get('timezone')!r}")
        raw_queues = data.get("queues")
        if not isinstance(raw_queues, dict) or "default" not in raw_queues:
            _fail("queues", "needs at least a default queue")
        queues = {str(k): _queue(str(k), v) for k, v in raw_queues.items()}
        holidays = []
        for n, item in enumerate(data.get("bank_holidays") or []):
            where = f"bank_holidays[{n + 1}]"
            day = _day(item.get("date") if isinstance(item, dict) else item, where)
            if day.weekday() >= 5:
                _fail(where, f"{day} is a weekend day, not a bank holiday")
            holidays.append(day)
        closures = tuple(_closure(n, c) for n, c in enumerate(data.get("closures") or []))
        return cls(zone, queues, frozenset(holidays), closures)

    def hours_for(self, queue: str) -> QueueHours:
        """The queue's own hours, else its family's ("programme:x" -> "programme"), else default."""
        family = queue.split(":", 1)[0]
        return self.queues.get(queue) or self.queues.get(family) or self.queues["default"]

    def is_open(self, queue: str, at: datetime) -> bool:
        local = _aware(at).astimezone(self.zone)
        return self._open_at(queue, local.date(), local.hour * 60 + local.minute)

    def next_opening(self, queue: str, at: datetime) -> datetime | None:
        """`at` itself (in UTC) if the queue is open then, otherwise when it next opens;
        None if it does not open within HORIZON_DAYS (closed until further notice)."""
        at = _aware(at).astimezone(UTC)
        if self.is_open(queue, at):
            return at
        hours = self.hours_for(queue)
        first = at.astimezone(self.zone).date()
        for offset in range(HORIZON_DAYS):
            day = first + timedelta(days=offset)
            for minute in self._candidates(queue, hours, day):
                local = datetime.combine(day, time(minute // 60, minute % 60), self.zone)
                candidate = local.astimezone(UTC)
                if candidate > at and self.is_open(queue, candidate):
                    return candidate
        return None

    def _open_at(self, queue: str, day: date, minute: int) -> bool:
        hours = self.hours_for(queue)
        if hours.closed_on_bank_holidays and day in self.bank_holidays:
            return False
        if any(c.covers(queue, day, minute) for c in self.closures):
            return False
        return any(start <= minute < end for start, end in hours.weekly[day.weekday()])

    def _candidates(self, queue: str, hours: QueueHours, day: date) -> list[int]:
        """Minutes of `day` at which the queue could open: slot starts and closure ends."""
        starts = {start for start, _ in hours.weekly[day.weekday()]}
        starts |= {c.slot[1] for c in self.closures if c.day == day and c.slot[1] < DAY_MINUTES}
        return sorted(starts)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("opening hours need a timezone-aware datetime")
    return at
