"""The tenant wall, attacked through the real app (uvicorn on a loopback port, real database:
SQLite and PostgreSQL): a tenant's supervisor, operator and API token guess another tenant's
call and callback ids and filters, and get nothing - a 404 for an id (never a 403 that would
confirm it exists), only their own rows in lists, CSV exports and summaries. The centre's
staff see every tenant's rows and filter them with `?tenant=`. The wall: call_router/tenant_wall.py.
"""

from __future__ import annotations

import csv
import io
import uuid
import wave
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from call_router import tenants
from call_router.db import Database
from call_router.models import CALLBACK_OPEN, Call, Callback, CallEvent, Operator
from call_router.settings import Settings
from tests.conftest import PORT_BASE, add_row, bearer_headers
from tests.integration.conftest import signed_in_operator

NOW = datetime.now(UTC)


@dataclass(frozen=True)
class World:
    a_call: int
    b_call: int
    centre_call: int
    a_callback: int
    b_callback: int
    centre_callback: int


def _call(db: Database, tenant_id: int | None, number: str, minutes_ago: int) -> int:
    call = Call(
        linkedid=uuid.uuid4().hex,
        caller_number=number,
        started_at=NOW - timedelta(minutes=minutes_ago),
        queue="plumbing",
        operator=f"op-of-{number}",
        tenant_id=tenant_id,
    )
    return add_row(db, call)


def _callback(db: Database, tenant_id: int | None, number: str, call_id: int) -> int:
    entry = Callback(
        caller_number=number,
        status=CALLBACK_OPEN,
        reason="abandoned",
        last_call_id=call_id,
        created_at=NOW,
        updated_at=NOW,
        tenant_id=tenant_id,
    )
    return add_row(db, entry)


@pytest.fixture
def world(database: Database) -> World:
    with database.session() as session:
        a = tenants.add_tenant(session, "Dom A", slug="dom-a").id
        b = tenants.add_tenant(session, "Dom B", slug="dom-b").id
        session.add(Operator(name="Anna", sip_login="anna", sip_password="x" * 16, tenant_id=a))
    a_call = _call(database, a, "79140000001", 3)
    b_call = _call(database, b, "79140000002", 2)
    centre_call = _call(database, None, "79140000003", 1)
    return World(
        a_call=a_call,
        b_call=b_call,
        centre_call=centre_call,
        a_callback=_callback(database, a, "79140000001", a_call),
        b_callback=_callback(database, b, "79140000002", b_call),
        centre_callback=_callback(database, None, "79140000003", centre_call),
    )


@pytest.fixture
def base(serve: Callable[[Settings, int], str], tmp_path: Path) -> str:
    settings = Settings(
        state_dir=tmp_path / "state", recordings_dir=tmp_path / "recordings", country_code="RU"
    )
    return serve(settings, PORT_BASE + 950)


def _recorded(db: Database, call_id: int, recordings: Path) -> str:
    """A real recording of the call (the MixMonitor file its `recording` event names) and a
    voicemail; the recording's path relative to the recordings folder."""
    relative = f"calls/2026-12-01/{call_id}.wav"
    for name in (relative, f"voicemail/vm-{call_id}.wav"):
        path = recordings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\x01\x00" * 8000)
    with db.session() as session:
        for kind, name in (("recording", relative), ("voicemail", f"voicemail/vm-{call_id}.wav")):
            session.add(
                CallEvent(call_id=call_id, at=NOW, kind=kind, key=f"{kind}:1", data={"file": name})
            )
    return relative


def _ids(response: httpx.Response) -> set[int]:
    assert response.status_code == 200, response.text
    return {row["id"] for row in response.json()}


def test_a_tenant_supervisor_guessing_other_ids_gets_404(
    database: Database, world: World, base: str
) -> None:
    with httpx.Client(
        base_url=base, headers=bearer_headers(database, "supervisor", tenant="dom-a")
    ) as api:
        # Guessed ids: 404, exactly as for an id that does not exist.
        for other in (world.b_call, world.centre_call):
            assert api.get(f"/api/calls/{other}").status_code == 404
            assert api.get(f"/calls/{other}").status_code == 404
            audio = api.get(f"/calls/{other}/audio/utterance")
            assert audio.status_code == 404 and audio.json()["detail"] == "call not found"
        assert api.get(f"/api/calls/{world.a_call}").json()["tenant"] == "dom-a"
        for other in (world.b_callback, world.centre_callback):
            assert api.get(f"/api/callbacks/{other}").status_code == 404
            # Acting on a guessed id: the supervisor claims and closes for its operator.
            claim = api.post(f"/api/callbacks/{other}/claim", json={"operator": "anna"})
            assert claim.status_code == 404, claim.text
            close = api.post(
                f"/api/callbacks/{other}/outcome", json={"outcome": "reached", "operator": "anna"}
            )
            assert close.status_code == 404, close.text
            assert api.post(f"/api/callbacks/{other}/release", json={}).status_code == 404
        assert api.get(f"/api/callbacks/{world.a_callback}").status_code == 200

    with database.session() as session:
        for other in (world.b_callback, world.centre_callback):
            entry = session.get(Callback, other)
            assert entry is not None
            assert entry.status == CALLBACK_OPEN and entry.claimed_by is None


def test_a_tenant_supervisor_lists_and_exports_only_its_own_rows(
    database: Database, world: World, base: str
) -> None:
    with httpx.Client(
        base_url=base, headers=bearer_headers(database, "supervisor", tenant="dom-a")
    ) as api:
        calls = api.get("/api/calls")
        assert _ids(calls) == {world.a_call}
        assert [row["tenant"] for row in calls.json()] == ["dom-a"]
        # Filters only narrow the wall: another tenant's slug, or the centre, is empty.
        assert _ids(api.get("/api/calls", params={"tenant": "dom-b"})) == set()
        assert _ids(api.get("/api/calls", params={"tenant": "centre"})) == set()
        assert _ids(api.get("/api/calls", params={"tenant": "dom-a"})) == {world.a_call}
        # The CSV export and the call log's filter options.
        export = api.get("/calls/export.csv")
        assert export.status_code == 200
        rows = list(csv.DictReader(io.StringIO(export.text)))
        assert [int(row["id"]) for row in rows] == [world.a_call]
        assert rows[0]["tenant"] == "dom-a"
        page = api.get("/calls")
        assert page.status_code == 200
        assert "op-of-79140000001" in page.text and "op-of-79140000002" not in page.text

        callbacks = api.get("/api/callbacks", params={"status": "all"})
        assert _ids(callbacks) == {world.a_callback}
        assert callbacks.json()[0]["tenant"] == "dom-a"
        assert api.get("/api/callbacks/summary").json()["open"] == 1


def test_a_tenant_operator_cannot_touch_another_tenants_callbacks(
    database: Database, world: World, base: str
) -> None:
    cookies, csrf = signed_in_operator(database, "anna-a", "anna", "dom-a")
    with httpx.Client(base_url=base, cookies=cookies, headers=csrf) as api:
        assert api.post(f"/api/callbacks/{world.b_callback}/claim", json={}).status_code == 404
        assert api.get(f"/api/calls/{world.b_call}").status_code == 404
        assert _ids(api.get("/api/calls")) == {world.a_call}
        assert _ids(api.get("/api/callbacks")) == {world.a_callback}
        assert api.get(f"/callbacks/{world.b_callback}/history").status_code == 404
        # Its own tenant's entry: the same request works.
        own = api.post(f"/api/callbacks/{world.a_callback}/claim", json={})
        assert own.status_code == 200, own.text
        assert own.json()["claimed_by"] == "anna"
    with database.session() as session:
        entry = session.get(Callback, world.b_callback)
        assert entry is not None and entry.claimed_by is None


def test_centre_staff_see_every_tenant_and_filter_by_tenant(
    database: Database, world: World, base: str
) -> None:
    with httpx.Client(
        base_url=base, headers=bearer_headers(database, "supervisor", tenant=None)
    ) as api:
        everything = api.get("/api/calls")
        assert _ids(everything) == {world.a_call, world.b_call, world.centre_call}
        by_id = {row["id"]: row["tenant"] for row in everything.json()}
        assert by_id == {world.a_call: "dom-a", world.b_call: "dom-b", world.centre_call: None}
        assert _ids(api.get("/api/calls", params={"tenant": "dom-b"})) == {world.b_call}
        assert _ids(api.get("/api/calls", params={"tenant": "centre"})) == {world.centre_call}
        # An unknown slug matches nothing (and does not say whether it exists).
        assert _ids(api.get("/api/calls", params={"tenant": "nobody"})) == set()
        assert api.get(f"/api/calls/{world.b_call}").json()["tenant"] == "dom-b"
        assert _ids(api.get("/api/callbacks", params={"tenant": "dom-b"})) == {world.b_callback}
        assert api.get("/api/callbacks/summary").json()["open"] == 3
        assert api.get("/api/callbacks/summary", params={"tenant": "dom-a"}).json()["open"] == 1


def test_pages_behind_the_wall_open_to_a_tenant_supervisor(
    database: Database, world: World, base: str
) -> None:
    """The wallboard, reports, operators' states, meter readings and dispositions are behind
    the wall now (tests/integration/test_tenant_wall_surfaces.py attacks them): a tenant's
    supervisor opens them and sees its own; the centre's pages stay refused to it."""
    tenant = bearer_headers(database, "supervisor", tenant="dom-a")
    with httpx.Client(base_url=base, headers=tenant) as http:
        for path in ("/wallboard", "/api/wallboard", "/reports", "/api/agents"):
            assert http.get(path).status_code == 200, path
        assert http.get("/api/meter-readings").status_code == 422  # asks for a payer
        assert http.get(f"/api/calls/{world.b_call}/disposition").status_code == 404
        for path in ("/admin/users", "/admin/tokens", "/admin/tenants"):
            assert http.get(path).status_code == 403, path


def test_a_tenant_supervisor_cannot_play_or_see_another_tenant_s_recordings(
    database: Database, world: World, base: str, tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    _recorded(database, world.a_call, recordings)
    b_file = _recorded(database, world.b_call, recordings)
    with httpx.Client(base_url=base, headers=bearer_headers(database, tenant="dom-a")) as api:
        for kind in ("recording", "voicemail"):
            own = api.get(f"/calls/{world.a_call}/audio/{kind}")
            assert own.status_code == 200, own.text
            assert own.headers["content-type"] == "audio/wav"
            # B's file exists and is named on B's call: still "call not found".
            other = api.get(f"/calls/{world.b_call}/audio/{kind}")
            assert other.status_code == 404 and other.json()["detail"] == "call not found"
        # Nor does any of A's pages or answers name B's file.
        for path in ("/calls", f"/calls/{world.a_call}", "/api/calls", "/calls/export.csv"):
            assert b_file not in api.get(path).text, path
    with httpx.Client(base_url=base, headers=bearer_headers(database)) as centre:
        assert centre.get(f"/calls/{world.b_call}/audio/recording").status_code == 200
