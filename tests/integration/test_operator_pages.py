"""The operator page's screen-pop and the callback list page against the real databases
(SQLite and PostgreSQL), in process. The browser tests drive the same pages through real calls."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.requests import Request

from call_router import accounts, callbacks
from call_router.db import Database
from call_router.models import Call, Callback, CallEvent, Operator, OperatorSkill, utcnow
from call_router.screen_pop import OperatorIdentity
from call_router.settings import Settings
from dashboard.live import LiveView
from dashboard.main import create_app
from dashboard.routes.operator_pages import operator_view, panels
from tests.conftest import open_callback

HOSTILE = "<script>alert(1)</script>"
NUMBER = "+74954440050"
OTHER = "+74954440051"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Redis is not needed here: an unreachable one makes the pages fall back to the database.
    return Settings(state_dir=tmp_path / "state", redis_url="redis://127.0.0.1:1/0")


@pytest.fixture
def app(database: Database, settings: Settings) -> Any:
    return create_app(settings, database, zone=ZoneInfo("UTC"))


@pytest.fixture
async def client(database: Database, app: Any) -> AsyncIterator[httpx.AsyncClient]:
    with database.session() as session:
        token, _ = accounts.create_token(session, "supervisor", name="pages", now=utcnow())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://dashboard.test",
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        yield http


def seed(db: Database, now: datetime) -> dict[str, int]:
    """Anna on a call from NUMBER (hostile name and transcript), who called yesterday too."""
    with db.session() as session:
        op = Operator(name="Anna Petrova", sip_login="op_anna", sip_password="p" * 16)
        op.skills = [OperatorSkill(queue="heating", penalty=0)]
        session.add(op)
        earlier = Call(
            linkedid=uuid.uuid4().hex,
            caller_number=NUMBER,
            started_at=now - timedelta(days=1),
            ended_at=now - timedelta(days=1) + timedelta(minutes=1),
            outcome="abandoned_in_queue",
            queue="heating",
        )
        current = Call(
            linkedid="live-1",
            caller_number=NUMBER,
            caller_name=HOSTILE,
            started_at=now - timedelta(minutes=3),
            queue_joined_at=now - timedelta(minutes=2),
            answered_at=now - timedelta(minutes=1, seconds=15),
            operator="Anna Petrova",
            queue="heating",
            intent="heating",
            transcript=f"no heating {HOSTILE}",
        )
        session.add_all([earlier, current])
        session.flush()
        session.add(
            CallEvent(
                call_id=current.id,
                at=current.answered_at,
                kind="agent_connect",
                key="connect:1",
                data={"interface": "PJSIP/op_anna", "operator": "Anna Petrova"},
            )
        )
        entry = Callback(
            caller_number=NUMBER,
            status="open",
            reason="abandoned",
            attempts=2,
            created_at=now - timedelta(days=1),
            updated_at=now - timedelta(days=1),
            due_at=now - timedelta(hours=2),
            priority=1,
        )
        session.add(entry)
        session.flush()
        return {"earlier": earlier.id, "current": current.id, "entry": entry.id}


def request_for(app: Any) -> Request:
    return Request({"type": "http", "app": app, "headers": [], "query_string": b"", "path": "/"})


async def test_the_screen_pop_shows_the_call_history_and_entries_all_escaped(
    app: Any, database: Database
) -> None:
    now = utcnow()
    ids = seed(database, now)
    state = app.state.dashboard
    anna = OperatorIdentity("op_anna", "Anna Petrova")

    view = operator_view(state, anna, LiveView(calls={"live-1": {}}, operators={}), "en", now)
    assert view.call is not None and view.call["call"].id == ids["current"]
    assert view.call["wait_seconds"] == 45
    assert [c.id for c in view.call["previous"]] == [ids["earlier"]]
    assert [item["entry"].id for item in view.call["callbacks"]] == [ids["entry"]]
    assert view.last_call is not None and view.last_call["call"].id == ids["current"]

    data = panels(state, request_for(app), view, "en")
    html = data["call_html"]
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert f'href="/calls/{ids["earlier"]}"' in html
    assert 'class="overdue"' in html
    assert data["call_id"] == ids["current"] and data["last_call"]["id"] == ids["current"]

    # Redis says the call is over (the router missed nothing; the row is just not closed yet):
    # no screen-pop, but the disposition form still targets the last call.
    gone = operator_view(state, anna, LiveView(calls={}, operators={}), "en", now)
    assert gone.call is None and gone.last_call is not None
    # Redis down: the database alone decides.
    assert operator_view(state, anna, LiveView(), "en", now).call is not None
    # Another operator of the same name (a different phone) does not get Anna's call.
    namesake = OperatorIdentity("op_anna2", "Anna Petrova")
    assert operator_view(state, namesake, LiveView(), "en", now).call is None


async def test_operator_page_renders_for_a_supervisor_naming_the_operator(
    client: httpx.AsyncClient, database: Database
) -> None:
    seed(database, utcnow())
    page = await client.get("/operator", params={"operator": "op_anna", "lang": "en"})
    assert page.status_code == 200
    assert 'data-login="op_anna"' in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and HOSTILE not in page.text
    chooser = await client.get("/operator", params={"lang": "en"})
    assert 'value="op_anna"' in chooser.text
    assert (await client.get("/operator", params={"operator": "nobody"})).status_code == 404


async def test_callback_page_keeps_the_api_order_splits_my_claims_and_marks_overdue(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    now = utcnow()
    ids = seed(database, now)
    other_id = open_callback(
        database,
        OTHER,
        queue="coordinator",
        now=now,
        rules=callbacks.CallbackRules.from_settings(settings),
    )
    api_order = [e["id"] for e in (await client.get("/api/callbacks")).json()]
    assert set(api_order) == {ids["entry"], other_id}

    page = await client.get("/callbacks", params={"operator": "op_anna", "lang": "en"})
    rows = [page.text.index(f'data-id="{i}" data-number') for i in api_order]
    assert rows == sorted(rows), "the page lists entries in the API's calling order"
    assert 'class="cb-row overdue" data-id="{}"'.format(ids["entry"]) in page.text

    claimed = await client.post(f"/api/callbacks/{other_id}/claim", json={"operator": "op_anna"})
    assert claimed.status_code == 200
    lists = await client.get("/callbacks/lists", params={"operator": "op_anna", "lang": "en"})
    mine = lists.text[lists.text.index('id="cb-mine"') : lists.text.index('id="cb-queue"')]
    assert f'data-id="{other_id}"' in mine and 'form class="cb-outcome' in mine
    assert f'data-id="{ids["entry"]}"' not in mine
    # Someone else sees it claimed, with no claim button.
    theirs = await client.get("/callbacks/lists", params={"operator": "op_boris", "lang": "en"})
    assert "claimed by op_anna" in theirs.text

    await client.post(
        f"/api/callbacks/{other_id}/outcome",
        json={"outcome": "retry", "operator": "op_anna", "note": HOSTILE,
              "at": (now + timedelta(hours=1)).astimezone(UTC).isoformat()},
    )  # fmt: skip
    history = await client.get(f"/callbacks/{other_id}/history")
    assert "claimed" in history.text and "outcome" in history.text
    assert HOSTILE not in history.text and "&lt;script&gt;" in history.text
    assert (await client.get("/callbacks/999999/history")).status_code == 404


async def test_the_operator_panel_says_live_data_is_stale_and_how_old(
    app: Any, database: Database
) -> None:
    now = utcnow()
    seed(database, now)
    state = app.state.dashboard
    anna = OperatorIdentity("op_anna", "Anna Petrova")

    # The router's last heartbeat was 42 s ago: its hashes are not shown as the truth.
    old = LiveView(updated_at=now - timedelta(seconds=42), stale=True)
    data = panels(state, request_for(app), operator_view(state, anna, old, "en", now), "en")
    assert data["stale"] is True and data["live_age_seconds"] == 42
    assert 'data-stale="yes"' in data["agent_html"] and "STALE" in data["agent_html"]
    # No heartbeat at all (Redis flushed, router never ran): stale, age unknown.
    never = LiveView(stale=True)
    html = panels(state, request_for(app), operator_view(state, anna, never, "en", now), "en")
    assert "no update from the router" in html["agent_html"]
    # Fresh: no marker.
    fresh = LiveView(calls={}, operators={}, updated_at=now)
    html = panels(state, request_for(app), operator_view(state, anna, fresh, "en", now), "en")
    assert "STALE" not in html["agent_html"] and html["stale"] is False
