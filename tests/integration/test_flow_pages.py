"""The supervisor's flows page through the real app (httpx + ASGI) on SQLite: live flows and the
last load from the FastAGI server's status file, a broken file's error with file and key path,
and "reload now" against a real FastAGI server process (`hotline agi`)."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from call_router import accounts
from call_router.db import Database
from call_router.flows.admin import flows_status_file, read_status
from call_router.flows.loader import FlowRegistry
from call_router.settings import PROJECT_ROOT, QUEUES, Settings
from dashboard.main import create_app
from hotline import services
from tests.conftest import PORT_BASE, bearer_headers, wait_for

BASE = "http://dashboard.test"
PASSWORD = "a long enough secret"
# The FastAGI server of the reload test: ports clear of the stack's (tests/conftest.py).
AGI_PORT = PORT_BASE + 611
AUDIOSOCKET_PORT = PORT_BASE + 612
BROKEN_FLOW = """\
description: <b>broken</b> on purpose
start: hello
nodes:
  hello:
    type: menu
    prompt: greeting
    options:
      "1": {next: hello}
"""

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    shutil.copytree(PROJECT_ROOT / "ivr_flows", folder)
    return folder


@pytest.fixture
def settings(tmp_path: Path, flows_dir: Path, database: Database) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        flows_dir=flows_dir,
        recordings_dir=tmp_path / "recordings",
        database_url=database.url,
        agi_port=AGI_PORT,
        audiosocket_port=AUDIOSOCKET_PORT,
        ami_port=1,
        redis_url="redis://127.0.0.1:1/0",
    )


@pytest.fixture
async def http(database: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database, zone=ZoneInfo("UTC"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


def _section(html: str, element_id: str) -> str:
    return html.split(f'id="{element_id}"', 1)[1].split("</table>", 1)[0]


async def test_the_page_shows_live_flows_the_last_load_and_a_broken_files_error(
    http: httpx.AsyncClient, database: Database, settings: Settings, flows_dir: Path
) -> None:
    # What the FastAGI server does at start: load the folder and write its status file.
    FlowRegistry(flows_dir, queues=QUEUES, status_file=flows_status_file(settings))
    (flows_dir / "broken.yaml").write_text(BROKEN_FLOW, encoding="utf-8")
    loaded_at = read_status(flows_status_file(settings))["loaded_at"]
    assert isinstance(loaded_at, float)

    page = await http.get("/flows?lang=en", headers=bearer_headers(database))
    assert page.status_code == 200
    server = page.text.split('id="flows-server"', 1)[1].split("</dl>", 1)[0]
    assert "not running" in server
    assert datetime.fromtimestamp(loaded_at, UTC).strftime("%Y-%m-%d %H:%M:%S") in server
    hotline = _section(page.text, "flows").split('id="flow-hotline"', 1)[1].split("</tr>", 1)[0]
    assert 'data-live="yes"' in page.text.split('id="flow-hotline"', 1)[1][:20]
    assert "flows/hotline.yaml" in hotline
    assert "Greeting, then the keypad menu" in hotline
    # nodes (6 find the company and its hours, 8 emergencies, 1 the caller's open requests,
    # 1 the caller's area)
    assert '<td class="num">39</td>' in hotline
    assert "ru, en" in hotline
    broken = page.text.split('id="flow-broken"', 1)[1].split("</tr>", 1)[0]
    assert broken.startswith(' data-live="no"')
    assert "the file does not validate" in broken
    errors = _section(page.text, "flow-errors")
    assert re.search(
        r"<td>broken\.yaml</td><td class=\"kv\">nodes\.hello\.on_failure</td>"
        r"<td>required key missing</td>",
        errors,
    ), errors
    assert "<b>broken</b>" not in page.text


async def test_reload_now_without_a_running_server_says_so(
    http: httpx.AsyncClient, database: Database
) -> None:
    headers = bearer_headers(database)
    done = await http.post("/flows/reload", headers=headers)
    assert done.status_code == 303
    assert done.headers["location"] == "/flows?reloaded=not_running"
    page = await http.get(done.headers["location"] + "&lang=en", headers=headers)
    assert "The FastAGI server is not running" in page.text
    ignored = await http.get("/flows?reloaded=%3Cscript%3E&lang=en", headers=headers)
    assert 'id="reload-result"' not in ignored.text


async def test_operators_cannot_see_or_reload_the_flows(
    http: httpx.AsyncClient, database: Database
) -> None:
    headers = bearer_headers(database, role="operator", name="op")
    assert (await http.get("/flows", headers=headers)).status_code == 403
    assert (await http.post("/flows/reload", headers=headers)).status_code == 403


@pytest.fixture
def agi_server(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A real `hotline agi` (FastAGI server) on this test's state, flows and ports."""
    env = {
        "HOTLINE_STATE_DIR": settings.state_dir,
        "HOTLINE_FLOWS_DIR": settings.flows_dir,
        "HOTLINE_RECORDINGS_DIR": settings.recordings_dir,
        "HOTLINE_DATABASE_URL": settings.db_url,
        "HOTLINE_AGI_PORT": settings.agi_port,
        "HOTLINE_AUDIOSOCKET_PORT": settings.audiosocket_port,
        "HOTLINE_AMI_PORT": 1,
        "HOTLINE_REDIS_URL": settings.redis_url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    pid = services.start_service(settings, "agi")
    try:
        wait_for(
            lambda: read_status(flows_status_file(settings)).get("pid") == pid,
            timeout=60,
            what="the FastAGI server's first flows status",
        )
        yield pid
    finally:
        services.stop_service(settings, "agi")


async def test_reload_now_makes_the_running_server_reload_and_reports_refused_files(
    http: httpx.AsyncClient, database: Database, settings: Settings, agi_server: int
) -> None:
    with database.session() as session:
        accounts.create_user(session, "sup", PASSWORD, "supervisor", now=datetime.now(UTC))
    form = await http.get("/login")
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert login_csrf
    signed_in = await http.post(
        "/login", data={"username": "sup", "password": PASSWORD, "csrf_token": login_csrf[1]}
    )
    assert signed_in.status_code == 303
    page = await http.get("/flows?lang=en")
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert csrf
    assert "not running" not in page.text.split('id="flows-server"', 1)[1].split("</dl>", 1)[0]
    first = read_status(flows_status_file(settings))

    (settings.flows_dir / "broken.yaml").write_text(BROKEN_FLOW, encoding="utf-8")
    refused = await http.post("/flows/reload", data={"csrf_token": csrf[1]})
    assert refused.headers["location"] == "/flows?reloaded=refused"
    status = read_status(flows_status_file(settings))
    assert status["pid"] == agi_server and status["generation"] != first["generation"]
    shown = await http.get(refused.headers["location"] + "&lang=en")
    assert "broken files were refused" in shown.text
    server_errors = shown.text.split('id="server-errors"', 1)[1].split("</ul>", 1)[0]
    assert "broken.yaml: nodes.hello.on_failure: required key missing" in server_errors
    assert 'data-live="yes"' in shown.text.split('id="flow-hotline"', 1)[1][:20]

    (settings.flows_dir / "broken.yaml").unlink()
    reloaded = await http.post("/flows/reload", data={"csrf_token": csrf[1]})
    assert reloaded.headers["location"] == "/flows?reloaded=reloaded"
    clean = await http.get("/flows?lang=en")
    assert 'id="server-errors"' not in clean.text
    assert "Every flow file is valid." in clean.text
