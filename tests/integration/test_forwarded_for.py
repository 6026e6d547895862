"""Which address sign-in failures count on (issue 10, item 3), through a real uvicorn started
with the dashboard's own launch options (dashboard.main.uvicorn_options), the real Redis and
SQLite/PostgreSQL.

uvicorn's default believes X-Forwarded-For from 127.0.0.1: a guesser on the same box (or
behind a local proxy that does not overwrite the header) could name a new address per guess
and never hit the per-address limit. With no trusted proxy configured, the header changes
nothing.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from call_router.db import Database
from call_router.settings import Settings
from dashboard import login_throttle
from dashboard.main import uvicorn_options
from tests.integration.conftest import REDIS_URL, running


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def dashboard_url(database: Database, tmp_path: Path, redis_prefix: str) -> Iterator[str]:
    settings = Settings(
        state_dir=tmp_path / "state",
        database_url=database.url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        ami_port=1,
        dashboard_port=_free_port(),
        dashboard_workers=1,
    )
    options = {**uvicorn_options(settings), "log_level": "warning", "lifespan": "off"}
    with running(uvicorn.Server(uvicorn.Config(**options)), timeout=20):
        yield f"http://127.0.0.1:{settings.dashboard_port}"


def _attempt(http: httpx.Client, username: str, forwarded_for: str) -> httpx.Response:
    form = http.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf, form.text
    return http.post(
        "/login",
        data={"username": username, "password": "wrong password", "csrf_token": csrf[1]},
        headers={"X-Forwarded-For": forwarded_for},
    )


def test_a_forged_x_forwarded_for_does_not_change_the_counted_address(
    dashboard_url: str,
) -> None:
    limit = login_throttle.PER_ADDRESS.amount
    with httpx.Client(base_url=dashboard_url, timeout=30) as http:
        for n in range(limit):
            # A new made-up account and a new claimed address each time.
            response = _attempt(http, f"guess{n}", f"203.0.113.{n + 1}")
            assert response.status_code == 401, (n, response.text[:200])
        # All of them were counted on the real peer, 127.0.0.1: its limit is reached.
        response = _attempt(http, "guess-last", "198.51.100.77")
    assert response.status_code == 429, response.text[:300]
