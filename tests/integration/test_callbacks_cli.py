"""`hotline callbacks …` through the real CLI on a real (SQLite) database: the commands an
operator without a browser uses, their JSON, and their refusals with stable codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from call_router import callback_intake
from call_router.db import Database
from call_router.models import utcnow
from tests.conftest import run_hotline


@pytest.fixture
def entry_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("HOTLINE_DATABASE_URL", raising=False)
    db = Database(f"sqlite:///{tmp_path / 'hotline.db'}")
    db.upgrade()
    try:
        with db.session() as session:
            entry = callback_intake.open_or_attach(
                session,
                caller_number="8 (495) 777-00-11",
                reason="abandoned_in_queue",
                queue="heating",
                call_id=None,
                now=utcnow(),
            )
            assert entry is not None
            return entry.id
    finally:
        db.dispose()


def cli_json(*args: str) -> Any:
    return json.loads(run_hotline("callbacks", *args, "--json").stdout.strip().splitlines()[-1])


def test_claim_release_outcome_and_history(entry_id: int) -> None:
    listed = cli_json("list")
    assert [row["id"] for row in listed] == [entry_id]
    assert listed[0]["caller_number"] == "+74957770011"  # one resident, one E.164 key

    claimed = cli_json("claim", str(entry_id), "--operator", "1001")
    assert claimed["claimed_by"] == "1001" and claimed["claimed_until"] is not None

    rival = run_hotline("callbacks", "claim", str(entry_id), "--operator", "1002", check=False)
    assert rival.returncode == 1 and rival.stderr.startswith("claimed:")

    released = cli_json("release", str(entry_id), "--operator", "1001")
    assert released["claimed_by"] is None

    done = cli_json("outcome", str(entry_id), "reached", "--operator", "1002", "--note", "ok")
    assert done["status"] == "closed" and done["resolved_by"] == "1002"
    assert cli_json("list") == []

    shown = cli_json("show", str(entry_id))
    assert [h["action"] for h in shown["history"]] == [
        "created",
        "claimed",
        "released",
        "outcome",
    ]


def test_refusals_name_the_problem(entry_id: int) -> None:
    bad = run_hotline("callbacks", "outcome", str(entry_id), "maybe", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("bad_outcome:")
    naive = run_hotline(
        "callbacks", "outcome", str(entry_id), "retry", "--at", "2026-11-24T10:00", check=False
    )
    assert naive.returncode == 1 and "time zone" in naive.stderr
    missing = run_hotline("callbacks", "show", "999999", check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("not_found:")
    # The entry is untouched by the refusals.
    assert cli_json("show", str(entry_id))["status"] == "open"
