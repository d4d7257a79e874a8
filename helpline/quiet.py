"""Quiet hours: a time window, in the person's UK local time, when nothing is sent to them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
_HHMM = re.compile(r"^([01]?\d|2[0-3])[:.]?([0-5]\d)$")


def parse_time(text: str) -> time | None:
    match = _HHMM.match(text.strip())
    return time(int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> QuietHours | None:
        window = settings.get("quiet_hours")
        if not isinstance(window, dict):
            return None
        start, end = (
            parse_time(str(window.get("start", ""))),
            parse_time(str(window.get("end", ""))),
        )
        if start is None or end is None or start == end:
            return None
        return cls(start, end)

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(LONDON).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # wraps midnight, e.g. 22:00-08:00

    def ends_after(self, at: datetime) -> datetime:
        """When the window that contains `at` closes (UTC-aware)."""
        local = at.astimezone(LONDON)
        candidate = datetime.combine(local.date(), self.end, LONDON)
        if candidate <= local:
            candidate = datetime.combine(local.date() + timedelta(days=1), self.end, LONDON)
        return candidate.astimezone(at.tzinfo)
