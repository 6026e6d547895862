"""Virtual hold keeps its promise ("press 1 to be called back and keep your place") on the real
Asterisk, with live and held callers interleaved in one queue.

One lift operator (baresip) is busy. Caller A (SIPp) joins the lift queue and presses 1: A's
place is kept as a callback entry. Caller B joins later and waits live. When the operator is
freed, A's turn comes first: the dispatcher rings the operator before app_queue can offer them
to B, then the resident (a second baresip on the `pstn` trunk). The answered callback closes
A's entry at once, B is answered after it, and A is never dialled again, not even after the
operator's claim window (shortened here) has passed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from call_router import click_to_call
from call_router.agent_membership import parse_members
from call_router.ami_client import AmiClient
from call_router.db import Database
from call_router.models import Callback, utcnow
from call_router.settings import Settings
from call_router.virtual_hold_dispatch import dispatch_virtual_hold, free_operators, live_callers
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import CallResult, place_call
from tests.conftest import add_operator, finished_call, wait_for
from tests.integration.conftest import entry_of
from tests.integration.test_callbacks_e2e import daytime_rules, detail

pytestmark = pytest.mark.asterisk

INTERVAL = 1.0  # the test plays the router's dispatcher loop, one pass a second


def queue_status(stack: Settings) -> list[dict[str, str]]:
    async def ask() -> list[dict[str, str]]:
        async with AmiClient(stack) as ami:
            replies: list[dict[str, str]] = await ami.send({"Action": "QueueStatus"}, many=True)
            return replies

    return asyncio.run(ask())


def live_in(stack: Settings, queue: str) -> int:
    return sum(1 for c in live_callers(queue_status(stack), utcnow()) if c.queue == queue)


def close_earlier_held_places(db: Database) -> None:
    """Earlier tests in the shared stack may leave held places open; the dispatcher would
    rightly call those back first (they joined earlier), ringing this test's resident phone."""
    with db.session() as session:
        session.execute(
            update(Callback)
            .where(Callback.status == "open", Callback.reason == "virtual_hold")
            .values(status="closed", closed_at=utcnow())
        )


def calling(results: list[CallResult], **kwargs: Any) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.append(place_call(**kwargs)), daemon=True)
    thread.start()
    return thread


def test_a_held_caller_is_called_back_before_a_later_live_caller_and_only_once(
    stack: Settings, api: httpx.Client
) -> None:
    operator = add_operator("Lida Liftturn", "lift")
    login = operator["sip_login"]
    held, live, busy = "+74952220071", "+74952220072", "+74952220079"
    db = Database(stack.db_url)
    # The operator's claim on an automatic callback lapses after 3 s (600 s in production).
    rules = replace(daytime_rules(stack), claim_timeout=3)
    close_earlier_held_places(db)

    def dispatch() -> list[click_to_call.PlacedCall]:
        return asyncio.run(dispatch_virtual_hold(stack, db, rules=rules, interval=INTERVAL))

    results: list[CallResult] = []
    try:
        with (
            Softphone(stack, login, operator["sip_password"]) as op_phone,
            Softphone(stack, held, "", register=False, local_port=stack.pstn_port) as res_phone,
        ):
            # The operator talks to another resident until the test hangs up for them.
            calling(results, settings=stack, dtmf="4", from_number=busy, hold=150)
            assert op_phone.wait_for_event("CALL_ESTABLISHED", timeout=30)
            # A joins the lift queue and presses 1 while waiting: a held place.
            calling(
                results,
                settings=stack,
                dtmf="4",
                from_number=held,
                hold=40,
                dtmf_schedule=[(14.0, "1")],
            )
            entry = wait_for(lambda: entry_of(api, held), timeout=60, what="A's held place")
            assert entry["reason"] == "virtual_hold"
            # B joins after A and waits live.
            b_call = calling(results, settings=stack, dtmf="4", from_number=live, hold=120)
            wait_for(lambda: live_in(stack, "lift") == 1, timeout=60, what="B waiting live")
            assert dispatch() == []  # the operator is still busy: nobody is dialled
            op_phone.hangup()
            # The operator's wrap-up runs; A's turn comes before app_queue may offer B.
            placed = wait_for(dispatch, timeout=40, interval=INTERVAL, what="A's turn")
            assert [p.callback_id for p in placed] == [entry["id"]]
            assert res_phone.wait_for_event("CALL_ESTABLISHED", timeout=30), res_phone.log[-1500:]
            # Answered: the entry closes at once, while A and the operator still talk ...
            closed = wait_for(
                lambda: entry_of(api, held, status="closed"), timeout=20, what="A's entry closed"
            )
            # ... and B still waits: they joined after A.
            assert live_in(stack, "lift") == 1
            assert op_phone.calls_answered() == 2
            res_phone.hangup()
            # After A, the queue offers the operator to B (the phone answers by itself).
            wait_for(lambda: op_phone.calls_answered() == 3, timeout=60, what="B answered")
            op_phone.hangup()
            b_call.join(timeout=60)
            b_row = finished_call(api, live)
            # The claim window is long over and the operator free again: A is not dialled twice.
            wait_for(
                lambda: (
                    login
                    in free_operators(parse_members(queue_status(stack)), time.time()).get(
                        "lift", []
                    )
                ),
                timeout=60,
                what="the operator free again",
            )
            assert dispatch() == []
            assert res_phone.calls_answered() == 1
    finally:
        db.dispose()
    assert closed["last_outcome"] == "reached"
    assert b_row["outcome"] == "answered"
    body = detail(api, entry["id"])
    actions = [h["action"] for h in body["history"]]
    assert actions.count("call_started") == 1, actions
    assert body["status"] == "closed"
    # The queue never offered the operator to B before A had been called back and answered.
    reached = next(
        datetime.fromisoformat(h["at"]) for h in body["history"] if h["action"] == "outcome"
    )
    b_events = api.get(f"/api/calls/{b_row['id']}").json()["events"]
    rings = [datetime.fromisoformat(e["at"]) for e in b_events if e["kind"] == "ring"]
    assert rings and min(rings) > reached, (rings, reached)
