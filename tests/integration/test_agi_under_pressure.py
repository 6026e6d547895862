"""The FastAGI server under pressure, through the real Asterisk with SIP callers (SIPp).

- The database is slowed artificially: a transaction holds the write lock on the stack's
  call log (SQLite, as `hotline up` runs it by default), so every write waits (busy timeout
  30 s). Callers still get their menu replies and reach their queue at once; the call log
  catches up when the lock goes.
- Above the session cap a caller is not served a menu but handed straight back to the
  dialplan, whose fail-safe puts them through to the coordinator.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from call_router.settings import Settings
from hotline import services
from hotline.sipua.testcall import place_call
from tests.conftest import finished_call, wait_for
from tests.integration.test_asterisk_sandbox import Ami, login

pytestmark = pytest.mark.asterisk


@pytest.fixture
def ami(stack: Settings) -> Iterator[Ami]:
    client, reply = login(stack, stack.ami_secret)
    assert reply.get("Response") == "Success", reply
    yield client
    client.close()


def queue_set(caller: str) -> Callable[[dict[str, str]], bool]:
    """The dialplan learns the caller's queue (HOTLINE_QUEUE, from the FastAGI or its
    fail-safe): the menu is over for this caller."""
    return lambda e: (
        e.get("Event") == "VarSet"
        and e.get("Variable") == "HOTLINE_QUEUE"
        and e.get("Value", "") != ""
        and e.get("CallerIDNum", "").endswith(caller[-7:])
    )


def test_callers_get_the_menu_while_the_database_is_locked(
    stack: Settings, api: httpx.Client, ami: Ami
) -> None:
    caller = "+74951110071"
    assert stack.db_url.startswith("sqlite:///"), "this test slows the stack's SQLite call log"
    lock = sqlite3.connect(stack.db_url.removeprefix("sqlite:///"), timeout=10)
    lock.isolation_level = None
    lock.execute("BEGIN IMMEDIATE")  # the write lock: every writer now waits
    locked_at = time.monotonic()
    try:
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(place_call, stack, dtmf="2", from_number=caller, hold=6)
            # The key 2 s after the answer skips the greeting, then the queue is set: seconds,
            # not the 30 s a call-log write waits for the lock.
            event = ami.wait_event(queue_set(caller), timeout=15, what="the caller's queue")
            routed_after = time.monotonic() - locked_at
            assert event["Value"] == "electricity"
            assert routed_after < 15
            lock.execute("ROLLBACK")
            result = call.result(timeout=60)
        assert result.answered, result.detail
    finally:
        if lock.in_transaction:
            lock.execute("ROLLBACK")
        lock.close()
    # Nothing lost: the menu's writes reach the call log once the database is free again.
    row = finished_call(api, caller)
    # (The queue column then follows the queue path: nobody staffs electricity here.)
    assert (row["menu_choice"], row["intent"]) == ("2", "electricity")


@pytest.fixture
def capped_agi(stack: Settings) -> Iterator[None]:
    """The stack's FastAGI server restarted with room for one call at a time."""
    os.environ["HOTLINE_AGI_MAX_SESSIONS"] = "1"
    try:
        assert services.stop_service(stack, "agi")
        services.start_service(stack, "agi")
        services.wait_ready(stack, "agi")
        yield
    finally:
        os.environ.pop("HOTLINE_AGI_MAX_SESSIONS", None)
        services.stop_service(stack, "agi")
        services.start_service(stack, "agi")
        services.wait_ready(stack, "agi")


def test_a_caller_over_the_session_cap_goes_straight_to_the_coordinator(
    stack: Settings, api: httpx.Client, ami: Ami, capped_agi: None
) -> None:
    first, second = "+74951110072", "+74951110073"
    with ThreadPoolExecutor(2) as pool:
        # The first caller stays in the menu, pressing nothing: the one session is taken.
        holding = pool.submit(place_call, stack, from_number=first, hold=14)

        def first_in_menu() -> Any:
            calls = api.get("/api/calls", params={"caller": first}).json()
            return calls and calls[0]["ended_at"] is None

        wait_for(first_in_menu, timeout=20, interval=0.2, what="the first caller in the menu")
        started = time.monotonic()
        over = pool.submit(place_call, stack, dtmf="2", from_number=second, hold=6)
        event = ami.wait_event(queue_set(second), timeout=15, what="the second caller's queue")
        routed_after = time.monotonic() - started
        # Not the menu (its key 2 would be electricity): the fail-safe, the coordinator.
        assert event["Value"] == "coordinator"
        assert routed_after < 8  # call set-up and answer; no menu, no waiting for one
        assert over.result(timeout=60).answered
        assert holding.result(timeout=60).answered
    row = finished_call(api, second)
    assert row["queue"] == "coordinator"
    assert row["menu_choice"] is None
