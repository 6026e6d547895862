"""The supervisor's incidents page through the real app (httpx + ASGI) on SQLite: create with the
form (session cookie + CSRF), validation errors on the page, ending early, effect counts, roles;
and the CLI and the page sharing one store (call_router/incidents.py)."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from call_router import accounts, incidents
from call_router.db import Database
from call_router.flow_models import Incident
from call_router.models import Call, CallEvent, utcnow
from call_router.settings import Settings
from dashboard.main import create_app
from tests.conftest import bearer_headers, require, run_hotline

BASE = "http://dashboard.test"
PASSWORD = "a long enough secret"
HOSTILE = "<script>alert(1)</script>"
CALLER = "+74954440701"

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Redis and AMI on closed ports; prompts are spoken into the test's own recordings folder.
    return Settings(
        state_dir=tmp_path / "state",
        recordings_dir=tmp_path / "recordings",
        timezone="Europe/Moscow",
        ami_port=1,
        redis_url="redis://127.0.0.1:1/0",
    )


@pytest.fixture
def app_db(database: Database) -> Database:
    with database.session() as session:
        now = datetime.now(UTC)
        accounts.create_user(session, "sup", PASSWORD, "supervisor", now=now)
        accounts.create_user(session, "olga", PASSWORD, "operator", now=now)
    return database


@pytest.fixture
async def http(app_db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, app_db, zone=ZoneInfo("Europe/Moscow"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


async def sign_in(http: httpx.AsyncClient, username: str) -> str:
    """The real login form; returns the session's CSRF token (from the page's meta tag)."""
    form = await http.get("/login")
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert login_csrf, form.text
    done = await http.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": login_csrf[1]},
    )
    assert done.status_code == 303, done.text
    page = await http.get("/calls")
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert token, page.text
    return token[1]


def _form(**overrides: str) -> dict[str, str]:
    return {
        "category": "hot_water",
        "areas": f"Lenina 5, {HOSTILE}",
        "until": "2099-01-01 18:00",
        "message_ru": "Нет горячей воды на Ленина 5.",
        "message_en": "No hot water at Lenina 5.",
        **overrides,
    }


def _incidents(db: Database) -> list[Incident]:
    with db.session() as session:
        rows = list(session.scalars(select(Incident).order_by(Incident.id)))
        session.expunge_all()
        return rows


async def test_a_supervisor_announces_an_incident_with_the_form_and_it_is_spoken(
    http: httpx.AsyncClient, app_db: Database, settings: Settings
) -> None:
    require(shutil.which("espeak-ng") is not None, "espeak-ng is not installed")
    csrf = await sign_in(http, "sup")
    page = await http.get("/incidents?lang=en")
    assert page.status_code == 200
    assert 'href="/incidents"' in page.text and 'href="/flows"' in page.text  # nav links
    created = await http.post("/incidents", data={**_form(), "csrf_token": csrf})
    assert created.status_code == 303, created.text
    [row] = _incidents(app_db)
    assert created.headers["location"] == f"/incidents?created={row.id}"
    assert row.category == "hot_water"
    assert row.areas == ["Lenina 5", HOSTILE]
    assert row.message == {"ru": "Нет горячей воды на Ленина 5.", "en": "No hot water at Lenina 5."}
    # 18:00 in Moscow (the hotline's zone) is 15:00 UTC.
    assert row.expected_end == datetime(2099, 1, 1, 15, 0, tzinfo=UTC)
    assert row.ended_at is None
    # Spoken as the CLI speaks it: the flow engine plays prompt `incident_<id>`.
    for lang in ("ru", "en"):
        wav = settings.recordings_dir / "prompts" / lang / f"incident_{row.id}.wav"
        assert wav.stat().st_size > 1000, wav
    listed = await http.get(created.headers["location"])
    assert f"Incident {row.id} announced." in listed.text
    assert "could not be spoken" not in listed.text
    current = listed.text.split('id="incidents-current"', 1)[1].split("</table>", 1)[0]
    assert f'id="incident-{row.id}" data-state="active"' in current
    assert "Lenina 5, &lt;script&gt;alert(1)&lt;/script&gt;" in current
    assert HOSTILE not in listed.text
    assert "2099-01-01 18:00" in current  # shown in the hotline's zone


async def test_bad_input_is_shown_on_the_page_with_what_was_typed_and_nothing_is_stored(
    http: httpx.AsyncClient, app_db: Database
) -> None:
    csrf = await sign_in(http, "sup")
    bad = await http.post(
        "/incidents?lang=en",
        data={
            **_form(category="volcano", message_ru="  ", until="soon", message_en=HOSTILE),
            "csrf_token": csrf,
        },
    )
    assert bad.status_code == 400
    assert "The incident was not created" in bad.text
    assert "Choose a problem from the list." in bad.text
    assert "Write what callers hear." in bad.text
    assert "Use HH:MM or YYYY-MM-DD HH:MM." in bad.text
    # What was typed comes back, escaped.
    assert 'value="soon"' in bad.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;</textarea>" in bad.text
    assert HOSTILE not in bad.text
    past = await http.post(
        "/incidents?lang=ru", data={**_form(until="2000-01-01 10:00"), "csrf_token": csrf}
    )
    assert past.status_code == 400
    assert "Это время уже прошло." in past.text
    assert _incidents(app_db) == []


async def test_an_incident_targets_an_area_chosen_from_the_list(
    http: httpx.AsyncClient, app_db: Database
) -> None:
    from call_router import areas

    with app_db.session() as session:
        csv = b"Irkutsk,Oktyabrsky,,,11\nIrkutsk,Oktyabrsky,Lenina,14,\n"
        areas.import_rows(session, areas.parse_csv(csv))
    csrf = await sign_in(http, "sup")
    page = await http.get("/incidents?lang=en")
    picker = page.text.split('id="area-pick"', 1)[1].split("</select>", 1)[0]
    assert '<option value="">whole city</option>' in picker
    assert '<option value="irkutsk/oktyabrsky">\u2003Oktyabrsky (11)</option>' in picker
    assert '<option value="irkutsk/oktyabrsky/lenina/14">\u2003\u2003\u200314</option>' in picker
    form = {**_form(areas=""), "area_pick": "irkutsk/oktyabrsky", "csrf_token": csrf}
    created = await http.post("/incidents", data=form)
    assert created.status_code == 303, created.text
    assert [row.areas for row in _incidents(app_db)] == [["irkutsk/oktyabrsky"]]
    # A path of no area is a typo no caller would match: refused, with what was typed.
    typo = {**_form(areas="irkutsk/oktyabrskiy"), "csrf_token": csrf}
    refused = await http.post("/incidents?lang=en", data=typo)
    assert refused.status_code == 400
    assert "No such area: choose one from the list." in refused.text
    assert 'value="irkutsk/oktyabrskiy"' in refused.text
    assert len(_incidents(app_db)) == 1


async def test_ending_early_moves_it_to_recent_and_the_effect_counts_show(
    http: httpx.AsyncClient, app_db: Database
) -> None:
    now = utcnow()
    with app_db.session() as session:
        new = incidents.validate(
            "electricity", "Нет света.", "No power.", now=now, tz_name="Europe/Moscow"
        )
        incident_id = incidents.create(session, new, now).id
        call = Call(linkedid=uuid.uuid4().hex, caller_number=CALLER, started_at=now)
        session.add(call)
        session.flush()
        session.add_all(
            [
                CallEvent(
                    call_id=call.id,
                    kind="incident_announced",
                    key="announced-1",
                    data={"node": "incidents", "incidents": [incident_id]},
                ),
                CallEvent(
                    call_id=call.id,
                    kind="hangup_in_menu",
                    key="hangup-1",
                    data={"node": "incidents"},
                ),
            ]
        )
    headers = bearer_headers(app_db)
    page = await http.get("/incidents?lang=en", headers=headers)
    row = page.text.split(f'id="incident-{incident_id}"', 1)[1].split("</tr>", 1)[0]
    # id, heard, hung up after
    assert re.findall(r"<td class=\"num\">(\d+)</td>", row) == [str(incident_id), "1", "1"]
    assert "whole city" in row
    ended = await http.post(f"/incidents/{incident_id}/end", headers=headers)
    assert ended.status_code == 303
    assert ended.headers["location"] == f"/incidents?ended={incident_id}"
    [stored] = _incidents(app_db)
    assert stored.ended_at is not None
    after = await http.get(ended.headers["location"] + "&lang=en", headers=headers)
    assert f"Incident {incident_id} ended." in after.text
    assert 'id="incidents-current"' in after.text and "No incident is announced." in after.text
    recent = after.text.split('id="incidents-ended"', 1)[1]
    assert f'id="incident-{incident_id}" data-state="ended"' in recent
    missing = await http.post("/incidents/999999/end", headers=headers)
    assert missing.status_code == 404


async def test_operators_cannot_use_the_page_and_a_cookie_post_needs_the_csrf_token(
    http: httpx.AsyncClient, app_db: Database
) -> None:
    csrf = await sign_in(http, "olga")
    assert (await http.get("/incidents")).status_code == 403
    refused = await http.post("/incidents", data={**_form(), "csrf_token": csrf})
    assert refused.status_code == 403
    token_refused = await http.post(
        "/incidents", data=_form(), headers=bearer_headers(app_db, role="operator", name="op")
    )
    assert token_refused.status_code == 403
    assert 'href="/incidents"' not in (await http.get("/calls")).text
    http.cookies.clear()
    await sign_in(http, "sup")
    forged = await http.post("/incidents", data=_form())  # no CSRF token
    assert forged.status_code == 403
    assert _incidents(app_db) == []


async def test_the_cli_and_the_page_share_the_incidents(
    http: httpx.AsyncClient, app_db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", app_db.url)
    monkeypatch.setenv("HOTLINE_TIMEZONE", "Europe/Moscow")

    def cli(*args: str) -> str:
        return run_hotline("incidents", *args).stdout

    added = json.loads(
        cli(
            "add",
            "gas",
            "--ru",
            "Утечка газа.",
            "--en",
            "Gas leak.",
            "--areas",
            "Mira 1",
            "--until",
            "2099-06-01 09:30",
            "--no-speak",
            "--json",
        )
    )
    assert added == {
        "id": added["id"],
        "category": "gas",
        "areas": ["Mira 1"],
        "expected_end": "2099-06-01T06:30:00+00:00",
        "prompts": [],
    }
    headers = bearer_headers(app_db)
    page = await http.get("/incidents?lang=en", headers=headers)
    assert f'id="incident-{added["id"]}" data-state="active"' in page.text
    assert (await http.post(f"/incidents/{added['id']}/end", headers=headers)).status_code == 303
    assert json.loads(cli("list", "--json")) == []
    [row] = json.loads(cli("list", "--all", "--json"))
    assert row["id"] == added["id"] and row["ended_at"] is not None
    assert (row["heard"], row["hung_up_after"]) == (0, 0)
    assert cli("list", "--all").split()[:3] == [str(added["id"]), "ended", "gas"]
    bad = run_hotline("incidents", "add", "volcano", "--ru", "x", "--en", "y", check=False)
    assert bad.returncode == 2 and "category must be one of water" in bad.stderr
