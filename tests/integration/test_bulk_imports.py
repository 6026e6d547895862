"""Imports and exports at the sizes their own limits allow (payer_accounts.MAX_ROWS = 200_000,
buildings.MAX_ROWS = 100_000), on SQLite and PostgreSQL.

Found by playing attacker (2026-12-06): one `IN (...)` of every code was more bind parameters
than PostgreSQL's protocol takes (65 535), so a city's billing export could never be imported
and a month with that many readings could not be exported (call_router/sql_in.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from call_router import buildings, payer_accounts, tenants
from call_router.db import Database
from call_router.meter_models import MeterReading

MANY = 70_000  # within MAX_ROWS, beyond 65 535


def test_a_billing_export_of_70000_accounts_imports(database: Database) -> None:
    text = "".join(f"{100000 + i},Lenina {i}\n" for i in range(MANY))
    rows = payer_accounts.parse_csv(text.encode())  # the file is accepted
    with database.session() as session:
        result = payer_accounts.import_accounts(session, rows, None)
    assert result.accounts_added == MANY


def test_a_month_of_70000_readings_exports(database: Database) -> None:
    at = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    with database.session() as session:
        session.execute(
            insert(MeterReading),
            [
                {
                    "payer_code": str(100000 + i),
                    "meter": "cold_water",
                    "value": 1,
                    "submitted_at": at,
                }
                for i in range(MANY)
            ],
        )
    with database.session() as session:
        out = payer_accounts.month_readings(
            session, payer_accounts.parse_month("2026-11"), ZoneInfo("Europe/Moscow")
        )
    assert len(out) == MANY


def test_a_tenant_with_70000_coded_buildings_imports(database: Database) -> None:
    text = "".join(f"Lenina,{i},{i + 1}\n" for i in range(MANY))
    rows = buildings.parse_csv(text.encode())  # the file is accepted
    with database.session() as session:
        tenants.add_tenant(session, "Acme", slug="acme")
        result = buildings.import_buildings(session, "acme", rows)
    assert result.added == MANY
