"""Payer accounts from billing (`hotline meters import`), checked by the meters menu, and the
month's readings exported back (`hotline meters export`, /meters, /meters.csv), in the real
databases (SQLite and PostgreSQL) and through the real CLI; behind the tenant wall."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from call_router import accounts, meter_store, payer_accounts, tenants
from call_router.callbacks import hotline_zone
from call_router.db import Database
from call_router.meter_models import PayerAccount, PayerMeter
from call_router.payer_accounts import AccountImportError
from call_router.settings import Settings
from tests.conftest import run_hotline
from tests.integration.test_meter_store import cli_db  # noqa: F401  (fixture)

MOSCOW = ZoneInfo("Europe/Moscow")
A_CODE, B_CODE, C_CODE = "79927398713", "4000000006", "12345674"
NOV = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
BILLING = (
    "payer_code;address;meter;serial;last_reading;last_read_on\n"
    f"{A_CODE};Lenina 5, flat 12;cold_water;CW-1;600;25.10.2026\n"
    f"{A_CODE};Lenina 5, flat 12;hot_water;HW-1;300;2026-10-25\n"
    f'{C_CODE};=HYPERLINK("http://x");;;;\n'
)


def load(db: Database, text: str, tenant_id: int | None = None) -> payer_accounts.AccountImport:
    with db.session() as session:
        return payer_accounts.import_accounts(
            session, payer_accounts.parse_csv(text.encode()), tenant_id
        )


def counts(db: Database) -> tuple[int, int]:
    with db.session() as session:
        return (
            session.scalar(select(func.count()).select_from(PayerAccount)) or 0,
            session.scalar(select(func.count()).select_from(PayerMeter)) or 0,
        )


def test_accounts_are_imported_checked_and_updated(database: Database) -> None:
    with database.session() as session:
        # Before any import every code and meter is taken (the check digit is the only check).
        assert payer_accounts.account_known(session, "999")
        assert payer_accounts.meter_known(session, "999", "heat")
    result = load(database, BILLING)
    assert (result.accounts_added, result.meters_added) == (2, 2)
    assert result.without_check_digit == []
    with database.session() as session:
        assert payer_accounts.account_known(session, A_CODE)
        assert not payer_accounts.account_known(session, B_CODE)
        assert payer_accounts.meter_known(session, A_CODE, "cold_water")
        assert not payer_accounts.meter_known(session, A_CODE, "heat")
        assert payer_accounts.meter_known(session, C_CODE, "heat")  # billing lists none
        base = payer_accounts.billing_baseline(session, A_CODE, "cold_water")
        assert base is not None and base.value == 600
        # Billing's reading is the baseline: lower is refused, as after a phoned reading.
        refused = meter_store.submit(session, A_CODE, "cold_water", "590", NOV)
        assert refused.check.problem == "below_last" and refused.check.last == 600
        assert meter_store.submit(session, A_CODE, "cold_water", "612", NOV).reading_id

    # Next month's file: a new baseline and a new address; meters it omits are kept.
    again = load(database, f"{A_CODE},Lenina 5/12,cold_water,CW-2,640,2026-11-25\n")
    assert (again.accounts_updated, again.meters_updated, again.meters_added) == (1, 1, 0)
    with database.session() as session:
        account = session.scalars(select(PayerAccount).where(PayerAccount.code == A_CODE)).one()
        assert account.address == "Lenina 5/12"
        base = payer_accounts.billing_baseline(session, A_CODE, "cold_water")
        assert base is not None and base.value == 640
    assert counts(database) == (2, 2)


def test_a_bad_file_or_another_tenants_account_imports_nothing(database: Database) -> None:
    with database.session() as session:
        dom_a = tenants.add_tenant(session, "Dom A", slug="dom-a").id
        dom_b = tenants.add_tenant(session, "Dom B", slug="dom-b").id
    load(database, f"{A_CODE},Lenina 5,cold_water,,,\n", dom_a)
    bad = (
        "payer_code,address,meter,serial,last_reading,last_read_on\n"
        f"{B_CODE},Mira 1,cold_water,,10,2026-10-01\n"  # 2: fine
        "12ab,Mira 2,,,,\n"  # 3: not digits
        f"{B_CODE},Mira 9,,,,\n"  # 4: another address for the same account
        f"{B_CODE},Mira 1,gas,,,\n"  # 5: unknown meter
        f"{B_CODE},Mira 1,cold_water,,11,2026-10-01\n"  # 6: the meter twice
        f"{B_CODE},Mira 1,heat,,12,\n"  # 7: a reading without its date
        f"{B_CODE},Mira 1,hot_water,,1,31.02.2026\n"  # 8: no such date
        f"{B_CODE},,,,,\n"  # 9: no address
    )
    with pytest.raises(AccountImportError) as caught:
        load(database, bad, dom_b)
    assert [n for n, _ in caught.value.errors] == [3, 4, 5, 6, 7, 8, 9]
    assert "line 2" in dict(caught.value.errors)[4]
    assert counts(database) == (1, 1)  # only tenant A's account and meter
    # Tenant B may not take over (or overwrite) tenant A's account.
    with pytest.raises(AccountImportError, match="belongs to another company"):
        load(database, f"{A_CODE},Lenina 5,cold_water,,999,2026-10-01\n", dom_b)
    with database.session() as session:
        assert payer_accounts.billing_baseline(session, A_CODE, "cold_water") is None
    for junk in (b"\xff\xfe", b"a,b\x00", b""):
        with pytest.raises(AccountImportError):
            payer_accounts.parse_csv(junk)


def test_the_months_export_takes_each_meters_current_reading_in_local_time(
    database: Database,
) -> None:
    load(database, BILLING)
    late_nov_utc = datetime(2026, 11, 30, 22, 30, tzinfo=UTC)  # 1 December, 01:30 in Moscow
    with database.session() as session:
        first = meter_store.submit(session, A_CODE, "cold_water", "612", NOV)
        meter_store.submit(session, A_CODE, "hot_water", "310", NOV)
        meter_store.submit(session, C_CODE, "heat", "7", NOV)
        # A correction replaces the first cold-water reading: only the new one is exported.
        row = meter_store.last_reading(session, A_CODE, "cold_water")
        assert row is not None and row.id == first.reading_id
        meter_store.submit(session, A_CODE, "cold_water", "615", NOV, replacing=row)
        meter_store.submit(session, A_CODE, "cold_water", "620", late_nov_utc)
        november = payer_accounts.month_readings(session, datetime(2026, 11, 1).date(), MOSCOW)
        december = payer_accounts.month_readings(session, datetime(2026, 12, 1).date(), MOSCOW)
    assert [(r.payer_code, r.meter, r.value) for r in november] == [
        (C_CODE, "heat", 7),
        (A_CODE, "cold_water", 615),
        (A_CODE, "hot_water", 310),
    ]
    cold = november[1]
    assert (cold.address, cold.serial, cold.previous_value, cold.previous_read_on) == (
        "Lenina 5, flat 12",
        "CW-1",
        600,
        "2026-10-25",
    )
    assert [(r.meter, r.value, r.submitted_at) for r in december] == [
        ("cold_water", 620, "2026-12-01T01:30:00+03:00")
    ]
    # The billing file's text cannot run as a formula in a spreadsheet.
    assert payer_accounts.csv_row(november[0])[1] == '\'=HYPERLINK("http://x")'


async def test_tenants_see_the_readings_of_their_own_accounts_only(
    database: Database, tmp_path: Path
) -> None:
    from dashboard.main import create_app

    with database.session() as session:
        dom_a = tenants.add_tenant(session, "Dom A", slug="dom-a").id
        dom_b = tenants.add_tenant(session, "Dom B", slug="dom-b").id
    load(database, f"{A_CODE},Lenina 5,cold_water,,,\n", dom_a)
    load(database, f"{B_CODE},Mira 1,cold_water,,,\n", dom_b)
    with database.session() as session:
        # Phoned in on the centre's number (or typed in by the CLI): no tenant's call.
        for code, value in ((A_CODE, "111"), (B_CODE, "222"), (C_CODE, "333")):
            assert meter_store.submit(session, code, "cold_water", value, NOV).reading_id

    def token(role: str, tenant: str | None) -> dict[str, str]:
        with database.session() as session:
            clear, _ = accounts.create_token(
                session, role, name=f"t-{tenant}", now=NOV, tenant=tenant
            )
        return {"Authorization": f"Bearer {clear}"}

    app = create_app(Settings(state_dir=tmp_path / "state"), database, zone=ZoneInfo("UTC"))
    transport = httpx.ASGITransport(app=app)
    month = {"month": "2026-11"}
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard.test") as http:

        async def seen(headers: dict[str, str], **extra: str) -> list[str]:
            got = await http.get(
                "/api/meter-readings/month", params={**month, **extra}, headers=headers
            )
            assert got.status_code == 200, got.text
            return sorted(r["payer_code"] for r in got.json()["rows"])

        centre, a_sup = token("supervisor", None), token("supervisor", "dom-a")
        assert await seen(centre) == sorted([A_CODE, B_CODE, C_CODE])
        assert await seen(centre, tenant="dom-b") == [B_CODE]
        assert await seen(centre, tenant="centre") == [C_CODE]
        assert await seen(a_sup) == [A_CODE]
        assert await seen(a_sup, tenant="dom-b") == []  # a filter never widens the wall
        # The same wall on the page, the CSV and the per-payer API of every staff member.
        page = await http.get("/meters", params=month, headers=a_sup)
        assert page.status_code == 200 and A_CODE in page.text and B_CODE not in page.text
        csv_text = (await http.get("/meters.csv", params=month, headers=a_sup)).text
        assert [r["payer_code"] for r in csv.DictReader(io.StringIO(csv_text))] == [A_CODE]
        other = await http.get("/api/meter-readings", params={"payer": B_CODE}, headers=a_sup)
        assert other.json() == []
        # Operators and anonymous visitors get no month's list; bad months are 422.
        operator = token("operator", None)
        assert (await http.get("/meters", params=month, headers=operator)).status_code == 403
        assert (await http.get("/meters.csv", params=month)).status_code in (401, 303)
        bad = await http.get(
            "/api/meter-readings/month", params={"month": "2026-13"}, headers=centre
        )
        assert bad.status_code == 422


def test_import_and_export_through_the_cli(cli_db: Database, tmp_path: Path) -> None:  # noqa: F811
    cli_db.dispose()
    good = tmp_path / "billing.csv"
    good.write_text(BILLING, encoding="utf-8")
    info: Any = json.loads(run_hotline("meters", "import", str(good), "--json").stdout)
    assert info["accounts_added"] == 2 and info["meters_added"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{B_CODE},Mira,cold_water,,x,2026-10-01\n", encoding="utf-8")
    refused = run_hotline("meters", "import", str(bad), check=False)
    assert (
        refused.returncode == 2
        and "line 1" in refused.stderr
        and "nothing imported" in refused.stderr
    )
    unknown = run_hotline("meters", "import", str(good), "--tenant", "nobody", check=False)
    assert unknown.returncode == 2 and "nobody" in unknown.stderr

    run_hotline("meters", "add", "--payer", A_CODE, "--meter", "cold_water", "650")
    # The month the reading went into: the centre's local month (`--month` is read in the
    # centre's zone), not UTC's, which differs in the first or last hours of a month.
    month = datetime.now(hotline_zone(Settings())).strftime("%Y-%m")
    exported = run_hotline("meters", "export", "--month", month).stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [(r["payer_code"], r["meter"], r["value"], r["previous_value"]) for r in rows] == [
        (A_CODE, "cold_water", "650", "600")
    ]
    as_json = json.loads(run_hotline("meters", "export", "--month", month, "--json").stdout)
    assert as_json[0]["address"] == "Lenina 5, flat 12"
    wrong = run_hotline("meters", "export", "--month", "December", check=False)
    assert wrong.returncode == 2 and "YYYY-MM" in wrong.stderr
