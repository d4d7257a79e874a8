"""Anonymous counts of conversations for supervisors and commissioners.

Each conversation becomes a handful of (dimension, value) facts: its channel, journey, outcome,
language, area, risk level, the London hour and weekday it began, each wait for an adviser and
each referral's programme and status. Before retention deletes old conversations their facts
are added to `stats_counts` (month, dimension, value, count); the figures shown are those
counts plus the facts of conversations still held. Small numbers are suppressed on the way out,
month by month, so that no choice of period can subtract its way to one (see `report`).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handoff.models import ReferralRow
from handoff.stats_models import StatsCountedRow, StatsCountRow
from helpline.directory import Directory
from helpline.errors import NotFound
from helpline.storage import SqlStore
from helpline.storage.engine import READ_ONLY
from helpline.storage.models import ConversationRow, HandoffRow

LONDON = ZoneInfo("Europe/London")
THRESHOLD = 5  # any count from 1 to THRESHOLD - 1 is never shown
SMALL = "<5"
WITHHELD = "withheld"  # a count of THRESHOLD or more, hidden so no "<5" can be worked out
NOT_BROKEN_DOWN = "not_broken_down"  # a month's whole table in one row (see _suppress)
AT_LEAST = "+"  # "120+": several months added up, some of them hidden (see over_months)
WAIT_STEP = 10  # waits are kept to the nearest ten seconds below
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RISKS = ("none", "concern", "suicide", "immediate")
WHO_JOURNEY = {"self": "own", "other": "family", "hurt": "victim", "professional": "professional"}
# Every conversation has exactly one value of these, so each sums to the number of contacts.
PER_CONTACT = ("channel", "journey", "outcome", "language", "risk", "hour", "weekday")
DIMENSIONS = (*PER_CONTACT, "area", "referral")
# Tables that list every value in its own order, with 0 where there were none.
EVERY_VALUE = {"hour": [str(h) for h in range(24)], "weekday": list(WEEKDAYS), "risk": list(RISKS)}
_CHUNK = 500
_LOCK = 804274  # PostgreSQL advisory lock: one instance rolls up at a time

Cell = tuple[str, str, str]  # month, dimension, value
Count = int | str


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def month_of(at: datetime) -> str:
    return _aware(at).astimezone(LONDON).strftime("%Y-%m")


# -- facts of one conversation ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Conversation:
    id: str
    channel: str
    language: str
    flow: str
    risk_level: str
    answers: dict[str, Any]
    created_at: datetime


def _journey(conv: _Conversation) -> str:
    who = conv.answers.get("who")
    if isinstance(who, str) and who in WHO_JOURNEY:
        return WHO_JOURNEY[who]
    return conv.flow or "welcome"


def _area(answers: dict[str, Any], directory: Directory | None) -> str | None:
    """The council the person named, else their police force area (its English name)."""
    area = answers.get("area")
    if not isinstance(area, dict):
        return None
    council = area.get("la")
    if isinstance(council, str) and council:
        return council[:160]
    force = area.get("force")
    if not isinstance(force, str) or not force:
        return None
    if directory is not None:
        try:
            return directory.force(force).names.en[:160]
        except NotFound:
            pass
    return force[:160]


def _outcome(handoffs: Sequence[HandoffRow]) -> str:
    if not handoffs:
        return "bot_only"
    last = max(handoffs, key=lambda h: h.id)
    if last.ended_at is None:
        return "open"
    return last.outcome or "ended"


def facts(
    conv: _Conversation,
    handoffs: Sequence[HandoffRow],
    referrals: Sequence[ReferralRow],
    directory: Directory | None,
) -> list[tuple[str, str]]:
    local = _aware(conv.created_at).astimezone(LONDON)
    out = [
        ("channel", conv.channel),
        ("journey", _journey(conv)),
        ("outcome", _outcome(handoffs)),
        ("language", conv.language),
        ("risk", conv.risk_level),
        ("hour", str(local.hour)),
        ("weekday", WEEKDAYS[local.weekday()]),
    ]
    area = _area(conv.answers, directory)
    if area:
        out.append(("area", area))
    for h in handoffs:
        if h.claimed_at is not None:
            waited = max(0, int((_aware(h.claimed_at) - _aware(h.joined_at)).total_seconds()))
            out.append(("wait", str(waited - waited % WAIT_STEP)))
    out.extend(("referral", f"{r.programme_id}|{r.status}") for r in referrals)
    return out


async def _collect(
    session: AsyncSession, where: ColumnElement[bool], directory: Directory | None
) -> tuple[list[str], Counter[Cell]]:
    """Facts of every conversation matching `where` and not yet counted."""
    not_counted = (
        ~select(StatsCountedRow.conversation_id)
        .where(StatsCountedRow.conversation_id == ConversationRow.id)
        .exists()
    )
    rows = (
        await session.execute(
            select(
                ConversationRow.id,
                ConversationRow.channel,
                ConversationRow.language,
                ConversationRow.flow,
                ConversationRow.risk_level,
                ConversationRow.answers,
                ConversationRow.created_at,
            ).where(where, not_counted)
        )
    ).all()
    convs = [_Conversation(*row) for row in rows]
    handoffs: dict[str, list[HandoffRow]] = defaultdict(list)
    referrals: dict[str, list[ReferralRow]] = defaultdict(list)
    ids = [c.id for c in convs]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for h in await session.scalars(
            select(HandoffRow).where(HandoffRow.conversation_id.in_(chunk))
        ):
            handoffs[h.conversation_id].append(h)
        for r in await session.scalars(
            select(ReferralRow).where(ReferralRow.conversation_id.in_(chunk))
        ):
            referrals[r.conversation_id].append(r)
    cells: Counter[Cell] = Counter()
    for conv in convs:
        month = month_of(conv.created_at)
        for dimension, value in facts(conv, handoffs[conv.id], referrals[conv.id], directory):
            cells[(month, dimension, value)] += 1
    return ids, cells


# -- keeping counts through retention --------------------------------------------------


async def roll_up(store: SqlStore, directory: Directory | None, cutoff: datetime) -> int:
    """Add the facts of conversations retention is about to delete (last touched before
    `cutoff`) to the anonymous counts, once each; returns how many were added."""
    async with store.session() as session, session.begin():
        if store.engine.dialect.name == "postgresql":
            await session.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK})"))
        ids, cells = await _collect(session, ConversationRow.updated_at < cutoff, directory)
        if not ids:
            return 0
        months = sorted({month for month, _, _ in cells})
        existing = {
            (r.month, r.dimension, r.value): r
            for r in await session.scalars(
                select(StatsCountRow).where(StatsCountRow.month.in_(months))
            )
        }
        for (month, dimension, value), n in cells.items():
            row = existing.get((month, dimension, value))
            if row is None:
                session.add(StatsCountRow(month=month, dimension=dimension, value=value, count=n))
            else:
                row.count += n
        session.add_all(StatsCountedRow(conversation_id=i) for i in ids)
        return len(ids)


# -- reading: counts kept plus conversations still held --------------------------------


async def tally(
    store: SqlStore,
    directory: Directory | None,
    first: str | None = None,
    last: str | None = None,
) -> Counter[Cell]:
    """Raw counts by (month, dimension, value) for months `first`..`last` ("YYYY-MM",
    inclusive): the kept counts and the conversations still held added up cell by cell, so
    a month half rolled up is one month. Raw: suppress them with `report` before anyone
    sees them."""
    out: Counter[Cell] = Counter()

    def wanted(month: str) -> bool:
        return (first is None or month >= first) and (last is None or month <= last)

    # A reading session: on SQLite it does not hold up writers while it counts.
    reading = async_sessionmaker(store.engine.execution_options(**{READ_ONLY: True}))
    async with reading() as session:
        for row in await session.scalars(select(StatsCountRow)):
            if wanted(row.month):
                out[(row.month, row.dimension, row.value)] += row.count
        _, cells = await _collect(session, ConversationRow.id.is_not(None), directory)
    for (month, dimension, value), n in cells.items():
        if wanted(month):
            out[(month, dimension, value)] += n
    return out


def shown(n: int) -> Count:
    return SMALL if 0 < n < THRESHOLD else n


def _could_be(count: Count) -> tuple[int, int | None]:
    """The least and the most a count shown for one month stands for (None: no most)."""
    if isinstance(count, int):
        return count, count
    if count == SMALL:
        return 1, THRESHOLD - 1
    return THRESHOLD, None  # WITHHELD


def _worked_out(total: Count, table: dict[str, Count]) -> bool:
    """Whether a hidden count in one month's table, which adds up to `total`, could be worked
    out exactly from the total, the table's other counts and what each "<5" or withheld
    stands for."""
    total_least, total_most = _could_be(total)
    bounds = {key: _could_be(count) for key, count in table.items()}
    for key, count in table.items():
        if isinstance(count, int):
            continue
        least, most = bounds[key]
        others = [bound for other, bound in bounds.items() if other != key]
        # At most what the total leaves when the others are at their least; at least what it
        # leaves when they are at their most, if they all have a most.
        if total_most is not None:
            most = min(
                total_most if most is None else most, total_most - sum(lo for lo, _ in others)
            )
        if all(hi is not None for _, hi in others):
            least = max(least, total_least - sum(hi or 0 for _, hi in others))
        if least == most:
            return True
    return False


def _suppress(values: dict[str, int], total: int | None) -> dict[str, Count]:
    """One month's table: hide 1-4. If the table adds up to a `total` that is shown (the
    month's contacts), no hidden count may be worked out from it: withhold the smallest
    shown count that prevents it, or if none does, show the whole table in one row.
    A month's tables share only that total, so checking each against what the total shown
    stands for is enough (tests/test_stats.py tries every reading of whole months)."""
    out: dict[str, Count] = {k: shown(n) for k, n in values.items()}
    if total is None or not _worked_out(shown(total), out):
        return out
    # One more withheld count is enough when any is. Hidden counts that could all only be
    # bigger (each "<5" a 1, each withheld a 5) need one that could also be smaller (6 or
    # more); any other case, any withheld count. So a run of 5s shown never helps.
    for key in sorted(
        (k for k, n in values.items() if n >= THRESHOLD), key=lambda k: (values[k], k)
    ):
        withheld = {**out, key: WITHHELD}
        if not _worked_out(shown(total), withheld):
            return withheld
    # Every split would give a count away (six people at six different hours, or four in a
    # month of 4): that month's contacts are shown in one row, not by value.
    return {NOT_BROKEN_DOWN: shown(total)}


def over_months(months: list[Count]) -> Count:
    """A figure for several months from what each month shows on its own. A hidden month
    ("<5" or withheld) never adds its own number: the figure becomes "N+", at least N, with
    such a month as 1 or 5, which its own month already tells. So subtracting one period's
    figures from another's gives nothing away that a month's own figures do not. An "N+"
    under THRESHOLD is withheld, so that no number from 1 to 4 shows even as a bound."""
    present = [m for m in months if m != 0]
    hidden = [m for m in present if isinstance(m, str)]
    if not hidden:
        return sum(m for m in present if isinstance(m, int))
    if len(present) == 1:
        return hidden[0]
    least = {SMALL: 1, WITHHELD: THRESHOLD}
    bound = sum(m if isinstance(m, int) else least[m] for m in present)
    return f"{bound}{AT_LEAST}" if bound >= THRESHOLD else WITHHELD


def _or_more(count: Count) -> Count:
    """A figure that may leave some out, as `over_months` shows one: a number N as "N+", a
    "<5" as withheld (at least 1, under 5), any other as it is."""
    if isinstance(count, int) and count >= THRESHOLD:
        return f"{count}{AT_LEAST}"
    return WITHHELD if count == SMALL else count


def _size(count: Count) -> int | None:
    """The number a shown count stands for (an "N+" at least N); None if it is hidden."""
    if isinstance(count, int):
        return count
    if count.endswith(AT_LEAST):
        return int(count.removesuffix(AT_LEAST))
    return None


def _ordered(dimension: str, counts: dict[str, Count]) -> list[str]:
    last = [NOT_BROKEN_DOWN] if NOT_BROKEN_DOWN in counts else []
    values = {k: c for k, c in counts.items() if k != NOT_BROKEN_DOWN}
    if dimension in EVERY_VALUE:
        keys = [k for k in EVERY_VALUE[dimension] if k in values]
        return keys + sorted(k for k in values if k not in keys) + last
    # Biggest first by what is shown; hidden ones alphabetically, so the order tells nothing.
    sizes = {k: n for k, c in values.items() if (n := _size(c)) is not None}
    ranked = sorted(sizes, key=lambda k: (-sizes[k], k))
    return ranked + sorted(k for k in values if k not in sizes) + last


def _percentile(waits: list[int], fraction: float) -> int:
    ordered = sorted(waits)
    if len(ordered) == 1:
        return ordered[0]
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return round(cuts[round(fraction * 100) - 1])


@dataclass
class _Months:
    """What each month shows on its own, collected month by month."""

    contacts: list[Count] = field(default_factory=list)
    claimed: list[Count] = field(default_factory=list)
    cells: dict[str, dict[str, list[Count]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    waits: list[int] = field(default_factory=list)  # from months of THRESHOLD waits or more

    def add(self, raw: dict[str, dict[str, int]]) -> None:
        contacts = sum(raw.get("channel", {}).values())
        self.contacts.append(shown(contacts))
        for dimension in DIMENSIONS:
            total = contacts if dimension in PER_CONTACT else None  # area, referral: no total
            safe = _suppress(raw.get(dimension, {}), total)
            for value, count in safe.items():
                self.cells[dimension][value].append(count)
        month_waits = raw.get("wait", {})
        claimed = sum(month_waits.values())
        self.claimed.append(shown(claimed))
        if claimed >= THRESHOLD:
            self.waits.extend(int(v) for v, n in month_waits.items() for _ in range(n))

    def table(self, dimension: str) -> dict[str, Count]:
        out = {value: over_months(counts) for value, counts in self.cells[dimension].items()}
        if NOT_BROKEN_DOWN not in out:
            return out
        # Some month is in one row, and any value may have some of it: each figure is only
        # "at least" what the other months show.
        return {k: c if k == NOT_BROKEN_DOWN else _or_more(c) for k, c in out.items()}


def report(cells: Counter[Cell]) -> dict[str, Any]:
    """What may be shown: each month suppressed on its own (no count of 1-4, and none that
    its total gives away: `_suppress`), then the months added up by `over_months`, never
    using a hidden number."""
    raw: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for (month, dimension, value), n in cells.items():
        if n:
            raw[month][dimension][value] = n
    months = _Months()
    for month in sorted(raw):
        months.add(raw[month])
    tables: dict[str, list[dict[str, Any]]] = {}
    for dimension in (*PER_CONTACT, "area"):
        counts = months.table(dimension)
        # Every hour, day and risk level is listed, with 0 where none; but not beside a
        # month in one row, where a 0 would claim no one when some may be in that row.
        if dimension in EVERY_VALUE and NOT_BROKEN_DOWN not in counts:
            for key in EVERY_VALUE[dimension]:
                counts.setdefault(key, 0)
        tables[dimension] = [{"value": k, "count": counts[k]} for k in _ordered(dimension, counts)]
    referral_counts = months.table("referral")
    referrals = [
        {"programme": k.split("|", 1)[0], "status": k.split("|", 1)[-1], "count": c}
        for k, c in sorted(referral_counts.items(), key=lambda kc: (kc[0].split("|", 1)[0], kc[0]))
    ]
    enough = len(months.waits) >= THRESHOLD
    return {
        "threshold": THRESHOLD,
        "contacts": over_months(months.contacts),
        "tables": tables,
        "referrals": referrals,
        "waits": {
            "claimed": over_months(months.claimed),
            "median_seconds": _percentile(months.waits, 0.5) if enough else None,
            "p90_seconds": _percentile(months.waits, 0.9) if enough else None,
        },
    }


def csv_rows(shown_report: dict[str, Any]) -> Iterable[list[str]]:
    """The suppressed report as rows of section, value, detail, count."""
    yield ["section", "value", "detail", "count"]
    yield ["contacts", "all", "", str(shown_report["contacts"])]
    for dimension, rows in shown_report["tables"].items():
        for row in rows:
            yield [dimension, row["value"], "", str(row["count"])]
    for row in shown_report["referrals"]:
        yield ["referral", row["programme"], row["status"], str(row["count"])]
    waits = shown_report["waits"]
    yield ["wait", "claimed", "", str(waits["claimed"])]
    for key in ("median_seconds", "p90_seconds"):
        value = waits[key]
        yield ["wait", key, "", "" if value is None else str(value)]
