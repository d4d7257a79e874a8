"""No dead end at "where are you?": a place outside England and Wales is told so, with a
person to talk to; "rather not say" or no fixed address gets the same offer instead of the
question again; Welsh place names are found as they are said; a goodbye at the end is one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from handoff import referrals
from helpline.app import CONTENT, STORE
from tests.journey_support import Person, content_copy, with_test_programme
from tests.support import running, settings_for

TO_ASK = {"en": ["hello", "1", "1", "1", "no", "3"], "cy": ["helo", "1", "1", "1", "na", "3"]}
TO_PRACTITIONER_AREA = ["hi", "1", "4", "2"]


@pytest.mark.parametrize(
    ("said", "where"),
    [("Glasgow", "Scotland"), ("G1 1AA", "Scotland"), ("I live in Scotland", "Scotland"),
     ("Belfast", "Northern Ireland")],
)  # fmt: skip
async def test_somewhere_outside_england_and_wales_is_told_so_with_a_person_to_talk_to(
    said: str, where: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in TO_ASK["en"]:
            await person.says(text)
        assert await person.says(said) == ["programme.outside"]
        assert where in fake.texts()[-1] and "England and Wales" in fake.texts()[-1]
        adviser = app[CONTENT].text("own.opt_adviser", "en")
        assert adviser in person.last_options()
        assert await person.says("another area") == ["programme.ask"]


@pytest.mark.parametrize("said", ["rather not say", "skip", "I am homeless", "back", "no"])
async def test_not_saying_where_gets_a_person_or_a_line_not_the_question_again(
    said: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in TO_ASK["en"]:
            await person.says(text)
        assert await person.says(said) == ["programme.no_area"]
        assert "0808 802 4040" in fake.texts()[-1]
        assert app[CONTENT].text("own.opt_adviser", "en") in person.last_options()


async def test_a_practitioner_outside_england_and_wales_or_not_saying_where_is_not_stuck(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in TO_PRACTITIONER_AREA:
            await person.says(text)
        assert await person.says("Glasgow") == ["programme.outside", "professional.more"]
        assert await person.says("2") == ["professional.area_ask"]
        assert await person.says("rather not say") == ["professional.no_area", "professional.more"]


@pytest.mark.parametrize(
    "said",
    ["yng Nghaerdydd", "dwi'n byw yng Nghasnewydd", "ym Mangor", "Sir Gâr", "ym Mhowys",
     "yng Nghonwy", "yng Ngheredigion", "yn Nhorfaen"],
)  # fmt: skip
async def test_welsh_place_names_after_yn_are_found_at_the_area_question(
    said: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="cy")
        for text in TO_ASK["cy"]:
            await person.says(text)
        keys = await person.says(said)
        assert keys and keys[0] in ("programme.found", "programme.none")


async def test_a_practitioner_asking_what_is_available_yng_nghaerdydd_is_shown_cardiff(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="cy")
        for text in ("helo", "1", "4"):
            await person.says(text)
        keys = await person.says("beth sydd ar gael yng Nghaerdydd?")
        assert keys[0] == "professional.area_none"
        assert "Caerdydd" in fake.texts()[-len(keys)]


async def test_neither_at_which_programme_and_another_area_after_declining_are_understood(
    sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake)
        for text in [*TO_ASK["en"], "Gwent", "1"]:
            await person.says(text)
        assert await person.says("no") == ["programme.declined"]
        assert await person.says("try another area") == ["programme.ask"]


@pytest.mark.parametrize(
    ("language", "said"), [("en", "thanks"), ("en", "bye"), ("en", "ok"), ("cy", "diolch"),
                           ("cy", "hwyl")],
)  # fmt: skip
async def test_a_goodbye_at_the_end_is_answered_with_one(
    language: str, said: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=language)
        for text in [*TO_ASK[language], "Cardiff"]:
            await person.says(text)
        done = "3" if language == "en" else "3"
        assert await person.says(done) == ["programme.end"]
        assert await person.says(said) == ["programme.bye"]
        practitioner = Person(app, fake, language=language, address="+447700900999")
        for text in ["hi", "1", "4", "4"]:
            await practitioner.says(text)
        assert await practitioner.says("5") == ["professional.end"]
        assert await practitioner.says(said) == ["programme.bye"]
        relative = Person(app, fake, language=language, address="+447700900998")
        for text in ["hi", "1", "2", "1"]:  # safe; someone I know; how to respond
            await relative.says(text)
        assert await relative.says("5") == ["family.end"]
        assert await relative.says(said) == ["programme.bye"]


async def test_a_police_force_is_named_as_an_area_not_as_a_place(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in TO_PRACTITIONER_AREA:
            await person.says(text)
        await person.says("South Wales Police")
        said = "\n".join(fake.texts()[-4:])
        assert "for the South Wales Police area" in said
        assert "works in the South Wales Police area" in said
        welsh = Person(app, fake, language="cy", address="+447700900998")
        for text in ["helo", *TO_PRACTITIONER_AREA[1:]]:
            await welsh.says(text)
        await welsh.says("Heddlu De Cymru")
        assert "ar gyfer ardal Heddlu De Cymru" in "\n".join(fake.texts()[-4:])


@pytest.mark.parametrize("language", ["en", "cy"])
async def test_a_postcode_across_the_scottish_border_asks_which_town_not_outside(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    # TD12 is Coldstream (Scotland) and Cornhill-on-Tweed (England): someone there was told
    # the service does not cover them.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=language)
        for text in TO_ASK[language]:
            await person.says(text)
        assert await person.says("TD12 4AA") == ["programme.border", "programme.border_ask"]
        said = "\n".join(fake.texts()[-2:])
        assert ("Scotland" if language == "en" else "yr Alban") in said
        assert "TD12" not in said  # only the area found is ever kept or said back
        keys = await person.says("Cornhill-on-Tweed")
        assert keys[0] in ("programme.found", "programme.none")
        other = Person(app, fake, language=language, address="+447700900998")
        for text in TO_ASK[language]:
            await other.says(text)
        await other.says("TD12 4AA")
        assert await other.says("Coldstream") == ["programme.outside"]


async def test_a_practitioner_asking_about_a_postcode_across_the_border_is_asked_the_town(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in TO_PRACTITIONER_AREA:
            await person.says(text)
        assert await person.says("TD12 4AA") == ["programme.border", "programme.border_ask"]
        keys = await person.says("Cornhill-on-Tweed")
        assert keys[0] in ("professional.area_found", "professional.area_none")
        await person.says("2")
        assert await person.says("TD9 7AA") == ["programme.border", "programme.border_ask"]
        assert await person.says("") == ["flow.empty", "programme.border_ask"]
        assert await person.says("TD9 7AA") == ["programme.border_retry"]
        assert await person.says("Metal Brige") == [
            "professional.area_none",
            "professional.area_line",
            "professional.more",
        ]
        assert "Cumberland" in fake.texts()[-3]


def _either_side_of_the_border(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A confirmed programme each side of the Welsh border near Hay-on-Wye and Presteigne:
    Dyfed-Powys's CHOICES, and the test programme moved to West Mercia."""
    choices = with_test_programme(root, "dyfed-powys-choices")
    mercia = with_test_programme(
        root,
        police_force_areas=["west-mercia"],
        name={"en": "West Mercia test programme", "cy": "Rhaglen brawf Gorllewin Mersia"},
    )
    return choices, mercia


BOTH_SIDES = ["programme.found", "programme.entry", "programme.edge", "programme.entry",
              "programme.next"]  # fmt: skip


async def test_a_postcode_on_the_edge_of_two_areas_shows_both_and_refers_to_the_one_chosen(
    sqlite_url: str, tmp_path: Path
) -> None:
    # HR3 is mostly West Mercia's, but Hay-on-Wye itself is in Powys (Dyfed-Powys): someone
    # there was given only West Mercia's programmes.
    root = content_copy(tmp_path)
    choices, mercia = _either_side_of_the_border(root)
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake)
        for text in TO_ASK["en"]:
            await person.says(text)
        assert await person.says("HR3 5") == BOTH_SIDES
        found, first, edge, second, _ = fake.texts()[-5:]
        assert "West Mercia" in found and first.startswith(mercia["name"]["en"])
        assert "the first part of your postcode" in edge
        assert "the Dyfed-Powys Police area" in edge
        assert "check your address" in edge and "HR3" not in edge
        assert second.startswith(choices["name"]["en"])
        answers = (await person.conversation()).answers
        assert answers["area"] == {
            "force": "west-mercia", "la": None, "nation": "england", "also": ["dyfed-powys"]
        }  # fmt: skip
        assert await person.says("refer me") == ["programme.which"]
        assert person.last_options()[:2] == (mercia["name"]["en"], choices["name"]["en"])
        assert await person.says("2") == ["programme.consent"]
        consent = fake.texts()[-1]
        assert "the Dyfed-Powys Police area" in consent and "West Mercia" not in consent
        await person.says("yes")
        [referral] = await referrals.referrals(app[STORE])
        assert referral["programme"] == "dyfed-powys-choices"
        assert referral["shared"]["area"] == "Dyfed-Powys Police"
        assert "HR3" not in str((await person.conversation()).answers)


async def test_in_welsh_a_programme_of_the_area_found_is_referred_with_that_area(
    sqlite_url: str, tmp_path: Path
) -> None:
    # LD8 (Presteigne) is in Powys, but part of it is policed by West Mercia.
    root = content_copy(tmp_path)
    choices, mercia = _either_side_of_the_border(root)
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake, language="cy")
        for text in TO_ASK["cy"]:
            await person.says(text)
        assert await person.says("LD8 2") == BOTH_SIDES
        found, first, edge, second, _ = fake.texts()[-5:]
        assert "Powys" in found and first.startswith(choices["name"]["cy"])
        edge_words = app[CONTENT].text("programme.edge", "cy")
        assert edge == edge_words.format(area="Heddlu Gorllewin Mersia")
        assert second.startswith(mercia["name"]["cy"])
        answers = (await person.conversation()).answers
        assert answers["area"] == {
            "force": "dyfed-powys", "la": "Powys", "nation": "wales", "also": ["west-mercia"]
        }  # fmt: skip
        assert await person.says("1") == ["programme.which"]
        assert person.last_options()[:2] == (choices["name"]["cy"], mercia["name"]["cy"])
        assert await person.says("1") == ["programme.consent"]
        assert "Mersia" not in fake.texts()[-1]
        await person.says("1")
        [referral] = await referrals.referrals(app[STORE])
        assert referral["programme"] == "dyfed-powys-choices"
        assert referral["shared"]["area"] == "Powys"


async def test_the_other_areas_programme_is_offered_when_the_area_found_has_none(
    sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    choices = with_test_programme(root, "dyfed-powys-choices")
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake)
        for text in TO_ASK["en"]:
            await person.says(text)
        assert await person.says("HR3 5") == ["programme.edge", "programme.entry", "programme.next"]
        assert "the Dyfed-Powys Police area" in fake.texts()[-3]
        assert fake.texts()[-2].startswith(choices["name"]["en"])
        assert await person.says("refer me") == ["programme.consent"]
        assert "the Dyfed-Powys Police area" in fake.texts()[-1]


@pytest.mark.parametrize(
    ("postcode", "said", "council"),
    [("TD12 4AA", "Wark", "Northumberland"), ("TD12 4AA", "Cornhill", "Northumberland"),
     ("TD12 4AA", "Etal", "Northumberland"), ("TD12 4AA", "Crookham", "Northumberland"),
     ("TD12 4AA", "Carham", "Northumberland"), ("TD9 7AA", "Kershopefoot", "Cumberland"),
     ("DG16 5AA", "Metal Bridge", "Cumberland"), ("DG16 5AA", "Longtown", "Cumberland")],
)  # fmt: skip
async def test_a_village_on_the_english_side_of_the_border_is_placed_after_the_question(
    postcode: str, said: str, council: str, sqlite_url: str, tmp_path: Path
) -> None:
    # After the question about TD12, "Wark" was Warwickshire (a typo of "Warks"), "Metal
    # Bridge" was Bridgend, and "Cornhill" or "Kershopefoot" were not understood.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in TO_ASK["en"]:
            await person.says(text)
        await person.says(postcode)
        keys = await person.says(said)
        assert keys[0] in ("programme.found", "programme.none"), keys
        assert (await person.conversation()).answers["area"]["la"] == council


async def test_at_the_border_question_a_near_miss_is_not_taken_for_a_place_far_away(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in TO_ASK["en"]:
            await person.says(text)
        await person.says("TD12 4AA")
        assert await person.says("Brigend") == ["programme.border_retry"]
        said = fake.texts()[-1]
        assert "Northumberland" in said and "Cumberland" in said and "Scotland" in said
        keys = await person.says("Northumberland")
        assert keys[0] in ("programme.found", "programme.none")


@pytest.mark.parametrize("language", ["en", "cy"])
async def test_the_border_postcode_again_or_an_empty_message_asks_the_town_again(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    # The postcode typed again went back to the question without counting as a miss, so an
    # adviser was never offered; an empty message got only "your message came through
    # empty", without the question.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=language)
        for text in TO_ASK[language]:
            await person.says(text)
        assert await person.says("TD12 4AA") == ["programme.border", "programme.border_ask"]
        assert await person.says("  ") == ["flow.empty", "programme.border_ask"]
        assert await person.says("TD12 4AA") == ["programme.border_retry"]
        assert await person.says("td12") == ["programme.border_retry", "flow.offer_adviser"]
        assert "TD12" not in str((await person.conversation()).answers)
        keys = await person.says("Cornhill-on-Tweed")
        assert keys[0] in ("programme.found", "programme.none")


async def test_a_programme_for_some_councils_is_not_shown_on_the_edge_of_its_area(
    sqlite_url: str, tmp_path: Path
) -> None:
    # CH4 (Saltney, Broughton) is Cheshire's, partly in Flintshire: Caring Dads, only for
    # Anglesey, Gwynedd, Conwy and Denbighshire, was offered there.
    root = content_copy(tmp_path)
    dads = with_test_programme(root, "north-wales-caring-dads")
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake)
        for text in TO_ASK["en"]:
            await person.says(text)
        assert await person.says("CH4 8AA") == ["programme.none"]
        assert dads["name"]["en"] not in "\n".join(fake.texts())
        other = Person(app, fake, address="+447700900998")
        for text in TO_ASK["en"]:
            await other.says(text)
        assert (await other.says("Gwynedd"))[:2] == ["programme.found", "programme.entry"]


async def test_a_postcode_reaching_into_two_other_areas_reads_right_for_each(
    sqlite_url: str, tmp_path: Path
) -> None:
    # LA6 (Kirkby Lonsdale) is Lancashire's, and reaches into Cumbria and North Yorkshire:
    # "your postcode is on the edge of two areas" was said twice.
    root = content_copy(tmp_path)
    with_test_programme(root, police_force_areas=["cumbria"])
    with_test_programme(root, "south-wales-community-programme",
                        police_force_areas=["north-yorkshire"])  # fmt: skip
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake)
        for text in TO_ASK["en"]:
            await person.says(text)
        assert await person.says("LA6 2") == [
            "programme.edge", "programme.entry", "programme.edge", "programme.entry",
            "programme.next",
        ]  # fmt: skip
        cumbria, _, yorkshire, _, _ = fake.texts()[-5:]
        for said, area in ((cumbria, "Cumbria"), (yorkshire, "North Yorkshire")):
            assert area in said and "two areas" not in said and "LA6" not in said
