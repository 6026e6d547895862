"""The dashboard's live feeds against a real app on a real port, real Redis and the real
databases: a feed ends when the sign-in that opened it ends, and the callback list's feed
carries other operators' claims (published by call_router/live_state.py after the commit)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from call_router import accounts, callback_claims, callback_list, live_state
from call_router.db import Database
from call_router.models import Operator, utcnow
from call_router.settings import Settings
from dashboard import live
from dashboard.deps import SESSION_COOKIE
from tests.conftest import PORT_BASE, open_callback
from tests.integration.conftest import REDIS_URL, SseEvents

Serve = Callable[[Settings, int], str]
NUMBER = "+74954440077"


def settings_for(tmp_path: Path, prefix: str) -> Settings:
    return Settings(
        state_dir=tmp_path / "state", country_code="RU", redis_url=REDIS_URL, redis_prefix=prefix
    )


def signed_in(db: Database, username: str, login: str) -> dict[str, str]:
    """An operator account linked to roster `login`, signed in: its cookie and CSRF header."""
    with db.session() as session:
        if session.query(Operator).filter_by(sip_login=login).first() is None:
            session.add(Operator(name=f"Op {login}", sip_login=login, sip_password="p" * 16))
            session.flush()
        user = accounts.create_user(
            session,
            username,
            secrets.token_urlsafe(16),
            "operator",
            operator_login=login,
            now=utcnow(),
        )
        cookie, row = accounts.start_session(
            session, user, now=utcnow(), lifetime=timedelta(hours=1)
        )
        return {"cookie": cookie, "csrf": row.csrf_token}


def client(base: str, who: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base,
        timeout=10,
        cookies={SESSION_COOKIE: who["cookie"]},
        headers={"X-CSRF-Token": who["csrf"]},
    )


def open_entry(db: Database) -> int:
    return open_callback(db, NUMBER)


async def test_a_feed_ends_at_the_next_event_after_its_session_signs_out(
    database: Database, tmp_path: Path, redis_client: Redis, redis_prefix: str, serve: Serve
) -> None:
    base = serve(settings_for(tmp_path, redis_prefix), PORT_BASE + 83)
    anna = signed_in(database, "anna", "op_anna")
    async with client(base, anna) as http, http.stream("GET", "/callbacks/stream") as response:
        assert response.status_code == 200
        feed = SseEvents(response, "lists")
        assert (await feed.next(timeout=5))["live"] is True

        assert (await http.post("/logout")).status_code in (200, 303)
        # Any event makes the feed look again: the session is gone, so it says so and ends.
        await redis_client.publish(f"{redis_prefix}:events", json.dumps({"type": "callback"}))
        seen = await feed.until_closed(timeout=5)
    assert seen[-1] == live.EVENT_ENDED
    # And the browser's automatic reconnect is sent to sign in (not an event stream: the
    # browser's EventSource gives up).
    async with client(base, anna) as http:
        again = await http.get("/callbacks/stream")
    assert again.status_code == 303 and again.headers["location"].startswith("/login")


@pytest.mark.parametrize("how", ["account_disabled", "token_revoked"])
async def test_a_quiet_feed_ends_within_the_check_interval(
    how: str,
    database: Database,
    tmp_path: Path,
    redis_prefix: str,
    serve: Serve,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server runs in this process: a short interval keeps the test short.
    monkeypatch.setattr(live, "SESSION_CHECK_SECONDS", 0.5)
    base = serve(settings_for(tmp_path, redis_prefix), PORT_BASE + 84)
    if how == "account_disabled":
        who = signed_in(database, "bea", "op_bea")
        http = client(base, who)
        path = "/api/operator/stream"
    else:
        with database.session() as session:
            token, row = accounts.create_token(session, "supervisor", name="wall", now=utcnow())
            token_id = row.id
        http = httpx.AsyncClient(
            base_url=base, timeout=10, headers={"Authorization": f"Bearer {token}"}
        )
        path = "/api/wallboard/stream"
    async with http, http.stream("GET", path) as response:
        assert response.status_code == 200
        feed = SseEvents(response, "panels" if how == "account_disabled" else "snapshot")
        await feed.next(timeout=5)
        with database.session() as session:
            if how == "account_disabled":
                accounts.set_active(session, "bea", False)
            else:
                accounts.revoke_token(session, token_id, now=utcnow())
        # No event at all: the periodic check finds it.
        seen = await feed.until_closed(timeout=5)
    assert seen[-1] == live.EVENT_ENDED


async def test_another_operators_claim_reaches_the_list_feed(
    database: Database, tmp_path: Path, redis_prefix: str, serve: Serve
) -> None:
    base = serve(settings_for(tmp_path, redis_prefix), PORT_BASE + 85)
    entry_id = open_entry(database)
    anna = signed_in(database, "anna", "op_anna")
    boris = signed_in(database, "boris", "op_boris")
    async with (
        client(base, anna) as anna_http,
        client(base, boris) as boris_http,
        boris_http.stream("GET", "/callbacks/stream") as response,
    ):
        feed = SseEvents(response, "lists")
        first = await feed.next(timeout=5)
        assert f'data-id="{entry_id}"' in first["html"] and 'data-action="claim"' in first["html"]

        claimed = await anna_http.post(
            f"/api/callbacks/{entry_id}/claim", json={"operator": "op_anna"}
        )
        assert claimed.status_code == 200, claimed.text
        # Pushed by the claim's own event (the feed's clock refresh is 30 s away).
        after = await feed.next(timeout=10)
    assert "op_anna" in after["html"]
    assert 'data-action="claim"' not in after["html"]


async def test_changes_are_published_after_the_commit_and_never_for_a_rollback(
    database: Database, redis_client: Redis, redis_prefix: str
) -> None:
    publisher = live_state.publish_callback_changes(database, REDIS_URL, redis_prefix)
    try:
        async with redis_client.pubsub() as pubsub:
            await pubsub.subscribe(f"{redis_prefix}:events")
            await pubsub.get_message(timeout=1)  # the subscribe confirmation
            entry_id = await asyncio.to_thread(open_entry, database)

            def claim_then_fail() -> None:
                with database.session() as session:
                    callback_claims.claim(session, entry_id, "op_anna", utcnow(), timeout=600)
                    raise RuntimeError("the request failed after the claim")

            with pytest.raises(RuntimeError):
                await asyncio.to_thread(claim_then_fail)

            def claim() -> None:
                with database.session() as session:
                    callback_claims.claim(session, entry_id, "op_boris", utcnow(), timeout=600)

            await asyncio.to_thread(claim)
            events: list[dict[str, Any]] = []
            while len(events) < 2:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=10)
                assert message is not None, f"only {events}"
                events.append(json.loads(message["data"]))
            # Nothing else queued: the rolled-back claim was never told.
            assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5) is None
    finally:
        publisher.close()
    assert [(e["type"], e["action"], e["operator"]) for e in events] == [
        ("callback", "created", None),
        ("callback", "claimed", "op_boris"),
    ]
    assert {e["callback_id"] for e in events} == {entry_id}


def test_a_redis_outage_never_fails_the_change(database: Database) -> None:
    # Port 1: nothing listens; the change is committed all the same, and after one refused
    # connection Redis is left alone for a while (no timeout on every change).
    publisher = live_state.publish_callback_changes(database, "redis://127.0.0.1:1/0", "down")
    try:
        entry_id = open_entry(database)
        with database.session() as session:
            callback_claims.claim(session, entry_id, "op_anna", utcnow(), timeout=600)
        assert publisher.publish([]) is False  # still resting after the refusal
    finally:
        publisher.close()
    with database.session() as session:
        entry = callback_list.get_callback(session, entry_id)
        assert entry is not None and entry.claimed_by == "op_anna"
