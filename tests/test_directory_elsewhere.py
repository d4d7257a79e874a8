"""Places the directory must get right or plainly not place: outside England and Wales (told
so, never matched to a look-alike in England or Wales), short names typed close to another
place's, and Welsh place names after "yn" (yng Nghaerdydd, ym Mangor)."""

from __future__ import annotations

import pytest

from helpline.content import DEFAULT_ROOT
from helpline.directory import Directory


@pytest.fixture(scope="module")
def directory() -> Directory:
    return Directory.load(DEFAULT_ROOT)


@pytest.mark.parametrize(
    ("said", "where"),
    [
        ("Glasgow", "Scotland"),
        ("G1 1AA", "Scotland"),
        ("I live in Scotland", "Scotland"),
        ("Perth", "Scotland"),
        ("EH1", "Scotland"),
        ("Belfast", "Northern Ireland"),
        ("Derry", "Northern Ireland"),
        ("Newry", "Northern Ireland"),
        ("BT7 1NN", "Northern Ireland"),
        ("dwi'n byw yng Ngogledd Iwerddon", "Northern Ireland"),
        ("JE2 3AB", "Jersey"),
    ],
)
def test_a_place_outside_england_and_wales_is_recognised_not_matched_elsewhere(
    directory: Directory, said: str, where: str
) -> None:
    found = directory.elsewhere(said)
    assert found is not None and found.en == where
    assert directory.find_area(said) is None


@pytest.mark.parametrize("said", ["TD15 1AA", "Cardiff", "NP20 1AB", "Bangor", "Newport"])
def test_places_in_england_and_wales_are_not_elsewhere(directory: Directory, said: str) -> None:
    assert directory.elsewhere(said) is None
    assert directory.find_area(said) is not None


@pytest.mark.parametrize(
    ("said", "force", "council"),
    [
        ("Barrow", "cumbria", "Westmorland and Furness"),
        ("Barrow in Furness", "cumbria", "Westmorland and Furness"),
        ("Cardif", "south-wales", "Cardiff"),
        ("Swansee", "south-wales", "Swansea"),
    ],
)
def test_short_names_are_matched_to_the_right_place(
    directory: Directory, said: str, force: str, council: str
) -> None:
    found = directory.find_area(said)
    assert found is not None
    assert (found.police_force_area, found.local_authority) == (force, council)


@pytest.mark.parametrize(
    ("said", "council"),
    [
        ("yng Nghaerdydd", "Cardiff"),
        ("dwi'n byw yng Nghasnewydd", "Newport"),
        ("ym Mangor", "Gwynedd"),
        ("Sir Gâr", "Carmarthenshire"),
        ("ym Mhowys", "Powys"),
        ("yng Nghonwy", "Conwy"),
        ("yng Ngheredigion", "Ceredigion"),
        ("yn Nhorfaen", "Torfaen"),
        ("beth sydd ar gael yng Nghaerdydd?", "Cardiff"),
    ],
)
def test_welsh_place_names_after_yn_are_found(
    directory: Directory, said: str, council: str
) -> None:
    found = directory.find_area(said)
    assert found is not None and found.local_authority == council


@pytest.mark.parametrize(
    ("said", "council"),
    [
        ("I live in Newport, my ex is in Edinburgh", "Newport"),
        ("I moved from Glasgow to Cardiff last year", "Cardiff"),
        ("I'm Scottish but I live in Swansea", "Swansea"),
        ("Dw i'n byw yng Nghaerdydd ond dwi'n dod o'r Alban", "Cardiff"),
    ],
)
def test_a_place_here_named_beside_one_elsewhere_is_the_place_here(
    directory: Directory, said: str, council: str
) -> None:
    # A Scottish or Irish word anywhere in the answer was taken as "outside England and
    # Wales", whatever else it said.
    found = directory.find_area(said)
    assert found is not None and council in str(found.local_authority), found


@pytest.mark.parametrize("said", ["TD12 4AA", "td12", "TD9 7AA", "DG16 5AA"])
def test_a_postcode_district_across_the_scottish_border_is_not_called_outside(
    directory: Directory, said: str
) -> None:
    # TD12 is Coldstream, in Scotland, and Cornhill-on-Tweed and Mindrum, in Northumberland;
    # TD9 and DG16 reach into Cumbria. Told "outside England and Wales", someone in England
    # was turned away. Which side they are on cannot be told from the district: ask.
    assert directory.elsewhere(said) is None
    assert directory.find_area(said) is None
    across = directory.across_border(said)
    assert across is not None and across.en == "Scotland"


@pytest.mark.parametrize("said", ["TD15 1AA", "TD5 7AA", "Cardiff", "NP16 7AA", "CH4 8AA"])
def test_other_postcodes_are_not_across_the_scottish_border(
    directory: Directory, said: str
) -> None:
    assert directory.across_border(said) is None


@pytest.mark.parametrize(
    ("said", "force", "council"),
    [("Cornhill-on-Tweed", "northumbria", "Northumberland"),
     ("Cornhill on Tweed", "northumbria", "Northumberland"),
     ("Mindrum", "northumbria", "Northumberland"),
     ("Berwick-upon-Tweed", "northumbria", "Northumberland"),
     ("TD15 1AA", "northumbria", None)],
)  # fmt: skip
def test_the_english_side_of_the_border_is_placed(
    directory: Directory, said: str, force: str, council: str | None
) -> None:
    found = directory.find_area(said)
    assert found is not None and (found.police_force_area, found.local_authority) == (
        force,
        council,
    )


@pytest.mark.parametrize(
    "said", ["Coldstream", "Kelso", "Hawick", "North Berwick", "Berwickshire", "TD5 7AA"]
)
def test_the_scottish_side_of_the_border_is_outside(directory: Directory, said: str) -> None:
    # "North Berwick" is in East Lothian, not Berwick-upon-Tweed; "Berwickshire" (Coldstream,
    # Duns, Eyemouth) was taken for a typo of Berkshire.
    assert directory.find_area(said) is None
    found = directory.elsewhere(said)
    assert found is not None and found.en == "Scotland"


@pytest.mark.parametrize(
    ("said", "force"),
    [("Carlisle, near Scotland", "cumbria"),
     ("I live in Berwick near Scotland", "northumbria"),
     ("Berwick upon Tweed near Scotland", "northumbria"),
     ("I live in Leeds, Scotland is where I grew up", "west-yorkshire"),
     ("Cardiff, Wales", "south-wales")],
)  # fmt: skip
def test_a_town_here_said_with_a_country_it_has_no_namesake_in_is_placed(
    directory: Directory, said: str, force: str
) -> None:
    # A country said after any town was taken for a namesake abroad: someone in Carlisle,
    # near Scotland, was told the service does not cover them.
    found = directory.find_area(said)
    assert found is not None and found.police_force_area == force, found


@pytest.mark.parametrize(
    ("said", "where"),
    [("Bangor, Northern Ireland", "Northern Ireland"), ("Newport, Ireland", "Ireland"),
     ("Bangor in Northern Ireland", "Northern Ireland"), ("Bangor, Co Down", "Northern Ireland"),
     ("Newport, Co Mayo", "Ireland"), ("Newport, Glasgow", "Scotland")],
)  # fmt: skip
def test_a_town_with_a_namesake_abroad_said_with_its_country_is_outside(
    directory: Directory, said: str, where: str
) -> None:
    assert directory.find_area(said) is None
    found = directory.elsewhere(said)
    assert found is not None and found.en == where
