"""The signposting directory: the right local help for where someone is, never a wrong route."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpline.directory import (
    AreaMatch,
    Bilingual,
    Directory,
    normalise_uk_callback_number,
    normalise_uk_phone,
    outward_code,
)
from helpline.errors import ContentError, NotFound

CONTENT = Path(__file__).resolve().parent.parent / "content"


@pytest.fixture(scope="module")
def directory() -> Directory:
    return Directory.load(CONTENT)


# --------------------------------------------------------------------------- area lookup


@pytest.mark.parametrize(
    ("query", "force", "council"),
    [
        ("CF10 3", "south-wales", "Cardiff"),
        ("cf103", "south-wales", "Cardiff"),
        ("CF10", "south-wales", "Cardiff"),
        ("CF10 3AT", "south-wales", "Cardiff"),
        ("cf10 3at", "south-wales", "Cardiff"),
        ("CF83 1AA", "gwent", "Caerphilly"),
        ("NP20 1AB", "gwent", "Newport"),
        ("NP8 1AA", "dyfed-powys", "Powys"),
        ("SA1 1AA", "south-wales", "Swansea"),
        ("SA12", "south-wales", "Neath Port Talbot"),
        ("SA31 1AA", "dyfed-powys", "Carmarthenshire"),
        ("SA61", "dyfed-powys", "Pembrokeshire"),
        ("SY23 1AA", "dyfed-powys", "Ceredigion"),
        ("LD1 5AA", "dyfed-powys", "Powys"),
        ("LL57 2AA", "north-wales", "Gwynedd"),
        ("LL11", "north-wales", "Wrexham"),
        ("CH5 1AA", "north-wales", "Flintshire"),
        ("CH64", "cheshire", None),
        ("CH41 1AA", "merseyside", None),
        ("M1 1AA", "greater-manchester", None),
        ("EC1A 1BB", "city-of-london", None),
        ("EC1V 2NX", "metropolitan", None),
        ("W1A 1AA", "metropolitan", None),
        ("TS9 5AA", "north-yorkshire", None),
        ("TD15 1AA", "northumbria", None),
        ("HP1 1AA", "hertfordshire", None),
        ("HP11 1AA", "thames-valley", None),
    ],
)
def test_postcode_finds_the_right_police_force_area(
    directory: Directory, query: str, force: str, council: str | None
) -> None:
    match = directory.find_area(query)
    assert match is not None
    assert (match.police_force_area, match.local_authority) == (force, council)


def test_only_the_outward_part_of_a_postcode_is_read() -> None:
    assert outward_code("CF10 3AT") == "CF10"
    assert outward_code("cf103at") == "CF10"
    assert outward_code("I'm in NP20 1AB at the moment") == "NP20"
    assert outward_code("hello") is None


@pytest.mark.parametrize(
    ("query", "force", "council"),
    [
        ("Cardiff", "south-wales", "Cardiff"),
        ("Caerdydd", "south-wales", "Cardiff"),
        ("Cardif", "south-wales", "Cardiff"),
        ("cardiff council", "south-wales", "Cardiff"),
        ("Swansee", "south-wales", "Swansea"),
        ("Abertawe", "south-wales", "Swansea"),
        ("Casnewydd", "gwent", "Newport"),
        ("Wrecsam", "north-wales", "Wrexham"),
        ("Ynys Môn", "north-wales", "Isle of Anglesey"),
        ("Ynys Mon", "north-wales", "Isle of Anglesey"),
        ("Sir Benfro", "dyfed-powys", "Pembrokeshire"),
        ("Pen-y-bont ar Ogwr", "south-wales", "Bridgend"),
        ("Torfaen", "gwent", "Torfaen"),
        ("I live in Caerdydd", "south-wales", "Cardiff"),
        ("South Wales", "south-wales", None),
        ("Gwent", "gwent", None),
        ("Gwent Police", "gwent", None),
        ("Heddlu Gogledd Cymru", "north-wales", None),
        ("Dyfed Powys", "dyfed-powys", None),
        ("North Yorks", "north-yorkshire", None),
        ("Leeds", "west-yorkshire", "Leeds"),
        ("Manchestr", "greater-manchester", "Manchester"),
        ("Hull", "humberside", "Kingston upon Hull"),
        ("Bedfrod", "bedfordshire", "Bedford"),
    ],
)
def test_council_and_force_names_are_found_in_english_welsh_and_with_typos(
    directory: Directory, query: str, force: str, council: str | None
) -> None:
    match = directory.find_area(query)
    assert match is not None, query
    assert (match.police_force_area, match.local_authority) == (force, council)


@pytest.mark.parametrize(
    ("query", "force", "council"),
    [
        ("Aberystwyth", "dyfed-powys", "Ceredigion"),
        ("Llanelli", "dyfed-powys", "Carmarthenshire"),
        ("Y Fenni", "gwent", "Monmouthshire"),
        ("Caergybi", "north-wales", "Isle of Anglesey"),
        ("Dinbych-y-pysgod", "dyfed-powys", "Pembrokeshire"),
        ("Dinbych", "north-wales", "Denbighshire"),
        ("Barry", "south-wales", "Vale of Glamorgan"),
        ("Huddersfield", "west-yorkshire", "Kirklees"),
        ("Newport Pagnell", "thames-valley", "Milton Keynes"),
        ("I live in Swansee", "south-wales", "Swansea"),
        ("my partner lives near Carmarthen", "dyfed-powys", "Carmarthenshire"),
    ],
)
def test_towns_are_placed_in_their_council(
    directory: Directory, query: str, force: str, council: str
) -> None:
    match = directory.find_area(query)
    assert match is not None, query
    assert (match.police_force_area, match.local_authority) == (force, council)


@pytest.mark.parametrize(
    ("query", "force", "council"),
    [
        ("Newport, South Wales", "gwent", "Newport"),
        ("Newport South Wales", "gwent", "Newport"),
        ("I live in Newport, South Wales", "gwent", "Newport"),
        ("Newport, Gwent", "gwent", "Newport"),
        ("Newport, Wales", "gwent", "Newport"),
        ("Casnewydd, De Cymru", "gwent", "Newport"),
        ("Newport, Shropshire", "west-mercia", "Telford and Wrekin"),
        ("Newport in Shropshire", "west-mercia", "Telford and Wrekin"),
        ("Newport, Isle of Wight", "hampshire", "Isle of Wight"),
        ("Newport, Pembrokeshire", "dyfed-powys", "Pembrokeshire"),
        ("Newport, Pembs", "dyfed-powys", "Pembrokeshire"),
        ("Newport, Kent", "kent", "Kent"),
        ("Newport Pagnell", "thames-valley", "Milton Keynes"),
        ("Newcastle, Staffordshire", "staffordshire", "Newcastle-under-Lyme"),
        ("Newcastle upon Tyne", "northumbria", "Newcastle upon Tyne"),
        ("Swansea, South Wales", "south-wales", "Swansea"),
        ("Pontypool, South Wales", "gwent", "Torfaen"),
        ("Bangor, North Wales", "north-wales", "Gwynedd"),
        ("Rhyl North Wales", "north-wales", "Denbighshire"),
        ("Leeds, West Yorkshire", "west-yorkshire", "Leeds"),
        ("Chester, Cheshire", "cheshire", "Cheshire West and Chester"),
        ("South Wales, Newport", "gwent", "Newport"),
    ],
)
def test_a_town_named_with_its_region_is_placed_by_the_town(
    directory: Directory, query: str, force: str, council: str
) -> None:
    # "Newport, South Wales" was South Wales Police: the longest name said won, and Newport
    # is policed by Gwent. The region only tells apart towns of the same name.
    match = directory.find_area(query)
    assert match is not None, query
    assert (match.police_force_area, match.local_authority) == (force, council)


@pytest.mark.parametrize(
    ("query", "force", "council"),
    [
        ("Wrexham, near Chester", "north-wales", "Wrexham"),
        ("I live in Wrexham near Chester", "north-wales", "Wrexham"),
        ("Flintshire near Chester", "north-wales", "Flintshire"),
        ("Newport near Cardiff", "gwent", "Newport"),
        ("Newport, near Cardiff", "gwent", "Newport"),
        ("Newport near Bristol", "gwent", "Newport"),
        ("Newport near Swansea", "gwent", "Newport"),
        ("Newport near Bath", "gwent", "Newport"),
        ("I live in Swansea near Llanelli", "south-wales", "Swansea"),
        ("Abertawe ger Llanelli", "south-wales", "Swansea"),
        ("Newcastle near Durham", "northumbria", "Newcastle upon Tyne"),
        ("Newcastle near Carlisle", "northumbria", "Newcastle upon Tyne"),
        ("Swansea near Neath", "south-wales", "Swansea"),
        ("Cardiff near Penarth", "south-wales", "Cardiff"),
        ("Bristol near Bath", "avon-and-somerset", "Bristol"),
        ("Newcastle-under-Lyme near Stoke", "staffordshire", "Newcastle-under-Lyme"),
        ("just outside Newport", "gwent", "Newport"),
        ("Newport near Telford", "west-mercia", "Telford and Wrekin"),
        ("Newcastle near Stoke", "staffordshire", "Newcastle-under-Lyme"),
        ("Newport, nr Fishguard", "dyfed-powys", "Pembrokeshire"),
        ("my partner lives near Carmarthen", "dyfed-powys", "Carmarthenshire"),
    ],
)
def test_a_place_said_near_another_is_the_first_place(
    directory: Directory, query: str, force: str, council: str
) -> None:
    # "Wrexham, near Chester" was Cheshire: "near" made Chester the region said with
    # Wrexham, and a town more precise than a council took its place. A place said "near"
    # may still tell apart towns of the same name.
    match = directory.find_area(query)
    assert match is not None, query
    assert (match.police_force_area, match.local_authority) == (force, council)


@pytest.mark.parametrize(
    ("query", "force", "council"),
    [
        ("Newport, Mon", "gwent", "Newport"),
        ("Newport (Mon)", "gwent", "Newport"),
        ("Newport Mon.", "gwent", "Newport"),
        ("Newport, Essex", "essex", "Essex"),
        ("Berwick, East Sussex", "sussex", "East Sussex"),
        ("Newport on the Isle of Wight", "hampshire", "Isle of Wight"),
        ("Newport, South Wales", "gwent", "Newport"),
        ("South Wales, Newport", "gwent", "Newport"),
        ("Newport, Shropshire", "west-mercia", "Telford and Wrekin"),
        ("Leeds, West Yorkshire", "west-yorkshire", "Leeds"),
        ("Cardiff, Gwent", "south-wales", "Cardiff"),
    ],
)
def test_a_region_said_with_a_town_that_fits_none_of_its_namesakes(
    directory: Directory, query: str, force: str, council: str
) -> None:
    # "Newport, Mon" (Monmouthshire's old postal abbreviation) was Anglesey ("Môn"): an
    # abbreviation that fits no Newport is not taken instead of the town. A county named in
    # full may be where an unlisted namesake is ("Berwick, East Sussex").
    match = directory.find_area(query)
    assert match is not None, query
    assert (match.police_force_area, match.local_authority) == (force, council)


@pytest.mark.parametrize(
    ("query", "force", "council"),
    [
        ("Longtown", "cumbria", "Cumberland"),
        ("Longtown near Gretna", "cumbria", "Cumberland"),
        ("Kershopefoot", "cumbria", "Cumberland"),
        ("Metal Bridge", "cumbria", "Cumberland"),
        ("Cornhill", "northumbria", "Northumberland"),
        ("Wark", "northumbria", "Northumberland"),
        ("Etal", "northumbria", "Northumberland"),
        ("Crookham", "northumbria", "Northumberland"),
        ("Carham", "northumbria", "Northumberland"),
        ("Newcastle Emlyn", "dyfed-powys", "Carmarthenshire"),
        ("Castellnewydd Emlyn", "dyfed-powys", "Carmarthenshire"),
        ("Hay-on-Wye", "dyfed-powys", "Powys"),
        ("Hay on Wye", "dyfed-powys", "Powys"),
        ("Crookham, Hampshire", "hampshire", "Hart"),
        ("Church Crookham", "hampshire", "Hart"),
        ("Y Gelli Gandryll", "dyfed-powys", "Powys"),
    ],
)
def test_villages_by_the_borders_are_placed(
    directory: Directory, query: str, force: str, council: str
) -> None:
    match = directory.find_area(query)
    assert match is not None, query
    assert (match.police_force_area, match.local_authority) == (force, council)


@pytest.mark.parametrize(
    ("query", "force"),
    [("South Wales", "south-wales"), ("I live in South Wales", "south-wales"),
     ("North Wales", "north-wales"), ("Shropshire", "west-mercia")],
)  # fmt: skip
def test_a_region_said_alone_is_still_its_police_force_area(
    directory: Directory, query: str, force: str
) -> None:
    match = directory.find_area(query)
    assert match is not None and match.police_force_area == force


def test_a_same_named_town_said_alone_is_the_best_known_one(directory: Directory) -> None:
    newport = directory.find_area("Newport")
    assert newport is not None and newport.local_authority == "Newport"
    newcastle = directory.find_area("Newcastle")
    assert newcastle is not None and newcastle.police_force_area == "northumbria"


def test_a_town_named_with_a_place_none_of_its_namesakes_here_is_in_is_not_placed(
    directory: Directory,
) -> None:
    # Bangor in Gwynedd has a namesake in County Down.
    assert directory.find_area("Bangor, Northern Ireland") is None
    where = directory.elsewhere("Bangor, Northern Ireland")
    assert where is not None and where.en == "Northern Ireland"
    # A town we know, with a region none of its namesakes here is in: asked again, not
    # matched loosely to the one we know (Newcastle Emlyn is in Carmarthenshire).
    assert directory.find_area("Newcastle, Wales") is None
    found = directory.find_area("I live in Newport, my ex is in Edinburgh")
    assert found is not None and found.local_authority == "Newport"


@pytest.mark.parametrize(
    "query",
    [
        "I am worried about my anger",
        "my heart is racing",
        "Prefer not to say",
        "I hit my partner and need help",
        "yes please",
        "I have hay fever",
    ],
)
def test_ordinary_sentences_are_not_mistaken_for_places(directory: Directory, query: str) -> None:
    assert directory.find_area(query) is None


def test_the_full_postcode_is_not_kept_in_the_match(directory: Directory) -> None:
    match = directory.find_area("CF10 3AT")
    assert match is not None
    assert "3AT" not in repr(match) and "CF10" not in repr(match)


@pytest.mark.parametrize("query", ["", "   ", "EH1 1AA", "BT1 1AA", "qwertyuiop", "zz"])
def test_places_outside_england_and_wales_or_nonsense_find_nothing(
    directory: Directory, query: str
) -> None:
    assert directory.find_area(query) is None


def test_a_match_says_which_nation_it_is_in(directory: Directory) -> None:
    assert directory.find_area("Cardiff").nation == "wales"  # type: ignore[union-attr]
    assert directory.find_area("Leeds").nation == "england"  # type: ignore[union-attr]


def test_a_district_straddling_two_forces_names_the_other_one(directory: Directory) -> None:
    match = directory.find_area("SA9 1AA")
    assert match is not None
    assert match.police_force_area == "dyfed-powys"
    assert match.also_possible == ("south-wales",)


def test_every_police_force_area_of_england_and_wales_is_listed(directory: Directory) -> None:
    forces = directory.forces.values()
    assert len(directory.forces) == 43
    assert {f.id for f in forces if f.nation == "wales"} == {
        "dyfed-powys",
        "gwent",
        "north-wales",
        "south-wales",
    }
    assert directory.force("gwent").name("cy") == "Heddlu Gwent"
    assert directory.force("dyfed-powys").name("cy") == "Heddlu Dyfed-Powys"
    welsh_councils = [la for f in forces if f.nation == "wales" for la in f.local_authorities]
    assert len(welsh_councils) == 22
    assert directory.force("south-wales").local_authority("Cardiff").name("cy") == "Caerdydd"


ENGLISH_AND_WELSH_POSTCODE_AREAS = [
    "AL",
    "B",
    "BA",
    "BB",
    "BD",
    "BH",
    "BL",
    "BN",
    "BR",
    "BS",
    "CA",
    "CB",
    "CF",
    "CH",
    "CM",
    "CO",
    "CR",
    "CT",
    "CV",
    "CW",
    "DA",
    "DE",
    "DH",
    "DL",
    "DN",
    "DT",
    "DY",
    "E",
    "EC",
    "EN",
    "EX",
    "FY",
    "GL",
    "GU",
    "HA",
    "HD",
    "HG",
    "HP",
    "HR",
    "HU",
    "HX",
    "IG",
    "IP",
    "KT",
    "L",
    "LA",
    "LD",
    "LE",
    "LL",
    "LN",
    "LS",
    "LU",
    "M",
    "ME",
    "MK",
    "N",
    "NE",
    "NG",
    "NN",
    "NP",
    "NR",
    "NW",
    "OL",
    "OX",
    "PE",
    "PL",
    "PO",
    "PR",
    "RG",
    "RH",
    "RM",
    "S",
    "SE",
    "SG",
    "SK",
    "SL",
    "SM",
    "SN",
    "SO",
    "SP",
    "SR",
    "SS",
    "ST",
    "SW",
    "SY",
    "TA",
    "TF",
    "TN",
    "TQ",
    "TR",
    "TS",
    "TW",
    "UB",
    "W",
    "WA",
    "WC",
    "WD",
    "WF",
    "WN",
    "WR",
    "WS",
    "WV",
    "YO",
]


# SA has no whole-area default (Swansea and Neath Port Talbot are South Wales, the rest
# Dyfed-Powys): every geographic SA district is listed instead.
SA_DISTRICTS = [f"SA{n}" for n in (*range(1, 21), *range(31, 49), *range(61, 74))]


@pytest.mark.parametrize("district", SA_DISTRICTS)
def test_every_swansea_postcode_district_maps_to_a_welsh_force(
    directory: Directory, district: str
) -> None:
    match = directory.find_area(f"{district} 1AA")
    assert match is not None
    assert match.police_force_area in ("south-wales", "dyfed-powys")
    assert match.local_authority is not None


@pytest.mark.parametrize("area", ENGLISH_AND_WELSH_POSTCODE_AREAS)
def test_every_postcode_area_in_england_and_wales_maps_to_a_force(
    directory: Directory, area: str
) -> None:
    assert directory.find_area(f"{area}99 9ZZ") is not None


# --------------------------------------------------------------------------- services


def test_someone_worried_about_their_own_behaviour_is_offered_the_respect_phoneline(
    directory: Directory,
) -> None:
    ids = [s.id for s in directory.services_for("self")]
    assert "respect-phoneline" in ids
    assert "samaritans" in ids  # for anyone
    assert "mens-advice-line" not in ids


def test_live_fear_free_is_offered_in_wales_only(directory: Directory) -> None:
    assert "live-fear-free" in [s.id for s in directory.services_for("victim", "wales")]
    assert "live-fear-free" not in [s.id for s in directory.services_for("victim", "england")]


def test_services_can_be_picked_by_need(directory: Directory) -> None:
    crisis = [s.id for s in directory.services_for("self", topic="suicide")]
    assert crisis == ["samaritans", "shout", "nhs-111-mental-health"]
    assert [s.id for s in directory.services_for("child", topic="child-safety")] == ["childline"]


def test_an_unknown_audience_is_a_programming_error(directory: Directory) -> None:
    with pytest.raises(ValueError):
        directory.services_for("perpetrator")


def test_numbers_are_given_ready_to_dial(directory: Directory) -> None:
    samaritans = directory.service("samaritans")
    assert samaritans.contacts[0].dial == "116123"
    shout = directory.service("shout").contacts[0]
    assert (shout.dial, shout.keyword) == ("85258", "SHOUT")
    with pytest.raises(NotFound):
        directory.service("nope")


def test_values_flagged_check_in_the_domain_notes_are_marked_unconfirmed(
    directory: Directory,
) -> None:
    for service_id in ("respect-phoneline", "mens-advice-line", "galop", "nspcc-helpline"):
        assert directory.service(service_id).hours.needs_check
    welsh_line = directory.service("samaritans").contacts[1]
    assert welsh_line.dial == "08081640123" and welsh_line.needs_check
    assert "services.yaml: childline" in directory.unconfirmed_entries()


def _bilingual_fields(obj: Any, path: str) -> Iterator[tuple[str, Bilingual]]:
    if isinstance(obj, Bilingual):
        yield path, obj
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _bilingual_fields(getattr(obj, f.name), f"{path}.{f.name}")
    elif isinstance(obj, tuple):
        for n, item in enumerate(obj):
            yield from _bilingual_fields(item, f"{path}[{n}]")


def test_every_entry_has_welsh(directory: Directory) -> None:
    entries = [*directory.services, *directory.programmes, *directory.forces.values()]
    checked = 0
    for entry in entries:
        for path, text in _bilingual_fields(entry, entry.id):
            assert text.cy.strip(), path
            checked += 1
    assert checked > 300


# --------------------------------------------------------------------------- programmes


def _all_areas(directory: Directory) -> list[AreaMatch]:
    areas = []
    for f in directory.forces.values():
        areas.append(AreaMatch(f.id, None, f.nation, "police_force_area"))
        areas += [
            AreaMatch(f.id, la.names.en, f.nation, "local_authority") for la in f.local_authorities
        ]
    return areas


def test_drive_is_never_offered_to_someone_referring_themselves(directory: Directory) -> None:
    for area in _all_areas(directory):
        offered = directory.programmes_for(area, self_referral=True, include_placeholders=True)
        assert "drive" not in [p.id for p in offered], area
        assert all(p.self_referral for p in offered)
    assert not directory.programme("drive").self_referral


def test_practitioners_can_see_drive_where_it_runs(directory: Directory) -> None:
    area = directory.find_area("Cardiff")
    assert area is not None
    assert "drive" in [p.id for p in directory.programmes_for(area, self_referral=False)]


def test_unconfirmed_programmes_are_not_offered_to_people(directory: Directory) -> None:
    for area in _all_areas(directory):
        assert not any(p.placeholder for p in directory.programmes_for(area))
    llanelli = directory.find_area("SA15 1AA")
    assert llanelli is not None
    assert "dyfed-powys-choices" not in [p.id for p in directory.programmes_for(llanelli)]


def test_every_programme_people_can_refer_to_explains_partner_contact_first(
    directory: Directory,
) -> None:
    for p in directory.programmes:
        if p.self_referral:
            assert p.partner_contact and p.partner_contact_note is not None, p.id
            assert "partner" in p.partner_contact_note.en
            assert "partner" in p.partner_contact_note.cy


def test_programmes_cover_all_of_wales_and_several_english_areas(directory: Directory) -> None:
    covered = {a for p in directory.programmes for a in p.police_force_areas}
    assert {"dyfed-powys", "gwent", "north-wales", "south-wales"} <= covered
    english = {a for a in covered if directory.force(a).nation == "england"}
    assert len(english) >= 8


def test_a_programme_limited_to_some_councils_is_only_offered_there(directory: Directory) -> None:
    def ids(query: str) -> list[str]:
        area = directory.find_area(query)
        assert area is not None
        return [p.id for p in directory.programmes_for(area, include_placeholders=True)]

    assert "north-wales-caring-dads" in ids("Gwynedd")
    assert "north-wales-caring-dads" in ids("North Wales")  # council unknown: ask the adviser
    assert "north-wales-caring-dads" not in ids("Wrexham")
    assert "dyfed-powys-choices" in ids("SA15 1AA")


def test_a_programme_limited_to_some_councils_is_not_offered_on_the_edge_of_its_area(
    directory: Directory,
) -> None:
    # CH4 (Saltney) is Cheshire's, on the edge of Flintshire: Caring Dads, for Anglesey,
    # Gwynedd, Conwy and Denbighshire only, was listed there, as the edge's council is unknown.
    def ids(area: AreaMatch) -> list[str]:
        return [p.id for p in directory.programmes_for(area, include_placeholders=True)]

    edge = AreaMatch("north-wales", None, "wales", "edge")
    assert "north-wales-caring-dads" not in ids(edge)
    assert "north-wales-caring-dads" in ids(dataclasses.replace(edge, matched_by="stored"))
    south = AreaMatch("south-wales", None, "wales", "edge")
    assert "swansea-equilibrium" not in [
        p.id for p in directory.programmes_for(south, self_referral=False)
    ]


def test_no_unconfirmed_programme_carries_a_phone_number(directory: Directory) -> None:
    for p in directory.programmes:
        if p.placeholder:
            assert not [c for c in p.contacts if c.channel in ("phone", "text")], p.id


# --------------------------------------------------------------------------- phone numbers


@pytest.mark.parametrize(
    ("value", "dial"),
    [
        ("999", "999"),
        ("101", "101"),
        ("111", "111"),
        ("116 123", "116123"),
        ("0808 802 4040", "08088024040"),
        ("0808 80 10 800", "08088010800"),
        ("0800 1111", "08001111"),
        ("07860 077333", "07860077333"),
        ("85258", "85258"),
        ("+44 808 802 4040", "08088024040"),
        ("029 2000 0000", "02920000000"),
    ],
)
def test_real_uk_numbers_are_accepted(value: str, dial: str) -> None:
    assert normalise_uk_phone(value) == dial


@pytest.mark.parametrize(
    "value",
    [
        "0909 123 4567",
        "0845 123 4567",
        "0808 802 404",
        "12345",
        "0800 111",
        "help",
        "070 1234 5678",
    ],
)
def test_malformed_or_premium_numbers_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        normalise_uk_phone(value)


@pytest.mark.parametrize("value", ["999", "101", "116 123", "85258", "0808 802 4040"])
def test_a_call_back_is_never_booked_to_an_emergency_or_helpline_number(value: str) -> None:
    with pytest.raises(ValueError):
        normalise_uk_callback_number(value)


def test_a_call_back_can_go_to_a_mobile_or_landline() -> None:
    assert normalise_uk_callback_number("+44 7700 900123") == "07700900123"
    assert normalise_uk_callback_number("029 2000 0000") == "02920000000"


# --------------------------------------------------------------------------- broken content

Edit = Callable[[dict[str, Any]], None]


def _broken_copy(tmp_path: Path, file: str, edit: Edit) -> Path:
    root = tmp_path / "content"
    shutil.copytree(CONTENT / "directory", root / "directory")
    path = root / "directory" / file
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return root


def _service(data: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in data["services"] if s["id"] == sid)


def _programme(data: dict[str, Any], pid: str) -> dict[str, Any]:
    return next(p for p in data["programmes"] if p["id"] == pid)


def _del_welsh_name(d: dict[str, Any]) -> None:
    del _service(d, "galop")["name"]["cy"]


def _bad_phone(d: dict[str, Any]) -> None:
    _service(d, "samaritans")["contacts"][0]["value"] = "116 12"


def _no_verified_on(d: dict[str, Any]) -> None:
    del _service(d, "shout")["verified_on"]


def _duplicate_service(d: dict[str, Any]) -> None:
    d["services"].append(dict(_service(d, "shout")))


def _unknown_force(d: dict[str, Any]) -> None:
    _programme(d, "dyfed-powys-choices")["police_force_areas"] = ["dyfed-powis"]


def _empty_welsh_offer(d: dict[str, Any]) -> None:
    _programme(d, "gwent-community-programme")["offer"] = {"en": "A weekly group.", "cy": "  "}


def _drive_for_self_referral(d: dict[str, Any]) -> None:
    _programme(d, "drive")["self_referral"] = True


def _placeholder_with_phone(d: dict[str, Any]) -> None:
    _programme(d, "cleveland-dapp")["contacts"] = [{"channel": "phone", "value": "0800 123 4567"}]


def _no_partner_note(d: dict[str, Any]) -> None:
    del _programme(d, "hampshire-pathways-to-change")["partner_contact_note"]


def _welsh_council_without_welsh(d: dict[str, Any]) -> None:
    gwent = next(f for f in d["police_force_areas"] if f["id"] == "gwent")
    gwent["local_authorities"][0] = "Blaenau Gwent"


def _district_claimed_twice(d: dict[str, Any]) -> None:
    gwent = next(f for f in d["police_force_areas"] if f["id"] == "gwent")
    gwent["postcode_districts"] = ["CF10"]


def _namesake_abroad_not_here(d: dict[str, Any]) -> None:
    d["elsewhere"][0]["namesakes"] = ["Perth"]


def _town_in_unknown_council(d: dict[str, Any]) -> None:
    d["towns"]["Llandeilo"] = "Carmarthen"


@pytest.mark.parametrize(
    ("file", "edit", "expected"),
    [
        ("services.yaml", _del_welsh_name, "services.yaml: galop: name: the cy version"),
        ("services.yaml", _bad_phone, "services.yaml: samaritans: contacts[1]"),
        ("services.yaml", _no_verified_on, "services.yaml: shout: verified_on is missing"),
        ("services.yaml", _duplicate_service, "services.yaml: shout: id used twice"),
        ("programmes.yaml", _unknown_force, "programmes.yaml: dyfed-powys-choices: police_force"),
        (
            "programmes.yaml",
            _empty_welsh_offer,
            "programmes.yaml: gwent-community-programme: offer",
        ),
        ("programmes.yaml", _drive_for_self_referral, "programmes.yaml: drive: "),
        (
            "programmes.yaml",
            _placeholder_with_phone,
            "programmes.yaml: cleveland-dapp: a placeholder",
        ),
        ("programmes.yaml", _no_partner_note, "programmes.yaml: hampshire-pathways-to-change: "),
        ("areas.yaml", _welsh_council_without_welsh, "areas.yaml: gwent: local_authorities[1]"),
        (
            "areas.yaml",
            _district_claimed_twice,
            "south-wales: postcode district 'CF10' is mapped to gwent too",
        ),
        ("areas.yaml", _namesake_abroad_not_here, "areas.yaml: entry 1: namesakes: 'perth'"),
    ],
)
def test_a_broken_directory_fails_to_load_naming_file_and_entry(
    tmp_path: Path, file: str, edit: Edit, expected: str
) -> None:
    root = _broken_copy(tmp_path, file, edit)
    with pytest.raises(ContentError) as caught:
        Directory.load(root)
    assert expected in str(caught.value)


def test_a_missing_directory_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ContentError, match="directory/areas.yaml: file is missing"):
        Directory.load(tmp_path)


# --------------------------------------------------------------------------- review dates


def test_nothing_is_overdue_for_review_at_launch(directory: Directory) -> None:
    assert directory.stale_entries(date(2026, 11, 23)) == []


def test_entries_past_their_review_date_are_flagged(directory: Directory) -> None:
    stale = directory.stale_entries(date(2030, 1, 1))
    assert "services.yaml: samaritans (review was due 2027-05-31)" in stale
    assert len(stale) == len(directory.services) + len(directory.programmes)


def test_an_old_review_date_in_the_files_is_flagged(tmp_path: Path) -> None:
    def make_old(d: dict[str, Any]) -> None:
        _service(d, "galop")["review_due"] = date(2020, 1, 1)

    old = Directory.load(_broken_copy(tmp_path, "services.yaml", make_old))
    assert old.stale_entries(date(2026, 11, 23)) == [
        "services.yaml: galop (review was due 2020-01-01)"
    ]


@pytest.mark.parametrize(
    ("query", "force", "council"),
    [
        ("Southport, Lancashire", "merseyside", "Sefton"),
        ("Redcar, North Yorkshire", "cleveland", None),
        ("Grimsby, Lincolnshire", "humberside", None),
        ("Bournemouth, Hampshire", "dorset", None),
        ("Barrow in Furness, Lancashire", "cumbria", None),
        ("Chester, Wales", "cheshire", None),
        ("Shrewsbury, Wales", "west-mercia", None),
        ("Berwick, East Sussex", "sussex", "East Sussex"),
        ("Berwick", "northumbria", "Northumberland"),
    ],
)
def test_a_town_with_its_old_or_postal_county_is_that_town(
    directory: Directory, query: str, force: str, council: str | None
) -> None:
    # A county said in full after a town that has no namesake we list took its place
    # ("Southport, Lancashire" was Lancashire police, not Merseyside).
    match = directory.find_area(query)
    assert match is not None, query
    assert match.police_force_area == force, query
    if council is not None:
        assert match.local_authority == council, query


@pytest.mark.parametrize(
    "query", ["I'm on the English side", "I’m on my own", "I'm on the border", "Im on my own"]
)
def test_i_m_on_is_not_anglesey(directory: Directory, query: str) -> None:
    # "I'm on" read as "i m on", and "m on" as Môn: a natural answer to the question after a
    # postcode across the border placed them in North Wales.
    assert directory.find_area(query) is None
