"""`hotline buildings import`: the CSV of a tenant's buildings is checked line by line; a bad
line refuses the whole file with every bad line named, and nothing is half-imported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from call_router import buildings, tenants
from call_router.buildings import BuildingImportError, BuildingRow, parse_csv
from call_router.db import Database
from call_router.tenant_models import Building


def rows(text: str) -> list[tuple[str, str, str | None]]:
    return [(r.street, r.house, r.code) for r in parse_csv(text.encode())]


def errors(data: bytes) -> list[tuple[int, str]]:
    with pytest.raises(BuildingImportError) as caught:
        parse_csv(data)
    return caught.value.errors


def test_a_good_file_with_header_semicolons_bom_and_cyrillic() -> None:
    assert rows("street,house,code\nЛенина,5,1234\nКарла Маркса, 12а ,\n\n") == [
        ("Ленина", "5", "1234"),
        ("Карла Маркса", "12а", None),
    ]
    assert rows("\ufeffулица Ленина;5;77\nМира;1\n") == [
        ("улица Ленина", "5", "77"),
        ("Мира", "1", None),
    ]
    assert rows('"Lenina, corner";"5/1";"9"\n') == [("Lenina, corner", "5/1", "9")]


def test_every_bad_line_is_named_with_its_reason() -> None:
    data = (
        "street,house,code\n"
        "Lenina,5,1234\n"  # 2: fine
        ",6,1\n"  # 3: no street
        "Mira,,2\n"  # 4: no house
        "Mira,7,12ab\n"  # 5: code not digits
        "Mira,8,123456789\n"  # 6: code too long
        "Lenina,9,1234\n"  # 7: code repeated
        "lenina,5,\n"  # 8: the same address as line 2
        "Mira\n"  # 9: one column
        "Mira,1,2,3\n"  # 10: four columns
        f"{'x' * 200},1\n"  # 11: street too long
    ).encode()
    found = dict(errors(data))
    assert sorted(found) == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert "street is empty" in found[3]
    assert "house is empty" in found[4]
    assert "1-8 digits" in found[5] and "1-8 digits" in found[6]
    assert "line 2" in found[7] and "line 2" in found[8]


def test_files_that_are_not_csv_text_are_refused_whole() -> None:
    assert "not UTF-8" in errors(b"Lenina,5,1\n\xff\xfe,1\n")[0][1]
    assert "NUL" in errors(b"Lenina,5\x00,1\n")[0][1]
    assert "no buildings" in errors(b"street,house,code\n\n")[0][1]
    assert "larger than" in errors(b"x" * (buildings.MAX_FILE_BYTES + 1))[0][1]
    assert "unreadable CSV" in errors(b'Lenina,"5\n')[0][1]


def test_control_characters_never_reach_the_store() -> None:
    assert rows("Len\x1bina,5\u2028,1\n") == [("Len ina", "5", "1")]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'calls.db'}")
    database.upgrade()
    with database.session() as session:
        tenants.add_tenant(session, "Dom A", slug="dom-a")
        tenants.add_tenant(session, "Dom B", slug="dom-b")
    yield database
    database.dispose()


def stored(db: Database) -> list[tuple[str, str, str, str | None]]:
    with db.session() as session:
        slugs = tenants.slugs(session)
        return sorted(
            (slugs[b.tenant_id], b.street, b.house, b.code) for b in session.query(Building).all()
        )


def test_import_adds_updates_and_refuses_a_code_of_another_building_whole(db: Database) -> None:
    with db.session() as session:
        first = buildings.import_buildings(session, "dom-a", parse_csv(b"Lenina,5,11\nMira,1,12\n"))
        assert (first.added, first.updated) == (2, 0)
    # Re-importing the same addresses swaps their codes: an update, not a clash.
    with db.session() as session:
        again = buildings.import_buildings(session, "dom-a", parse_csv(b"Lenina,5,12\nMira,1,11\n"))
        assert (again.added, again.updated) == (0, 2)
    before = stored(db)
    assert before == [("dom-a", "Lenina", "5", "12"), ("dom-a", "Mira", "1", "11")]

    # Another tenant's file naming a taken code: refused, not even its good lines written.
    with pytest.raises(BuildingImportError) as caught, db.session() as session:
        buildings.import_buildings(session, "dom-b", parse_csv(b"Gorkogo,3,31\nSadovaya,2,11\n"))
    assert caught.value.errors == [(2, "code 11 already belongs to another building")]
    assert stored(db) == before

    with pytest.raises(tenants.TenantError), db.session() as session:
        buildings.import_buildings(session, "nobody", [BuildingRow(1, "Lenina", "5", None)])


def test_known_building_from_a_registered_phone_and_a_code(db: Database) -> None:
    with db.session() as session:
        result = buildings.import_buildings(session, "dom-b", parse_csv(b"Gorkogo,3,31\n"))
        building = result.buildings[0].id
        phone = buildings.register_phone(session, "8 (914) 000-00-01", building, "RU")
        assert phone.phone == "+79140000001"
        with pytest.raises(tenants.TenantError):
            buildings.register_phone(session, "anonymous", building, "RU")
        with pytest.raises(tenants.TenantError):
            buildings.register_phone(session, "+79140000002", building + 100, "RU")
    with db.session() as session:
        known = buildings.known_building(session, "+79140000001")
        dom_b = tenants.require_tenant(session, "dom-b").id
        assert known is not None and (known.building_id, known.tenant_id) == (building, dom_b)
        assert known.source == "phone"
        assert buildings.known_building(session, "+79140000009") is None
        assert buildings.building_by_code(session, "31") == (building, dom_b)
        assert buildings.building_by_code(session, "32") is None
