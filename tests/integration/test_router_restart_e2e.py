"""The AMI router killed mid-call, on the real Asterisk with real SIP operators (baresip).

Whatever happens while `hotline router` is down is recovered on its restart from Asterisk's own
records (queue_log, CDR): the answer and the operator, an abandon in the queue, a virtual-hold
request ("press 1 to be called back"). One row per call, exactly one callback entry per caller.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest

from call_router.settings import Settings
from hotline import services
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import CallResult, place_call
from tests.conftest import add_operator, alone_in_queue, finished_call, wait_for
from tests.integration.conftest import calls_of, entry_of
from tests.integration.test_agents_e2e import agent, agents

pytestmark = pytest.mark.asterisk


def kill_router(settings: Settings) -> None:
    """SIGKILL: no goodbye, no last write - as a crash or an OOM kill would. The router stays
    down (held: the supervisor leaves it) until start_router."""
    pid = services.read_pid(settings, "router")
    assert pid is not None, "the router should be running"
    services.hold(settings, "router")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: services.read_pid(settings, "router") is None, what="the router gone")


def start_router(settings: Settings) -> None:
    services.start_service(settings, "router")
    services.wait_ready(settings, "router", timeout=60)


@contextmanager
def router_down_during(
    settings: Settings, api: httpx.Client, calls: dict[str, Callable[[], CallResult]]
) -> Iterator[dict[str, Future[CallResult]]]:
    """Start the calls; once the router has logged each one's start, kill it. Restart it after
    the block (the calls have ended by then), also when the block fails."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {caller: pool.submit(place) for caller, place in calls.items()}
        try:
            for caller in calls:
                wait_for(lambda c=caller: calls_of(api, c), timeout=30, what=f"{caller}'s row")
            kill_router(settings)
            yield futures
        finally:
            for future in futures.values():
                future.result(timeout=180)
            start_router(settings)


def test_answered_while_the_router_was_down_is_logged_with_its_operator(
    stack: Settings, api: httpx.Client
) -> None:
    op = add_operator("Rita Restart", "lift")
    login = op["sip_login"]
    caller = "+74951119401"
    with Softphone(stack, login, op["sip_password"]) as phone:
        wait_for(lambda: agent(api, login)["state"] == "free", what="the operator free")
        place = {caller: lambda: place_call(stack, dtmf="4", from_number=caller, hold=16)}
        with router_down_during(stack, api, place) as results:
            result = results[caller].result(timeout=180)
            assert result.answered, result.detail
            # The call was answered and has ended; nobody wrote that down yet.
            assert phone.calls_answered() == 1
            (row,) = calls_of(api, caller)
            assert row["ended_at"] is None and row["operator"] is None

    call = finished_call(api, caller)
    assert len(calls_of(api, caller)) == 1
    assert (call["outcome"], call["operator"], call["queue"]) == (
        "answered",
        "Rita Restart",
        "lift",
    )
    events = api.get(f"/api/calls/{call['id']}").json()["events"]
    kinds = [e["kind"] for e in events]
    assert kinds.count("queue_join") == 1 and kinds.count("agent_connect") == 1, kinds
    assert "agent_complete" in kinds and "reconciled" in kinds
    assert entry_of(api, caller) is None
    agents("logout", login)


def test_an_abandon_and_a_virtual_hold_while_the_router_was_down_give_one_callback_each(
    stack: Settings, api: httpx.Client
) -> None:
    op = add_operator("Paul Paused", "heating")
    login = op["sip_login"]
    # Logged in but paused: callers join the queue and wait, nobody is rung.
    agents("pause", login, "--reason", "training")
    abandoner, holder = "+74951119402", "+74951119403"
    with Softphone(stack, login, op["sip_password"]):
        place = {
            # Waits ~14 s in the queue, then hangs up.
            abandoner: lambda: place_call(stack, dtmf="3", from_number=abandoner, hold=22),
            # Presses 1 while waiting: the hotline confirms and hangs up.
            holder: lambda: place_call(
                stack, dtmf="3", from_number=holder, hold=40, dtmf_schedule=[(14.0, "1")]
            ),
        }
        with router_down_during(stack, api, place) as results:
            for caller in place:
                result = results[caller].result(timeout=180)
                assert result.answered, result.detail
            assert results[holder].result().remote_hangup

    abandoned = finished_call(api, abandoner)
    held = finished_call(api, holder)
    assert (abandoned["outcome"], abandoned["queue"]) == ("abandoned_in_queue", "heating")
    assert (held["outcome"], held["queue"]) == ("callback_requested", "heating")
    # Exactly one entry each (one open entry per number: a partial unique index).
    entry = entry_of(api, abandoner)
    assert entry is not None
    assert (entry["reason"], entry["attempts"]) == ("abandoned_in_queue", 1)
    entry = entry_of(api, holder)
    assert entry is not None
    assert (entry["reason"], entry["queue"]) == ("virtual_hold", "heating")
    for caller in (abandoner, holder):
        assert len(calls_of(api, caller)) == 1
    agents("logout", login)


@contextmanager
def fastagi_pool_down(settings: Settings) -> Iterator[None]:
    """Every FastAGI server of this box stopped (held) for the block, started again after."""
    pool = services.pool_servers(settings)
    for name in pool:
        services.stop_service(settings, name)
    try:
        yield
    finally:
        for name in pool:
            services.start_service(settings, name)
        for name in pool:
            services.wait_ready(settings, name, timeout=60)


def test_a_call_met_by_no_fastagi_server_and_no_router_is_logged_and_called_back(
    stack: Settings, api: httpx.Client
) -> None:
    """Nothing of ours was up but Asterisk: the fail-safe put the caller in the coordinator's
    queue, where they gave up. No process wrote a row; the router's restart finds the call in
    Asterisk's records (from when its predecessor last heard everything) and logs it whole."""
    op = add_operator("Cora Closed", "coordinator")
    login = op["sip_login"]
    alone_in_queue(api, login, "coordinator")
    # Logged in but paused: the caller waits, nobody is rung.
    agents("pause", login, "--reason", "training")
    try:
        check_the_unlogged_call_is_recovered(stack, api, login, op["sip_password"])
    finally:
        # A paused coordinator left behind would hold every later test's fail-safe callers.
        agents("logout", login)


def check_the_unlogged_call_is_recovered(
    stack: Settings, api: httpx.Client, login: str, password: str
) -> None:
    caller = "+74951119471"  # used by no other test on the shared stack
    with Softphone(stack, login, password):
        kill_router(stack)
        try:
            with fastagi_pool_down(stack):
                result = place_call(stack, dtmf="3", from_number=caller, hold=14)
                assert result.answered, result.detail
        finally:
            start_router(stack)

    call = finished_call(api, caller)
    assert len(calls_of(api, caller)) == 1
    assert (call["queue"], call["outcome"]) == ("coordinator", "abandoned_in_queue")
    kinds = [e["kind"] for e in api.get(f"/api/calls/{call['id']}").json()["events"]]
    assert {"agi_failed", "queue_join", "abandon"} <= set(kinds), kinds
    assert "menu_result" not in kinds
    entry = entry_of(api, caller)
    assert entry is not None
    assert (entry["reason"], entry["queue"]) == ("abandoned_in_queue", "coordinator")
