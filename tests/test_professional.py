"""The professional journey: what runs in an area, told as a practitioner needs it (a confirmed
community programme first, or plainly none; Drive for what it is; the practitioner line), in
English and Welsh, and no dead end at any question."""

from __future__ import annotations

from pathlib import Path

from helpline.app import CONTENT
from helpline.domain import Owner
from tests.journey_support import Person, content_copy, with_test_programme
from tests.support import running, settings_for

TO_AREA = ("hi", "1", "4", "2")  # safe to talk, I'm a professional, programmes in an area
RESPECT = "0808 802 4040"


async def _ask_about_area(person: Person) -> None:
    for text in TO_AREA:
        await person.says(text)


async def test_a_practitioner_is_told_plainly_no_community_programme_is_listed_then_drive(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _ask_about_area(person)
        assert await person.says("cardiff") == [
            "professional.area_none",
            "professional.area_referral_only",
            "professional.area_line",
            "professional.more",
        ]
        none, drive, line, _ = fake.texts()[-4:]
        assert "Cardiff" in none
        assert drive.startswith("Drive") and "MARAC" in drive
        assert "not open to self-referral" in drive
        assert RESPECT in line and "frontline workers" in line
        # Drive is explained, never offered as something to refer to through us.
        content = app[CONTENT]
        assert content.text("programme.opt_refer", "en") not in person.last_options()
        assert content.text("professional.opt_support", "en") in person.last_options()


async def test_a_listed_programme_is_shown_before_drive(sqlite_url: str, tmp_path: Path) -> None:
    root = content_copy(tmp_path)
    listed = with_test_programme(root, police_force_areas=["gwent", "south-wales"])
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings) as (app, fake, _):
        person = Person(app, fake)
        await _ask_about_area(person)
        assert await person.says("CF10 3") == [
            "professional.area_found",
            "programme.entry",
            "professional.area_referral_only",
            "professional.area_line",
            "professional.more",
        ]
        found, programme, drive, _, _ = fake.texts()[-5:]
        assert "Cardiff" in found
        assert programme.startswith(listed["name"]["en"]) and "01632 960000" in programme
        assert drive.startswith("Drive")


async def test_an_area_with_a_listed_programme_and_no_drive(
    sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings) as (app, fake, _):
        person = Person(app, fake)
        await _ask_about_area(person)
        assert await person.says("Newport") == [
            "professional.area_found",
            "programme.entry",
            "professional.area_line",
            "professional.more",
        ]


async def test_the_welsh_journey_says_no_programme_is_listed_in_welsh(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="cy")
        await _ask_about_area(person)
        assert await person.says("Abertawe") == [
            "professional.area_none",
            "professional.area_referral_only",
            "professional.area_line",
            "professional.more",
        ]
        content = app[CONTENT]
        none, drive, line, more = fake.texts()[-4:]
        assert none == content.text("professional.area_none", "cy").format(area="Abertawe")
        assert "MARAC" in drive and "nid yw ar agor i hunanatgyfeirio" in drive
        assert "Llinell Ffôn Respect" in line and RESPECT in line
        assert more == content.text("professional.more", "cy")


async def test_a_place_not_found_gets_a_retry_then_the_offer_of_an_adviser(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in TO_AREA[:-1]:
            await person.says(text)
        # Asked about an area, not where they are ("Where are you?" is for self-referral).
        assert await person.says("2") == ["professional.area_ask"]
        assert await person.says("Narnia") == ["programme.retry"]
        assert await person.says("Atlantis") == ["programme.retry", "flow.offer_adviser"]
        assert "Atlantis" not in str((await person.conversation()).answers)
        assert await person.says("adviser") == ["handoff.waiting"]
        conv = await person.conversation()
        assert conv.owner == Owner.QUEUE


async def test_after_the_area_a_practitioner_can_go_on_and_nonsense_gets_a_retry(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _ask_about_area(person)
        await person.says("Gwent")
        assert await person.says("purple") == ["flow.not_understood"]
        assert await person.says("purple") == ["flow.not_understood", "flow.offer_adviser"]
        assert await person.says("2") == ["professional.area_ask"]
        await person.says("Leeds")
        assert await person.says("5") == ["professional.end"]
        conv = await person.conversation()
        assert (conv.flow, conv.state) == ("professional", "end")


async def test_a_postcode_on_the_edge_of_two_areas_shows_a_practitioner_both(
    sqlite_url: str, tmp_path: Path
) -> None:
    # HR3 is mostly West Mercia's, but Hay-on-Wye itself is in Powys (Dyfed-Powys).
    root = content_copy(tmp_path)
    choices = with_test_programme(root, "dyfed-powys-choices")
    mercia = with_test_programme(root, police_force_areas=["west-mercia"])
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings) as (app, fake, _):
        person = Person(app, fake)
        await _ask_about_area(person)
        assert await person.says("HR3 5") == [
            "professional.area_found",
            "programme.entry",
            "professional.area_edge",
            "programme.entry",
            "professional.area_line",
            "professional.more",
        ]
        found, first, edge, second, _, _ = fake.texts()[-6:]
        assert "West Mercia" in found and first.startswith(mercia["name"]["en"])
        assert "the Dyfed-Powys Police area" in edge and "address" in edge
        assert "two areas" not in edge
        assert second.startswith(choices["name"]["en"])


async def test_a_programme_for_one_council_is_not_told_on_the_edge_of_its_area(
    sqlite_url: str, tmp_path: Path
) -> None:
    # SA9 (Ystradgynlais) is in Powys, partly in Neath Port Talbot: Swansea's Equilibrium
    # programme was told as running there.
    root = content_copy(tmp_path)
    equilibrium = with_test_programme(root, "swansea-equilibrium")
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings) as (app, fake, _):
        person = Person(app, fake)
        await _ask_about_area(person)
        await person.says("SA9 1AA")
        assert equilibrium["name"]["en"] not in "\n".join(fake.texts())
        await person.says("2")
        await person.says("Swansea")
        assert equilibrium["name"]["en"] in "\n".join(fake.texts()[-4:])
