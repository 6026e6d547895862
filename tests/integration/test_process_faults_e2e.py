"""A Python service SIGKILLed under a running hotline: callers still reach a person, the call
log says what happened, and `hotline supervise` has the service serving again in seconds.

These tests kill processes, so they run their own stack (state dir, ports, Redis prefix), not
the session `stack` the other end-to-end tests share. Real Asterisk, SIPp callers and a
baresip operator (the first operator `hotline up` creates, on every queue).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from call_router.db import Database
from call_router.settings import Settings
from hotline import services
from hotline.asterisk.sandbox import Asterisk
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import CallResult, place_call
from hotline.supervisor import read_records
from tests.conftest import (
    HOTLINE,
    PORT_BASE,
    STACK_ENV,
    asterisk_available,
    bearer_headers,
    require,
    wait_for,
)

pytestmark = pytest.mark.asterisk

# Clear of the session stack's ports (PORT_BASE + 0..499).
BASE = PORT_BASE + 500
# A killed service must serve again within this (the supervisor polls twice a second; the
# rest is the service's own start-up on a busy test machine).
BACK_WITHIN = 20.0


@dataclass
class Hotline:
    settings: Settings
    env: dict[str, str]
    api: httpx.Client
    operator: dict[str, Any]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*HOTLINE, *args], capture_output=True, text=True, timeout=900, env=self.env
        )
        assert not check or proc.returncode == 0, f"hotline {args}: {proc.stdout}{proc.stderr}"
        return proc


def _own_env(state: Path) -> dict[str, str]:
    ports = {
        "HOTLINE_SIP_PORT": BASE + 60,
        "HOTLINE_AMI_PORT": BASE + 38,
        "HOTLINE_AGI_PORT": BASE + 73,
        "HOTLINE_AUDIOSOCKET_PORT": BASE + 74,
        "HOTLINE_DASHBOARD_PORT": BASE + 80,
        "HOTLINE_PSTN_PORT": BASE + 70,
        "HOTLINE_RTP_START": BASE + 100,
        "HOTLINE_RTP_END": BASE + 399,
    }
    return {
        **os.environ,
        **STACK_ENV,
        **{key: str(port) for key, port in ports.items()},
        "HOTLINE_STATE_DIR": str(state),
        "HOTLINE_RECORDINGS_DIR": str(state / "recordings"),
        "HOTLINE_REDIS_PREFIX": f"hotline-faults-{os.getpid()}",
        # Two dashboard workers: a killed leader leaves them behind, holding the port.
        "HOTLINE_DASHBOARD_WORKERS": "2",
    }


@pytest.fixture(scope="module")
def hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hotline]:
    state = tmp_path_factory.mktemp("hotline-faults")
    env = _own_env(state)
    settings = Settings(**_settings_fields(env))
    ok, reason = asterisk_available(settings)
    require(ok, reason)
    up = subprocess.run(
        [*HOTLINE, "up"], capture_output=True, text=True, timeout=900, env=env, check=False
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        listed = subprocess.run(
            [*HOTLINE, "operators", "list", "--json"],
            capture_output=True, text=True, timeout=60, env=env, check=True,
        )  # fmt: skip
        operator = json.loads(listed.stdout.strip().splitlines()[-1])[0]
        db = Database(settings.db_url)
        headers = bearer_headers(db, name="faults")
        db.dispose()
        with httpx.Client(base_url=settings.dashboard_url, headers=headers, timeout=10) as api:
            yield Hotline(settings, env, api, operator)
    finally:
        subprocess.run([*HOTLINE, "down"], capture_output=True, timeout=120, env=env, check=False)
        logs = state / "log"
        if logs.exists():
            artifacts = Path(__file__).parents[1] / "artifacts" / "process-faults-logs"
            shutil.rmtree(artifacts, ignore_errors=True)
            shutil.copytree(logs, artifacts, dirs_exist_ok=True)


def _settings_fields(env: dict[str, str]) -> dict[str, Any]:
    """Settings for the own stack without touching this process's environment."""
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        return Settings().model_dump()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def phone(hotline: Hotline) -> Iterator[Softphone]:
    """The first operator's baresip, auto-answering; free in the queues before a test calls."""
    op = hotline.operator
    with Softphone(hotline.settings, op["sip_login"], op["sip_password"]) as softphone:
        wait_for(lambda: _agent_state(hotline) == "free", timeout=30, what="the operator free")
        yield softphone


def _agent_state(hotline: Hotline) -> str | None:
    rows = hotline.api.get("/api/agents").json()
    return next((a["state"] for a in rows if a["login"] == hotline.operator["sip_login"]), None)


def _calls(hotline: Hotline, caller: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = hotline.api.get("/api/calls", params={"caller": caller}).json()
    return rows


def _finished(hotline: Hotline, caller: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        rows = _calls(hotline, caller)
        return rows[0] if rows and rows[0]["ended_at"] else None

    return dict(wait_for(ended, timeout=60, what=f"a finished call from {caller}"))


def _timeline(hotline: Hotline, call_id: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = hotline.api.get(f"/api/calls/{call_id}").json()["events"]
    return events


def _sigkill(hotline: Hotline, name: str) -> int:
    """SIGKILL: no goodbye, no last write - as a crash or an OOM kill would."""
    pid = services.read_pid(hotline.settings, name)
    assert pid is not None, f"{name} should be running"
    os.kill(pid, signal.SIGKILL)
    return pid


def _serving_again(hotline: Hotline, name: str, killed: int) -> int:
    """The supervisor's new process, once it is ready; its pid."""

    def new_and_ready() -> int | None:
        pid = services.read_pid(hotline.settings, name)
        ready = pid not in (None, killed) and services.is_ready(hotline.settings, name)
        return pid if ready else None

    pid: int = wait_for(new_and_ready, timeout=BACK_WITHIN, what=f"{name} restarted and ready")
    return pid


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _in_agi(hotline: Hotline, caller: str) -> bool:
    """Asterisk runs AGI() on this caller's channel: they are in the voice menu."""
    channels = Asterisk(hotline.settings).cli("core show channels concise")
    # channel!context!exten!prio!state!application!data!callerid!...
    return any(
        f"!{caller}!" in line and line.split("!")[5] == "AGI" for line in channels.splitlines()
    )


def _status_line(hotline: Hotline, name: str) -> str:
    out = hotline.cli("status", check=False).stdout
    return next(line for line in out.splitlines() if line.split()[:1] == [name])


def _during(place: Callable[[], CallResult]) -> tuple[ThreadPoolExecutor, Future[CallResult]]:
    pool = ThreadPoolExecutor(1)
    return pool, pool.submit(place)


def test_fastagi_killed_mid_menu_caller_reaches_the_coordinator_and_agi_comes_back(
    hotline: Hotline, phone: Softphone
) -> None:
    caller = "+74951119501"
    settings = hotline.settings
    # Holds in the menu, presses nothing.
    pool, call = _during(lambda: place_call(settings, from_number=caller, hold=30))
    with pool:
        wait_for(lambda: _in_agi(hotline, caller), timeout=30, what=f"{caller} in the menu")
        killed = _sigkill(hotline, "agi")
        result = call.result(timeout=180)
    assert result.answered, result.detail

    row = _finished(hotline, caller)
    assert len(_calls(hotline, caller)) == 1
    # The dialplan's fail-safe: the coordinator's queue, where the operator answered.
    assert (row["queue"], row["outcome"], row["operator"]) == (
        "coordinator",
        "answered",
        hotline.operator["name"],
    )
    assert phone.calls_answered() == 1
    events = _timeline(hotline, row["id"])
    failed = [e for e in events if e["kind"] == "agi_failed"]
    assert len(failed) == 1, [e["kind"] for e in events]
    assert failed[0]["data"]["queue"] == "coordinator"
    assert "menu_result" not in [e["kind"] for e in events]

    # The supervisor has the FastAGI server serving again: a new process on the port...
    _serving_again(hotline, "agi", killed)
    assert _accepts(settings.agi_port)
    line = _status_line(hotline, "agi")
    assert "ready" in line and "restarts 1" in line, line
    # ... and the next caller gets the menu again: 4 chooses the lift team.
    next_caller = "+74951119502"
    result = place_call(settings, dtmf="4", from_number=next_caller, hold=12)
    assert result.answered, result.detail
    row = _finished(hotline, next_caller)
    assert row["queue"] == "lift"
    kinds = [e["kind"] for e in _timeline(hotline, row["id"])]
    assert "menu_result" in kinds and "agi_failed" not in kinds, kinds


def test_dashboard_killed_comes_back_healthy(hotline: Hotline) -> None:
    settings = hotline.settings
    killed = _sigkill(hotline, "dashboard")
    workers = [pid for pid in services.group_members(killed) if pid != killed]
    assert workers, "the killed leader's uvicorn workers live on"
    pid = _serving_again(hotline, "dashboard", killed)
    # Served by the new leader's workers: the orphans that held the port were ended first.
    wait_for(lambda: services.group_members(killed) == [], what="the old workers gone")
    assert httpx.get(f"{settings.dashboard_url}/healthz", timeout=5).status_code == 200
    assert services.read_pid(settings, "dashboard") == pid
    assert len(services.group_members(pid)) > 1, "the new leader and its workers"
    assert read_records(settings)["dashboard"].restarts == 1


def test_router_killed_during_a_call_the_row_is_complete(
    hotline: Hotline, phone: Softphone
) -> None:
    caller = "+74951119503"
    settings = hotline.settings
    pool, call = _during(lambda: place_call(settings, dtmf="4", from_number=caller, hold=20))
    with pool:
        wait_for(lambda: _calls(hotline, caller), timeout=30, what=f"{caller}'s row")
        killed = _sigkill(hotline, "router")
        _serving_again(hotline, "router", killed)
        result = call.result(timeout=180)
    assert result.answered, result.detail

    row = _finished(hotline, caller)
    assert len(_calls(hotline, caller)) == 1
    assert (row["queue"], row["outcome"], row["operator"]) == (
        "lift",
        "answered",
        hotline.operator["name"],
    )
    kinds = [e["kind"] for e in _timeline(hotline, row["id"])]
    assert kinds.count("agent_connect") == 1 and "agent_complete" in kinds, kinds
    assert read_records(settings)["router"].restarts == 1


def test_down_stops_the_supervisor_and_nothing_comes_back(hotline: Hotline) -> None:
    """Runs last in this module: `hotline down` leaves nothing behind, and nothing restarts."""
    settings = hotline.settings
    pids = {name: services.read_pid(settings, name) for name in (*services.SERVICE_NAMES,)}
    supervisor = services.read_pid(settings, "supervise")
    assert supervisor is not None and all(pids.values()), pids
    out = hotline.cli("down").stdout
    assert "hotline stopped" in out
    gone = [supervisor, *[pid for pid in pids.values() if pid is not None]]
    wait_for(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in gone), what="all processes gone"
    )
    # Nothing is restarted after `down` (the supervisor went first).
    assert all(services.read_pid(settings, name) is None for name in services.SERVICE_NAMES)
    assert not _accepts(settings.agi_port)
