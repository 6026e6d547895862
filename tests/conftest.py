"""Shared test plumbing: CI-aware requirements and the real hotline stack.

In CI (CI=true) a missing Asterisk, PostgreSQL or Redis fails the run; locally such tests
skip with the reason, so a developer without the sandbox still gets the unit tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from bench.callstack import stack_ports
from call_router.db import Database
from call_router.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
HOTLINE = [sys.executable, "-m", "hotline"]

# Test ports differ from the defaults so a developer's running hotline is left alone;
# HOTLINE_TEST_PORT_BASE moves them all, so two suites can run side by side. Under
# pytest-xdist each worker (gw0, gw1, ...) runs a stack of its own, WORKER_PORT_SPAN further up
# (a test's ports stay within base..base+999).
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
WORKER_PORT_SPAN = 2000
PORT_BASE = int(os.environ.get("HOTLINE_TEST_PORT_BASE", "15000")) + WORKER_PORT_SPAN * int(
    WORKER.removeprefix("gw") or 0
)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port of `host` that nothing listens on right now (the system's choice)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


STACK_ENV = {
    **stack_ports(PORT_BASE, (PORT_BASE + 100, PORT_BASE + 499)),
    "HOTLINE_QUEUE_TIMEOUT": "60",
    "HOTLINE_METERS_NUMBER": "500106",
    # Tests share one stack: an entry left by one test must not ring another test's operator.
    "HOTLINE_VIRTUAL_HOLD_AUTODIAL": "false",
    # Likewise the "is it fixed?" calls: a test that marks a request done must not ring the
    # resident phone of another; the feedback test runs the dialer's round itself.
    "HOTLINE_REQUEST_FEEDBACK_CALLS": "false",
    # A status change reaches the next call's menu at once (no memory of open requests).
    "HOTLINE_REQUEST_STATUS_TTL": "0",
    # End-to-end tests must not depend on the time of day (quiet hours and business hours
    # have their own tests with an injected clock): no quiet hours for call-backs here.
    "HOTLINE_CALLBACK_QUIET_START": "00:00",
    "HOTLINE_CALLBACK_QUIET_END": "00:00",
    "HOTLINE_ASTERISK_MODE": os.environ.get("HOTLINE_ASTERISK_MODE", "auto"),
}


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """These HOTLINE_* variables set for the block (and for the commands it runs), the earlier
    values (or their absence) restored after it, also when it fails or skips."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield


def require(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI: a skip must never hide a missing part there."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (required in CI)", pytrace=False)
    pytest.skip(reason)


def run_hotline(
    *args: str, timeout: float = 120, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*HOTLINE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        input=stdin,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"hotline {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def asterisk_available(settings: Settings) -> tuple[bool, str]:
    if shutil.which("asterisk") and settings.asterisk_mode != "sandbox":
        return True, "system asterisk"
    if (settings.sandbox_root / "usr/sbin/asterisk").exists():
        return True, "sandbox root"
    if shutil.which("debootstrap") and os.geteuid() == 0:
        return True, "sandbox root will be built"
    return (
        False,
        "no Asterisk: no system binary, no sandbox root, and no debootstrap/root to build one",
    )


@pytest.fixture(autouse=True)
def _umask_kept() -> Iterator[None]:
    """Each test leaves the test process's umask as it found it. A CLI command run in-process
    (typer's CliRunner) sets the hotline's umask 077 for the whole process, and a file a later
    test writes for the sandbox Asterisk (another user) came out unreadable to it."""
    before = os.umask(0o077)
    os.umask(before)
    yield
    os.umask(before)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The whole hotline (Asterisk, FastAGI, AMI listener, dashboard) started by `hotline up`."""
    state = tmp_path_factory.mktemp("hotline-state")
    env = {
        **STACK_ENV,
        "HOTLINE_STATE_DIR": str(state),
        "HOTLINE_RECORDINGS_DIR": str(state / "recordings"),
        "HOTLINE_REDIS_PREFIX": f"hotline-test-{os.getpid()}",
    }
    try:
        with running_hotline(env) as settings:
            yield settings
    finally:
        logs = state / "log"
        artifacts = Path(__file__).parent / "artifacts" / "stack-logs" / (WORKER or ".")
        if logs.exists():
            shutil.rmtree(artifacts, ignore_errors=True)
            shutil.copytree(logs, artifacts, dirs_exist_ok=True)


@contextlib.contextmanager
def running_hotline(env: dict[str, str]) -> Iterator[Settings]:
    """A whole hotline started by `hotline up` with `env` on top of this process's
    environment, and `hotline down` afterwards (also when the block fails)."""
    with environment(env):
        settings = Settings()
        ok, reason = asterisk_available(settings)
        require(ok, reason)
        try:
            run_hotline("up", timeout=900)
            yield settings
        finally:
            subprocess.run(
                [*HOTLINE, "down"], capture_output=True, timeout=120, env=os.environ.copy()
            )


@pytest.fixture(scope="session")
def supervisor_token(stack: Settings) -> str:
    """A supervisor API token made once per session through the real CLI."""
    out = run_hotline(
        "tokens", "create", "--role", "supervisor", "--name", "test-suite", "--json"
    ).stdout
    token: str = json.loads(out.strip().splitlines()[-1])["token"]
    return token


@pytest.fixture
def api(stack: Settings, supervisor_token: str) -> Iterator[httpx.Client]:
    """An httpx client to the running dashboard, signed in as a supervisor (Bearer token)."""
    headers = {"Authorization": f"Bearer {supervisor_token}"}
    with httpx.Client(base_url=stack.dashboard_url, timeout=10, headers=headers) as client:
        yield client


def bearer_headers(
    db: Database, role: str = "supervisor", name: str = "test", tenant: str | None = None
) -> dict[str, str]:
    """Credentials for an in-process app (httpx.ASGITransport, TestClient) on `db`: a fresh
    API token written straight to the database (the stack's tests use the CLI instead);
    `tenant`: a tenant's token (its slug)."""
    from call_router.accounts import create_token

    with db.session() as session:
        token, _row = create_token(session, role, name=name, now=datetime.now(UTC), tenant=tenant)
    return {"Authorization": f"Bearer {token}"}


def midday_zone(now: datetime | None = None) -> ZoneInfo:
    """A fixed-offset zone in which `now` (default: this moment) is between 11:30 and 12:30.

    For an in-process dashboard (create_app's `zone`) whose page counts "today" (the wallboard,
    /metrics, the home page's list): rows put minutes or hours before now stay in that local day
    whatever the hour the suite runs at (in UTC, a CI run at 00:05 would put a row of ten
    minutes ago into yesterday)."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    hours = round(12 - (at.hour + at.minute / 60))  # -12..12: Etc/GMT+12 .. Etc/GMT-12
    # The Etc/GMT names count the other way: UTC+5 is Etc/GMT-5.
    return ZoneInfo("Etc/GMT" if hours == 0 else f"Etc/GMT{-hours:+d}")


def earlier_today(zone: tzinfo, ago: timedelta, now: datetime | None = None) -> datetime:
    """`ago` before now, or the first second of the local day in `zone` if that is later: a
    moment that a page counting "today" there still counts, whatever the hour (in the first
    minutes after midnight it is less than `ago` ago). Aware, in UTC."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date(), datetime.min.time(), tzinfo=zone)
    return max(now - ago, (midnight + timedelta(seconds=1)).astimezone(UTC))


def wait_for(
    predicate: Any, timeout: float = 20, interval: float = 0.3, what: str = "condition"
) -> Any:
    """Poll until predicate() returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def add_operator(name: str, queues: str) -> dict[str, Any]:
    """Add an operator through the real CLI; the running Asterisk reloads the roster."""
    out = run_hotline("operators", "add", name, "--queues", queues, "--json").stdout
    info: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert info["applied"] is True, "the running Asterisk should have reloaded the roster"
    return info


def alone_in_queue(api: httpx.Client, login: str, queue: str) -> None:
    """Log every other operator out of `queue`. app_queue's rrmemory rings the member after the
    last one rung first, 15 s each: an operator an earlier test left logged in there (its phone's
    contact not yet expired) would take a ring meant for `login`'s phone."""
    for other in api.get("/api/agents").json():
        in_queue = any(q["queue"] == queue for q in other["queues"])
        if other["login"] != login and other["logged_in"] and in_queue:
            reply = api.post(f"/api/agents/{other['login']}/logout")
            assert reply.status_code == 200, reply.text


def finished_call(api: httpx.Client, caller: str) -> dict[str, Any]:
    """The caller's newest call, once the AMI listener has closed its row."""

    def latest_ended() -> dict[str, Any] | None:
        calls = api.get("/api/calls", params={"caller": caller}).json()
        return calls[0] if calls and calls[0]["ended_at"] else None

    return dict(wait_for(latest_ended, timeout=30, what=f"a finished call from {caller}"))


def open_callback(
    db: Database, number: str, *, reason: str = "voicemail", queue: str = "heating", **extra: Any
) -> int:
    """A callback entry straight into the list (as if the resident asked for one); its id.
    `extra` goes to callback_intake.open_or_attach (now, rules, placed_at, ...)."""
    from call_router import callback_intake
    from call_router.models import utcnow

    extra.setdefault("now", utcnow())
    with db.session() as session:
        entry = callback_intake.open_or_attach(
            session, caller_number=number, reason=reason, queue=queue, call_id=None, **extra
        )
        assert entry is not None, f"no entry for {number}"
        return entry.id


def add_row(db: Database, row: Any) -> int:
    """Insert one ORM row (a call, a callback ...) in its own committed transaction; its id."""
    with db.session() as session:
        session.add(row)
        session.flush()
        return int(row.id)


def fresh_state_cli(
    tmp_path: Path, **env_overrides: str
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`hotline ARGS…` on a fresh state folder (SQLite) under `tmp_path`, whatever its exit
    code; `env_overrides`: more HOTLINE_* variables."""
    env = {**os.environ, "HOTLINE_STATE_DIR": str(tmp_path / "state"), **env_overrides}
    env.pop("HOTLINE_DATABASE_URL", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*HOTLINE, *args], capture_output=True, text=True, timeout=180, env=env, check=False
        )

    return run
