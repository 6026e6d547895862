"""The service-request pages through the real app with real sign-ins (cookie sessions, CSRF)
on real SQLite and PostgreSQL: a dispatcher lands on /dispatch and assigns a new request, the
crew reports progress from its phone page, a stale form is refused with the reason, residents'
text is escaped, and a form without the CSRF token is refused."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from call_router import accounts, request_assignment, request_crews
from call_router import request_attachments as files
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.db import Database
from call_router.settings import Settings
from dashboard.main import create_app
from tests.integration.test_dashboard_auth import BASE, PASSWORD, login_form_token

HOSTILE = '<img src=x onerror="alert(1)">'


@pytest.fixture
def world(database: Database) -> tuple[Database, str, int]:
    now = datetime.now(UTC)
    with database.session() as session:
        accounts.create_user(session, "disp", PASSWORD, "dispatcher", now=now)
        accounts.create_user(session, "brigade", PASSWORD, "crew", now=now)
        crew = request_crews.add_crew(
            session,
            "Heat N",
            categories=["heating"],
            districts=[],
            known_categories=life.load_categories(),
        )
        session.flush()
        files.link_member(session, crew.id, "brigade")
        created = store.create_request(
            session,
            store.NewRequest(
                category="heating", street="Lenina", house="5", flat="12", description=HOSTILE
            ),
            categories=life.load_categories(),
            actor="op",
        )
        return database, created.request.number, crew.id


@pytest.fixture
async def browser(database: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(state_dir=tmp_path / "state", ami_port=1, redis_url="redis://127.0.0.1:1/0")
    app = create_app(settings, database, zone=ZoneInfo("UTC"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


async def _sign_in(http: httpx.AsyncClient, username: str) -> tuple[str, str]:
    csrf = await login_form_token(http)
    answer = await http.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf, "next": "/"}
    )
    assert answer.status_code == 303, answer.text
    landing = answer.headers["location"]
    page = await http.get(landing)
    assert page.status_code == 200, page.text
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert token
    return landing, token[1]


async def test_dispatcher_assigns_and_crew_reports(
    world: tuple[Database, str, int], browser: httpx.AsyncClient
) -> None:
    db, number, crew_id = world
    landing, csrf = await _sign_in(browser, "disp")
    assert landing == "/dispatch"
    page = (await browser.get("/dispatch")).text
    assert f'data-number="{number}"' in page
    # Calls pages are not a dispatcher's.
    assert (await browser.get("/calls")).status_code == 403
    detail = (await browser.get(f"/requests/{number}")).text
    assert HOSTILE not in detail and "&lt;img src=x" in detail

    form = {"crew_id": str(crew_id), "version": "1", "back": "dispatch"}
    refused = await browser.post(f"/requests/{number}/assign", data=form)
    assert refused.status_code == 403  # no CSRF token
    done = await browser.post(f"/requests/{number}/assign", data={**form, "csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"].startswith("/dispatch?msg=")
    # The same form again was read at version 1: refused with the reason, nothing changed.
    stale = await browser.post(
        f"/requests/{number}/status",
        data={"state": "not_our_responsibility", "version": "1", "csrf_token": csrf},
    )
    assert stale.status_code == 409 and "changed since you read it" in stale.text
    await browser.post("/logout", data={"csrf_token": csrf})

    landing, csrf = await _sign_in(browser, "brigade")
    assert landing == "/crew"
    jobs = (await browser.get("/crew", params={"crew": crew_id})).text
    assert f'data-number="{number}"' in jobs and 'value="on_the_way"' in jobs
    with db.session() as session:
        version = store.get_request(session, number).version
    for state in ("on_the_way", "in_progress", "done"):
        answer = await browser.post(
            f"/requests/{number}/status",
            data={
                "state": state,
                "version": str(version),
                "back": "crew",
                "note": "fixed",
                "csrf_token": csrf,
            },
        )
        assert answer.status_code == 303, answer.text
        # Back to the same crew's jobs, not to an empty crew chooser.
        assert answer.headers["location"].startswith(f"/crew?crew={crew_id}&msg=")
        version += 1
    # A crew may not close or reassign.
    closing = await browser.post(
        f"/requests/{number}/status", data={"state": "closed", "csrf_token": csrf}
    )
    assert closing.status_code == 403
    assert (await browser.get("/dispatch")).status_code == 403
    with db.session() as session:
        request = store.get_request(session, number)
        assert request.state == "done"
        assert [e.actor for e in request.events][-3:] == ["brigade"] * 3


async def test_a_crew_account_sees_and_moves_only_its_own_crews_jobs(
    world: tuple[Database, str, int], browser: httpx.AsyncClient
) -> None:
    db, number, crew_id = world
    with db.session() as session:
        other = request_crews.add_crew(
            session, "Heat S", categories=["heating"], districts=[],
            known_categories=life.load_categories(),
        )  # fmt: skip
        session.flush()
        request_assignment.assign(session, number, other.id, actor="disp")
        other_id = other.id
    _landing, csrf = await _sign_in(browser, "brigade")
    # Its own crew's page, whichever crew the address names; no chooser.
    jobs = (await browser.get("/crew", params={"crew": other_id})).text
    assert f'data-number="{number}"' not in jobs and 'name="crew"' not in jobs
    # Another crew's job: readable, but no move offered and none taken.
    detail = (await browser.get(f"/requests/{number}")).text
    assert 'value="on_the_way"' not in detail
    moved = await browser.post(
        f"/requests/{number}/status", data={"state": "on_the_way", "csrf_token": csrf}
    )
    assert moved.status_code == 403
    with db.session() as session:
        assert store.get_request(session, number).state == "assigned"
