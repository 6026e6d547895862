"""`hotline status --json`, `hotline doctor` and `/healthz` with dependencies really down: a
closed port for Asterisk, FastAGI and Redis, and the router not running."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from call_router.db import Database
from call_router.health import LAG_LIMIT_SECONDS, read_router_report
from call_router.settings import Settings
from tests.conftest import environment, run_hotline, wait_for
from tests.integration.conftest import REDIS_URL


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def broken_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    # An installed state folder (SQLite opens), whatever else the environment sets.
    (tmp_path / "state").mkdir(mode=0o700)
    env = {
        "HOTLINE_STATE_DIR": str(tmp_path / "state"),
        "HOTLINE_AMI_PORT": str(closed_port()),
        "HOTLINE_AGI_PORT": str(closed_port()),
        "HOTLINE_REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0",
    }
    with environment(env):
        yield env


def test_status_json_reports_each_dependency_and_exits_3_when_one_is_down(
    broken_env: dict[str, str],
) -> None:
    proc = run_hotline("status", "--json", check=False)
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)  # JSON only on stdout
    deps = report["dependencies"]
    assert report["ok"] is False
    assert deps["database"]["ok"] is True, deps["database"]  # SQLite in the state directory
    for down in ("asterisk", "ami_link", "router_lag", "redis", "fastagi"):
        assert deps[down]["ok"] is False, down
        assert deps[down]["hint"], down
    assert broken_env["HOTLINE_AMI_PORT"] in deps["asterisk"]["detail"]


def test_status_check_answers_for_the_named_checks_alone(broken_env: dict[str, str]) -> None:
    # A container's health check: the database is up, so "database" alone is healthy although
    # nothing else of the hotline runs in this environment.
    up = run_hotline("status", "--check", "database", "--json", check=False)
    assert up.returncode == 0, up.stderr
    assert set(json.loads(up.stdout)["dependencies"]) == {"database"}
    down = run_hotline("status", "--check", "fastagi", "--check", "database", check=False)
    assert down.returncode == 3
    assert down.stdout.startswith("fastagi      DOWN"), down.stdout
    assert "database     ok" in down.stdout
    router = run_hotline("status", "--check", "router_spool", "--json", check=False)
    assert router.returncode == 3 and "not running" in router.stdout
    wrong = run_hotline("status", "--check", "fastagj", check=False)
    assert wrong.returncode == 2 and "no check named fastagj" in wrong.stderr


def test_doctor_explains_in_plain_words_what_is_down_and_what_to_run(
    broken_env: dict[str, str],
) -> None:
    proc = run_hotline("doctor", check=False)
    assert proc.returncode == 3
    text = proc.stdout
    assert "Nothing of the hotline is running. Run `hotline up`." in text
    # Redis is not ours to start: it gets its own explanation.
    assert "redis: Redis does not answer" in text
    assert "What to do: start redis-server" in text


async def test_healthz_names_each_dependency_down_but_stays_200_while_the_database_answers(
    tmp_path: Path,
) -> None:
    from dashboard.main import create_app

    down = Settings(
        state_dir=tmp_path / "state",
        ami_port=closed_port(),
        agi_port=closed_port(),
        redis_url=f"redis://127.0.0.1:{closed_port()}/0",
    )
    up = Settings(state_dir=tmp_path / "state", redis_url=REDIS_URL)
    db = Database(f"sqlite:///{tmp_path / 'calls.db'}")
    db.upgrade()
    answers = []
    try:
        for settings in (down, up):
            app = create_app(settings, db, zone=ZoneInfo("UTC"))
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://dashboard.test"
            ) as http:
                answers.append(await http.get("/healthz"))
    finally:
        db.dispose()

    broken, working = answers
    assert broken.status_code == 200  # the dashboard itself works without them
    deps = broken.json()["dependencies"]
    assert deps["database"] == "ok"
    for name in ("asterisk", "ami_link", "router_lag", "redis", "fastagi"):
        assert deps[name] == "down", name
    # Nothing but the word: no ports, paths or errors for an unauthenticated client.
    assert str(down.ami_port) not in broken.text
    assert working.json()["dependencies"]["redis"] == "ok"


def test_the_routers_lag_probes_come_back_through_asterisk(stack: Settings) -> None:
    """The router measures its lag with a UserEvent it sends through Asterisk and reads back.
    A probe Asterisk refuses never comes back: it read as a lag growing without end (`hotline
    status` said the router was minutes behind on an idle stack). Measured after the limit
    has passed, so a probe still on its way cannot pass for one that came back."""
    first = wait_for(lambda: read_router_report(stack), what="the router's report")
    later = wait_for(
        lambda: (
            (r := read_router_report(stack))
            and (r.updated_at - first.updated_at).total_seconds() > 3 * LAG_LIMIT_SECONDS
            and r
        ),
        timeout=60,
        interval=0.5,
        what="a report written well after the first",
    )
    assert later.lag_seconds is not None and later.lag_seconds < LAG_LIMIT_SECONDS, later
