"""Areas (city → district → street → house): the matching rule, the CSV import, placing an
address, and an incident's typed areas (call_router/areas.py, call_router/areas_match.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from call_router import areas, incidents
from call_router.areas_match import covers, key, normalise, street_key
from call_router.db import Database
from call_router.flow_models import Area, Incident

CITY_CSV = """\
city,district,street,house,code
Irkutsk,Oktyabrsky,,,11
Irkutsk,Oktyabrsky,ул. Ленина,14,
Irkutsk,Oktyabrsky,Lenina,5,
Irkutsk,Pravoberezhny,,,22
Irkutsk,Pravoberezhny,Lenina,3,
Irkutsk,Pravoberezhny,Karla Marksa,,
"""


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'areas.db'}")
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def city(db: Database) -> Database:
    with db.session() as session:
        areas.import_rows(session, areas.parse_csv(CITY_CSV.encode()))
    return db


# --- the rule -----------------------------------------------------------------------------------


def test_a_districts_incident_reaches_its_streets_and_houses_and_no_other_district() -> None:
    district = "irkutsk/oktyabrsky"
    assert covers(district, "irkutsk/oktyabrsky")
    assert covers(district, "irkutsk/oktyabrsky/lenina")
    assert covers(district, "irkutsk/oktyabrsky/lenina/14")
    assert not covers(district, "irkutsk/pravoberezhny/lenina/3")
    assert not covers(district, "irkutsk")  # a caller placed only in the city: not theirs
    # A prefix of the key is not a parent: "oktyabrsky" does not hold "oktyabrsky-2".
    assert not covers(district, "irkutsk/oktyabrsky-2/lenina")


def test_a_houses_incident_does_not_reach_the_rest_of_its_street() -> None:
    assert covers("irkutsk/oktyabrsky/lenina/14", "irkutsk/oktyabrsky/lenina/14")
    assert not covers("irkutsk/oktyabrsky/lenina/14", "irkutsk/oktyabrsky/lenina/5")
    assert not covers("irkutsk/oktyabrsky/lenina/14", "irkutsk/oktyabrsky/lenina")


def test_an_incident_with_no_area_is_the_whole_citys_and_labels_still_match_exactly() -> None:
    assert Incident(areas=[]).matches(None)
    assert Incident(areas=[]).matches("irkutsk/oktyabrsky")
    assert Incident(areas=["irkutsk/oktyabrsky"]).matches("irkutsk/oktyabrsky/lenina/14")
    assert not Incident(areas=["irkutsk/oktyabrsky"]).matches(None)
    assert Incident(areas=["Lenina 5"]).matches(" lenina 5 ")
    assert not Incident(areas=["Lenina 5"]).matches("Lenina 7")
    assert not covers("", "irkutsk")


def test_keys_are_lower_case_letters_and_digits() -> None:
    assert key("ул. Ленина") == "ул-ленина"
    assert key("14/2") == "14-2"
    assert street_key("ул. Ленина") == street_key("Ленина") == "ленина"
    assert street_key("Lenina street") == "lenina"
    assert normalise(" Irkutsk / Oktyabrsky ") == "irkutsk/oktyabrsky"


# --- the import ---------------------------------------------------------------------------------


def test_import_adds_the_ancestors_a_line_implies(city: Database) -> None:
    with city.session() as session:
        listed = {a.path: (a.level, a.code) for a in areas.listing(session)}
    assert listed["irkutsk"] == (1, None)
    assert listed["irkutsk/oktyabrsky"] == (2, "11")
    assert listed["irkutsk/oktyabrsky/ул-ленина"] == (3, None)
    assert listed["irkutsk/oktyabrsky/ул-ленина/14"] == (4, None)
    assert listed["irkutsk/pravoberezhny/karla-marksa"] == (3, None)


def test_a_bad_file_is_refused_whole_with_every_bad_line() -> None:
    bad = "Irkutsk,,Lenina,,\nIrkutsk,A,,,11\nIrkutsk,B,,,11\nIrkutsk,C,,,12x\n,,,,\n"
    with pytest.raises(areas.AreaImportError) as caught:
        areas.parse_csv(bad.encode())
    lines = [line for line, _ in caught.value.errors]
    assert lines == [1, 3, 4]
    assert "district is empty" in caught.value.errors[0][1]


def test_a_code_another_area_keeps_is_refused_and_nothing_written(city: Database) -> None:
    with city.session() as session, pytest.raises(areas.AreaImportError, match="belongs to"):
        areas.import_rows(session, areas.parse_csv(b"Irkutsk,Sverdlovsky,,,11\n"))
    with city.session() as session:
        assert session.get(Area, "irkutsk/sverdlovsky") is None
    # Moved in one file (the old holder gets another code): accepted.
    moved = b"Irkutsk,Sverdlovsky,,,11\nIrkutsk,Oktyabrsky,,,13\n"
    with city.session() as session:
        areas.import_rows(session, areas.parse_csv(moved))
    with city.session() as session:
        assert areas.load_index(session).codes["11"] == "irkutsk/sverdlovsky"


# --- placing an address -------------------------------------------------------------------------


def test_an_address_is_placed_at_its_house_else_its_street(city: Database) -> None:
    with city.session() as session:
        index = areas.load_index(session)
    assert index.place("Ленина", "14") == "irkutsk/oktyabrsky/ул-ленина/14"
    assert index.place("ул. Ленина", "99") == "irkutsk/oktyabrsky/ул-ленина"
    assert index.place("Karla Marksa street", "1") == "irkutsk/pravoberezhny/karla-marksa"
    # "Lenina" is a street of two districts: the request's district decides, else nobody.
    assert index.place("Lenina", "3", "Pravoberezhny") == "irkutsk/pravoberezhny/lenina/3"
    assert index.place("Lenina", "5") is None
    assert index.place("Nowhere", "1") is None
    assert index.codes == {"11": "irkutsk/oktyabrsky", "22": "irkutsk/pravoberezhny"}


# --- an incident's areas ------------------------------------------------------------------------


def test_an_incident_stores_the_path_of_a_typed_area_and_refuses_an_unknown_one(
    city: Database,
) -> None:
    now = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)

    def new(typed: str) -> incidents.NewIncident:
        return incidents.validate(
            "water", "нет воды", "no water", areas=typed, now=now, tz_name=None
        )

    with city.session() as session:
        made = incidents.create(session, new("Irkutsk / Oktyabrsky, Lenina 5"), now)
        assert made.areas == ["irkutsk/oktyabrsky", "Lenina 5"]
        with pytest.raises(incidents.IncidentInputError) as caught:
            incidents.create(session, new("irkutsk/oktyabrskiy"), now)
    assert caught.value.problems[0].code == "unknown_area"
    assert "irkutsk/oktyabrskiy" in caught.value.problems[0].message


def test_before_any_area_is_imported_every_typed_area_is_a_label(db: Database) -> None:
    now = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    new = incidents.validate(
        "water", "нет воды", "no water", areas="Lenina 5/7, Mira", now=now, tz_name=None
    )
    with db.session() as session:
        assert incidents.create(session, new, now).areas == ["Lenina 5/7", "Mira"]
