"""Faults on a stack of its own (real Asterisk, SIPp callers, a baresip operator, a private
redis-server):

- Asterisk killed mid-load and started again: calls in progress end as `dropped` at the moment
  Asterisk went away, the residents who were waiting or in the menu are on the callback list,
  and the operators' queue logins and pauses come back from our store once the router has
  reconnected by itself.
- Redis stopped, started empty, flushed, or holding another installation's leftovers: calls are
  logged throughout, the wallboard says its live data is stale instead of showing old numbers,
  and the router rebuilds live state (only its own roster's operators) when Redis is back.

The session's shared `stack` is left alone: this module starts its own (own state directory,
ports, Redis server), because killing Asterisk or Redis would break every other test's calls.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from call_router.settings import Settings
from hotline import services
from hotline.asterisk.sandbox import Asterisk
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.conftest import (
    PORT_BASE,
    STACK_ENV,
    add_operator,
    finished_call,
    require,
    run_hotline,
    running_hotline,
    wait_for,
)
from tests.integration.conftest import calls_of, entry_of
from tests.integration.test_agents_e2e import agent, agents

pytestmark = pytest.mark.asterisk

# Ports above the session stack's (which uses PORT_BASE + 38 .. + 499).
PORT_SHIFT = 500
_PORT_KEYS = {
    "HOTLINE_SIP_PORT",
    "HOTLINE_AMI_PORT",
    "HOTLINE_AGI_PORT",
    "HOTLINE_AUDIOSOCKET_PORT",
    "HOTLINE_DASHBOARD_PORT",
    "HOTLINE_PSTN_PORT",
    "HOTLINE_RTP_START",
    "HOTLINE_RTP_END",
}


REDIS_PORT = PORT_BASE + PORT_SHIFT + 100


class PrivateRedis:
    """A redis-server of this module's own (no persistence: a restart comes back empty)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        require(binary is not None, "redis-server is not installed")
        assert binary is not None
        self._proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, what="the private redis-server answering")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=20)
            self._proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=3, decode_responses=True)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis(REDIS_PORT)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def own_stack(
    tmp_path_factory: pytest.TempPathFactory, private_redis: PrivateRedis
) -> Iterator[Settings]:
    """A whole hotline of this module's own, started with `hotline up`, stopped afterwards."""
    state = tmp_path_factory.mktemp("hotline-faults-state")
    env = {
        **{k: str(int(v) + PORT_SHIFT) if k in _PORT_KEYS else v for k, v in STACK_ENV.items()},
        "HOTLINE_STATE_DIR": str(state),
        "HOTLINE_RECORDINGS_DIR": str(state / "recordings"),
        "HOTLINE_REDIS_URL": private_redis.url,
        "HOTLINE_REDIS_PREFIX": f"hotline-faults-{uuid.uuid4().hex[:8]}",
    }
    with running_hotline(env) as settings:
        yield settings


@pytest.fixture(scope="module")
def own_api(own_stack: Settings) -> Iterator[httpx.Client]:
    out = run_hotline("tokens", "create", "--role", "supervisor", "--name", "restart", "--json")
    token = json.loads(out.stdout.strip().splitlines()[-1])["token"]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=own_stack.dashboard_url, timeout=10, headers=headers) as client:
        yield client


def kill_asterisk(settings: Settings) -> datetime:
    """SIGKILL Asterisk (a crash, an OOM kill): no hang-ups, no CDRs. When it was killed."""
    asterisk = Asterisk(settings)
    pid = asterisk.status().pid
    assert pid is not None, "Asterisk should be running"
    killed_at = datetime.now(UTC)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not asterisk.status().running, what="Asterisk gone")
    return killed_at


def row(api: httpx.Client, caller: str) -> dict[str, Any]:
    (found,) = calls_of(api, caller)
    return found


def test_asterisk_killed_mid_load_drops_calls_into_the_callback_list_and_restores_agents(
    own_stack: Settings, own_api: httpx.Client
) -> None:
    api = own_api
    paused_op = add_operator("Petr Paused", "heating")
    partial_op = add_operator("Lida Lift", "lift,coordinator:5")
    paused, partial = paused_op["sip_login"], partial_op["sip_login"]
    # Our store: one operator paused (callers wait, nobody is rung), one logged in to one of
    # their two skills.
    agents("pause", paused, "--reason", "training")
    agents("login", partial, "--queues", "lift")
    waiter, in_menu = "+74951119501", "+74951119502"
    with Softphone(own_stack, paused, paused_op["sip_password"]):
        wait_for(
            lambda: agent(api, paused)["paused"] and not agent(api, paused)["pending"],
            what="the operator paused in Asterisk",
        )
        with ThreadPoolExecutor(2) as pool:
            calls = [
                pool.submit(place_call, own_stack, dtmf="3", from_number=waiter, hold=40),
            ]
            wait_for(
                lambda: calls_of(api, waiter) and row(api, waiter)["queue"] == "heating",
                timeout=40,
                what="the first caller waiting in the heating queue",
            )
            # Presses nothing: still in the menu's greeting when Asterisk goes.
            calls.append(pool.submit(place_call, own_stack, dtmf="", from_number=in_menu, hold=40))
            wait_for(lambda: calls_of(api, in_menu), timeout=30, what="the second caller's row")
            killed_at = kill_asterisk(own_stack)
            run_hotline("asterisk", "up", timeout=300)
            for call in calls:
                call.result(timeout=300)

    for caller in (waiter, in_menu):
        ended = wait_for(
            lambda c=caller: row(api, c)["ended_at"] and row(api, c),
            timeout=90,
            what=f"{caller}'s call closed after the restart",
        )
        assert ended["outcome"] == "dropped", ended
        ended_at = datetime.fromisoformat(ended["ended_at"])
        # The moment Asterisk went away (as the router saw its link drop, on a loaded test
        # machine a moment later), not when the router reconnected after the restart.
        assert timedelta(0) <= ended_at - killed_at < timedelta(seconds=5), (ended_at, killed_at)
        entry = entry_of(api, caller)
        assert entry is not None, f"{caller} should be on the callback list"
        assert entry["reason"] == "dropped"
        assert len(calls_of(api, caller)) == 1

    # The queue logins and the pause came back from our store, not from Asterisk's memory.
    restored = wait_for(
        lambda: (a := agent(api, paused))["paused"] and not a["pending"] and a,
        timeout=90,
        what="the pause re-applied in the new Asterisk",
    )
    assert restored["pause_reason"] == "training"
    assert [q["queue"] for q in restored["queues"]] == ["heating"]
    lift = wait_for(
        lambda: not (a := agent(api, partial))["pending"] and a,
        timeout=30,
        what="the partial login re-applied",
    )
    assert [q["queue"] for q in lift["queues"]] == ["lift"] and not lift["paused"]


def test_a_process_s_ami_link_survives_an_asterisk_restart(own_stack: Settings) -> None:
    """The one AMI link of a process (call_router/ami_client.py `AmiLink`): while Asterisk is
    gone an action fails at once with a clear error; once it is back the next action (and a
    click-to-call's Originate) goes through a fresh login, without a new link."""
    import asyncio

    from call_router import click_to_call
    from call_router.ami_client import AmiLink, AmiUnavailable

    async def through_a_restart() -> tuple[str, list[str], int]:
        link = AmiLink(own_stack, "originate")
        try:
            (pong,) = await link.send({"Action": "Ping"})
            assert pong["Response"] == "Success"
            await asyncio.to_thread(kill_asterisk, own_stack)
            try:
                await link.send({"Action": "Ping"})
                raise AssertionError("an action while Asterisk is down must fail")
            except AmiUnavailable as exc:
                error = str(exc)
            await asyncio.to_thread(run_hotline, "asterisk", "up", timeout=300)
            (pong,) = await link.send({"Action": "Ping"})
            placed = click_to_call.PlacedCall(
                9100, 9100, f"hotline-out-restart-{uuid.uuid4().hex}", "nobody", "84950001"
            )
            result = await click_to_call.originate(own_stack, placed, link=link, ring_seconds=5)
            return error, [pong["Response"], result.detail.get("ActionID", "")], link.logins
        finally:
            await link.close()

    error, replies, logins = asyncio.run(through_a_restart())
    assert "cannot reach Asterisk's AMI" in error or "lost" in error, error
    assert replies[0] == "Success" and replies[1].startswith("hotline-callback-hotline-out-")
    assert logins == 2
    # The router is back on the new Asterisk before the next test uses the stack.
    deps: dict[str, Any] = {}

    def router_back() -> bool:
        deps.update(status_dependencies())
        return all(deps[name]["ok"] for name in ("asterisk", "ami_link"))

    try:
        wait_for(router_back, timeout=120, what="the router reconnected to the new Asterisk")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {deps}") from exc


def wallboard(api: httpx.Client) -> dict[str, Any]:
    reply = api.get("/api/wallboard")
    assert reply.status_code == 200, reply.text
    board: dict[str, Any] = reply.json()
    return board


def live_operators(server: PrivateRedis, prefix: str) -> dict[str, Any]:
    raw = server.client().hgetall(f"{prefix}:live:operators")
    return {login: json.loads(value) for login, value in raw.items()}


def roster_logins() -> set[str]:
    out = run_hotline("operators", "list", "--json").stdout
    return {op["sip_login"] for op in json.loads(out.strip().splitlines()[-1])}


def status_dependencies() -> dict[str, Any]:
    deps: dict[str, Any] = json.loads(run_hotline("status", "--json", check=False).stdout)[
        "dependencies"
    ]
    return deps


def restart_router(settings: Settings) -> None:
    services.stop_service(settings, "router")
    services.start_service(settings, "router")
    services.wait_ready(settings, "router", timeout=60)


def test_redis_leftovers_outage_and_flush_never_show_wrong_live_data(
    own_stack: Settings, own_api: httpx.Client, private_redis: PrivateRedis
) -> None:
    api, prefix = own_api, own_stack.redis_prefix
    roster = roster_logins()
    assert roster, "the stack has at least its first operator"

    # Another installation used this Redis under the same prefix: operators that are not in
    # our roster (one only as a raw channel name), "offline" since long ago, and a call.
    old = private_redis.client()
    ghost = {"name": "PJSIP/1003", "state": "offline", "since": "2026-01-01T00:00:00+00:00"}
    old.hset(
        f"{prefix}:live:operators",
        mapping={"PJSIP/1003": json.dumps(ghost), "7777": json.dumps({**ghost, "name": "Gone"})},
    )
    old.hset(f"{prefix}:live:calls", "ghost-call", json.dumps({"linkedid": "ghost-call"}))
    restart_router(own_stack)
    # The router's start reconciles with the roster and Asterisk: only our operators remain.
    wait_for(
        lambda: set(live_operators(private_redis, prefix)) == roster,
        what="the live operators equal to the roster",
    )
    assert not old.hexists(f"{prefix}:live:calls", "ghost-call")
    board = wait_for(lambda: (b := wallboard(api))["live"] and b, what="the board live")
    assert board["stale"] is False and board["live_age_seconds"] is not None
    # Every live key expires if nobody refreshes it (a stopped installation's keys go away).
    for key in ("operators", "queues", "heartbeat", "epoch"):
        assert 0 < old.ttl(f"{prefix}:live:{key}") <= 600, key

    # The router measures its lag behind Asterisk (a probe event through Asterisk).
    lag = wait_for(
        lambda: (
            (d := status_dependencies())["router_lag"]["detail"] != "not measured yet"
            and d["router_lag"]
        ),
        timeout=40,
        what="the router's lag measured",
    )
    assert lag["ok"] and " s (" in lag["detail"], lag

    # Redis goes away: calls are still logged, and the board says its live data is stale.
    private_redis.stop()
    board = wait_for(lambda: (b := wallboard(api))["stale"] and b, what="the board stale")
    assert board["live"] is False and board["redis"] is False
    # Health says which part is down: Redis, and only Redis.
    status = run_hotline("status", "--json", check=False)
    deps = json.loads(status.stdout)["dependencies"]
    assert status.returncode == 3 and deps["redis"]["ok"] is False
    for name in ("asterisk", "ami_link", "router_lag", "database"):
        assert deps[name]["ok"], deps[name]
    wait_for(
        lambda: (
            httpx.get(f"{own_stack.dashboard_url}/healthz").json()["dependencies"]["redis"]
            == "down"
        ),
        what="/healthz saying Redis is down",
    )
    caller = "+74951119601"
    result = place_call(own_stack, dtmf="2", from_number=caller, hold=6)
    assert result.answered, result.detail
    call = finished_call(api, caller)
    assert call["outcome"], call

    # Back, empty (no persistence): the router rebuilds live state by itself.
    private_redis.start()
    wait_for(
        lambda: set(live_operators(private_redis, prefix)) == roster,
        timeout=30,
        what="live operators rebuilt after Redis came back",
    )
    board = wait_for(lambda: (b := wallboard(api))["live"] and b, timeout=30, what="board live")
    assert board["stale"] is False

    # Flushed under a running router: rebuilt too (nothing failed, so only the epoch tells).
    private_redis.client().flushall()
    wait_for(
        lambda: set(live_operators(private_redis, prefix)) == roster,
        timeout=30,
        what="live operators rebuilt after a flush",
    )
    assert wallboard(api)["stale"] is False

    # The router stopped: its heartbeat ages and the board calls the data stale, with its age.
    services.stop_service(own_stack, "router")
    try:
        board = wait_for(lambda: (b := wallboard(api))["stale"] and b, timeout=40, what="stale")
        assert board["redis"] is True and board["live_age_seconds"] >= 10
    finally:
        services.start_service(own_stack, "router")
        services.wait_ready(own_stack, "router", timeout=60)
