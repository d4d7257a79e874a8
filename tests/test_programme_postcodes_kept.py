""" "We keep only the council or police area, not your postcode": true of every answer in the
programme and professional journeys, not only of the answer to "where are you?"."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from tests.journey_support import Person
from tests.support import running, settings_for

# The postcodes' inward halves, not inside a longer run of letters and digits: a row's random
# ids in hex can hold "1AB" ("...421AB227..."), which failed this test now and then.
_INWARD = re.compile(r"(?<![0-9A-Z])(1AB|2AT)(?![0-9A-Z])|NP20\s*1AB|CF10\s*2AT")


@pytest.mark.parametrize(
    ("before", "said"),
    [
        # no programme listed in Newport: "another area" with a postcode in it
        (["hello", "1", "1", "1", "no", "3", "NP20 1"], "another area NP20 1AB"),
        # a practitioner asking what runs near a postcode
        (["hi", "1", "4"], "what runs near CF10 2AT?"),
        (["hi", "1", "4", "1"], "what's available in NP20 1AB"),
        # worried about their own behaviour, asked what would help
        (["hello", "1", "1", "1", "no"], "a programme near NP20 1AB"),
    ],
)
async def test_a_full_postcode_said_anywhere_in_these_journeys_is_not_kept(
    before: list[str], said: str, tmp_path: Path
) -> None:
    db = tmp_path / "t.db"
    async with running(settings_for(f"sqlite+aiosqlite:///{db}", tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in before:
            await person.says(text)
        assert await person.says(said)  # answered
        conv = await person.conversation()
        assert conv.flow in ("programme", "professional", "own")
        assert "1AB" not in str(conv.answers) and "2AT" not in str(conv.answers)
    with sqlite3.connect(db) as raw:
        tables = [t for (t,) in raw.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in raw.execute(f"select * from {table}"):  # noqa: S608 - our own names
                assert not _INWARD.search(repr(row).upper()), table
