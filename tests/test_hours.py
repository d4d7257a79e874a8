"""Opening hours: people are told truthfully whether an adviser is there, and when one will be."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from helpline.errors import ContentError
from helpline.hours import HORIZON_DAYS, Closure, OpeningHours

CONTENT = Path(__file__).resolve().parent.parent / "content"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def hours() -> OpeningHours:
    return OpeningHours.load(CONTENT)


@pytest.mark.parametrize(
    ("at", "is_open"),
    [
        ("2026-11-23T08:59:59", False),  # Monday, GMT: 08:59 in London
        ("2026-11-23T09:00:00", True),
        ("2026-11-23T19:59:00", True),
        ("2026-11-23T20:00:00", False),
        ("2026-11-28T10:30:00", True),  # Saturday
        ("2026-11-28T16:00:00", False),
        ("2026-11-29T12:00:00", False),  # Sunday
        ("2026-06-15T08:00:00", True),  # Monday, BST: 09:00 in London
        ("2026-06-15T07:59:00", False),
        ("2026-06-15T19:00:00", False),  # 20:00 BST
    ],
)
def test_helpline_opens_at_london_times_in_winter_and_summer(
    hours: OpeningHours, at: str, is_open: bool
) -> None:
    assert hours.is_open("helpline", utc(at)) is is_open


def test_next_opening_after_the_clocks_go_forward(hours: OpeningHours) -> None:
    # Saturday 28 March 2026, after closing; clocks go forward on Sunday 29th.
    assert hours.next_opening("helpline", utc("2026-03-28T19:30:00")) == utc("2026-03-30T08:00:00")


def test_next_opening_after_the_clocks_go_back(hours: OpeningHours) -> None:
    # Saturday 24 October 2026 at 17:00 BST; clocks go back on Sunday 25th.
    assert hours.next_opening("helpline", utc("2026-10-24T16:00:00")) == utc("2026-10-26T09:00:00")


def test_bank_holidays_close_the_helpline(hours: OpeningHours) -> None:
    good_friday = utc("2026-04-03T09:00:00")  # 10:00 BST
    assert not hours.is_open("helpline", good_friday)
    assert hours.next_opening("helpline", good_friday) == utc("2026-04-04T09:00:00")  # Sat 10:00


def test_a_programme_queue_without_hours_of_its_own_uses_the_programme_default(
    hours: OpeningHours,
) -> None:
    # Easter weekend: closed Good Friday, Saturday, Sunday and Easter Monday.
    at = utc("2026-04-03T09:00:00")
    assert hours.next_opening("programme:dyfed-powys-choices", at) == utc("2026-04-07T08:00:00")
    assert hours.hours_for("programme:anything").name == "programme"
    assert hours.hours_for("nobody-defined-this").name == "default"


def test_christmas_eve_afternoon_and_christmas_are_closed(hours: OpeningHours) -> None:
    assert hours.is_open("helpline", utc("2026-12-24T12:59:00"))
    assert not hours.is_open("helpline", utc("2026-12-24T13:00:00"))
    # 25th bank holiday, 26th closed, 27th Sunday, 28th substitute bank holiday.
    assert hours.next_opening("helpline", utc("2026-12-24T13:00:00")) == utc("2026-12-29T09:00:00")


def test_next_opening_while_open_is_now(hours: OpeningHours) -> None:
    at = utc("2026-11-23T10:00:00")
    assert hours.next_opening("family", at) == at


def test_the_answer_is_utc_whatever_zone_the_question_was_in(hours: OpeningHours) -> None:
    from zoneinfo import ZoneInfo

    at = datetime(2026, 11, 22, 12, 0, tzinfo=ZoneInfo("Europe/London"))
    nxt = hours.next_opening("helpline", at)
    assert nxt.utcoffset() is not None and nxt.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert nxt == utc("2026-11-23T09:00:00")


def test_a_time_without_a_zone_is_refused(hours: OpeningHours) -> None:
    with pytest.raises(ValueError):
        hours.is_open("helpline", datetime(2026, 11, 23, 10, 0))


def test_bank_holidays_for_2026_and_2027_are_the_england_and_wales_ones(
    hours: OpeningHours,
) -> None:
    expected = {
        date(2026, 1, 1), date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 4),
        date(2026, 5, 25), date(2026, 8, 31), date(2026, 12, 25), date(2026, 12, 28),
        date(2027, 1, 1), date(2027, 3, 26), date(2027, 3, 29), date(2027, 5, 3),
        date(2027, 5, 31), date(2027, 8, 30), date(2027, 12, 27), date(2027, 12, 28),
    }  # fmt: skip
    assert hours.bank_holidays == expected


HOURS_FOR_ONE_QUEUE = """
timezone: Europe/London
queues:
  default:
    closed_on_bank_holidays: false
    weekly: {mon: ["09:00-17:00"], tue: [], wed: [], thu: [], fri: [], sat: [], sun: []}
closures:
  - {date: 2026-11-23, from: "09:00", to: "12:00", name: training, queues: [family]}
"""


def test_a_closure_can_apply_to_one_queue_only(tmp_path: Path) -> None:
    (tmp_path / "hours.yaml").write_text(HOURS_FOR_ONE_QUEUE, encoding="utf-8")
    hours = OpeningHours.load(tmp_path)
    at = utc("2026-11-23T10:00:00")
    assert hours.is_open("helpline", at)
    assert not hours.is_open("family", at)
    assert hours.next_opening("family", at) == utc("2026-11-23T12:00:00")


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ('mon: ["9-5"]', "hours.yaml: queues.default.weekly.mon: '9-5' is not HH:MM-HH:MM"),
        ('mon: ["17:00-09:00"]', "hours.yaml: queues.default.weekly.mon: '17:00-09:00' ends"),
        ('mon: ["09:00-25:00"]', "hours.yaml: queues.default.weekly.mon: 25:00"),
        ('monday: ["09:00-17:00"]', "hours.yaml: queues.default.weekly: needs each of"),
    ],
)
def test_broken_hours_fail_to_load_naming_the_key(
    tmp_path: Path, broken: str, expected: str
) -> None:
    text = HOURS_FOR_ONE_QUEUE.replace('mon: ["09:00-17:00"]', broken)
    (tmp_path / "hours.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ContentError) as caught:
        OpeningHours.load(tmp_path)
    assert expected in str(caught.value)


def test_a_bank_holiday_on_a_weekend_is_a_mistake(tmp_path: Path) -> None:
    text = HOURS_FOR_ONE_QUEUE + "bank_holidays:\n  - {date: 2026-12-26, name: Boxing Day}\n"
    (tmp_path / "hours.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ContentError, match=r"hours.yaml: bank_holidays\[1\]: 2026-12-26"):
        OpeningHours.load(tmp_path)


def test_a_queue_closed_past_the_horizon_has_no_next_opening(hours: OpeningHours) -> None:
    # Closures one after another (each at most 90 days from the admin page) can outlast how
    # far ahead we look: "until further notice", not an error.
    first = date(2026, 11, 16)
    days = [first + timedelta(days=n) for n in range(HORIZON_DAYS + 1)]
    shut = replace(
        hours,
        closures=tuple(Closure(d, (0, 24 * 60), "closed", frozenset({"helpline"})) for d in days),
    )
    at = utc("2026-11-16T10:00:00")
    assert shut.next_opening("helpline", at) is None
    assert shut.next_opening("family", at) == at
    reopens = replace(shut, closures=shut.closures[:-2])  # open again on the last day looked at
    assert reopens.next_opening("helpline", at) == utc("2027-12-20T09:00:00")
