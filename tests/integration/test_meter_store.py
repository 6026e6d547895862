"""Meter readings in the real databases (SQLite and PostgreSQL, by the Alembic migration),
and `hotline meters` through the real CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from call_router import meter_store
from call_router.db import Database
from call_router.meter_models import MeterReading
from tests.conftest import run_hotline

PAYER = "79927398713"
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
CALLER = "+79161110001"


def test_submit_check_correct_delete_and_history(database: Database) -> None:
    with database.session() as session:
        first = meter_store.submit(session, PAYER, "cold_water", "0100", T0, caller_number=CALLER)
        assert first.reading_id is not None
        # The same payer's other meter and another payer's do not interfere.
        meter_store.submit(session, PAYER, "hot_water", "50", T0, caller_number=CALLER)
        meter_store.submit(session, "4111111111111111", "cold_water", "900", T0)

    later = T0 + timedelta(days=30)
    with database.session() as session:
        low = meter_store.submit(session, PAYER, "cold_water", "99", later, caller_number=CALLER)
        assert (low.reading_id, low.check.problem, low.check.last) == (None, "below_last", 100)
        huge = meter_store.submit(session, PAYER, "cold_water", "500", later)
        assert huge.check.problem == "implausible_growth"
        typo = meter_store.submit(session, PAYER, "cold_water", "135", later, caller_number=CALLER)
        assert typo.reading_id is not None

    with database.session() as session:
        # Only the number that phoned it in may change it, within the window.
        assert meter_store.amendable(session, PAYER, "cold_water", "+79990000000", later) is None
        assert (
            meter_store.amendable(session, PAYER, "cold_water", CALLER, later + timedelta(days=5))
            is None
        )
        last = meter_store.amendable(session, PAYER, "cold_water", CALLER, later)
        assert last is not None and last.value == 135
        # A correction is checked against the reading before the one it replaces.
        assert (
            meter_store.check(session, PAYER, "cold_water", "99", later, replacing=last).problem
            == "below_last"
        )
        fixed = meter_store.submit(
            session, PAYER, "cold_water", "125", later, caller_number=CALLER, replacing=last
        )
        assert fixed.reading_id is not None

    with database.session() as session:
        current = meter_store.last_reading(session, PAYER, "cold_water")
        assert current is not None and current.value == 125
        meter_store.delete(session, current, later)

    with database.session() as session:
        rows = meter_store.history(session, PAYER, "cold_water")
        assert [(r.value, r.status) for r in rows] == [
            (125, "deleted"),
            (135, "corrected"),
            (100, "active"),
        ]
        assert rows[1].replaced_by_id == rows[0].id and rows[1].changed_at == later
        assert meter_store.last_reading(session, PAYER, "cold_water").value == 100  # type: ignore[union-attr]
        assert len(meter_store.history(session, PAYER)) == 4
        big = session.scalars(select(MeterReading).where(MeterReading.value == 900)).one()
        assert big.source == "phone" and big.caller_number is None


def test_largest_reading_fits_and_bad_payer_codes_are_refused(database: Database) -> None:
    with database.session() as session:
        stored = meter_store.submit(session, PAYER, "heat", "999999999", T0)
        assert stored.reading_id is not None
        for bad in ("", "12a", "1" * 33, "١٢٣"):
            with pytest.raises(ValueError, match="payer code"):
                meter_store.submit(session, bad, "heat", "1", T0)


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("HOTLINE_DATABASE_URL", raising=False)
    db = Database(f"sqlite:///{tmp_path / 'hotline.db'}")
    db.upgrade()
    return db


def meters_json(*args: str) -> Any:
    return json.loads(run_hotline("meters", *args, "--json").stdout.strip().splitlines()[-1])


def test_the_meters_cli(cli_db: Database) -> None:
    try:
        with cli_db.session() as session:
            meter_store.submit(session, PAYER, "cold_water", "100", T0, caller_number=CALLER)
            meter_store.submit(session, PAYER, "heat", "7", T0, caller_number=CALLER)
    finally:
        cli_db.dispose()
    added = meters_json("add", "--payer", PAYER, "--meter", "cold_water", "120")
    assert (added["value"], added["source"]) == (120, "cli")
    refused = run_hotline(
        "meters", "add", "--payer", PAYER, "--meter", "cold_water", "5", check=False
    )
    assert refused.returncode == 1 and "below_last" in refused.stderr

    current = meters_json("list", "--payer", PAYER)
    assert sorted((r["meter"], r["value"]) for r in current) == [("cold_water", 120), ("heat", 7)]
    history = meters_json("history", "--payer", PAYER, "--meter", "cold_water")
    assert [r["value"] for r in history] == [120, 100]
    text = run_hotline("meters", "history", "--payer", PAYER).stdout
    assert "cold_water" in text and "heat" in text

    bad_meter = run_hotline("meters", "list", "--payer", PAYER, "--meter", "gas", check=False)
    assert bad_meter.returncode == 2 and "unknown meter 'gas'" in bad_meter.stderr
    bad_payer = run_hotline("meters", "list", "--payer", "12;drop", check=False)
    assert bad_payer.returncode == 2 and "payer code" in bad_payer.stderr


async def test_the_read_only_meter_readings_api(database: Database, tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    import httpx

    from call_router.settings import Settings
    from dashboard.main import create_app
    from tests.conftest import bearer_headers

    with database.session() as session:
        meter_store.submit(session, PAYER, "cold_water", "100", T0, caller_number=CALLER)
        meter_store.submit(session, PAYER, "cold_water", "110", T0 + timedelta(days=20))
        meter_store.submit(session, PAYER, "heat", "7", T0)
    app = create_app(Settings(state_dir=tmp_path / "state"), database, zone=ZoneInfo("UTC"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard.test") as http:
        # Staff only: no credentials, no readings.
        anonymous = await http.get("/api/meter-readings", params={"payer": PAYER})
        assert anonymous.status_code in (401, 303)
        http.headers.update(bearer_headers(database))
        current = (await http.get("/api/meter-readings", params={"payer": PAYER})).json()
        assert sorted((r["meter"], r["value"]) for r in current) == [
            ("cold_water", 110),
            ("heat", 7),
        ]
        history = await http.get(
            "/api/meter-readings", params={"payer": PAYER, "meter": "cold_water", "history": 1}
        )
        assert [r["value"] for r in history.json()] == [110, 100]
        for bad in ({"payer": "12x"}, {"payer": PAYER, "meter": "gas"}, {}):
            assert (await http.get("/api/meter-readings", params=bad)).status_code == 422
