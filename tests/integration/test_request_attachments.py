"""Attachments of service requests through the real app on real SQLite and PostgreSQL, with
real sign-ins (cookie sessions, CSRF) and API tokens: upload from the request page and from
the crew's "done" form, the API, the served file's headers, and the attacks - another
tenant's staff, a crew not assigned, path traversal in the file name, a page renamed .jpg,
an oversized upload (announced and not), and an upload without the CSRF token."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from PIL import Image

from call_router import accounts, request_assignment, request_crews, tenants
from call_router import request_attachments as files
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.db import Database
from call_router.request_models import RequestAttachment
from call_router.settings import Settings
from tests.integration.test_dashboard_auth import PASSWORD, login_form_token
from tests.integration.test_request_bulk import app_clients

LIMIT = 64 * 1024
HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"


def png(size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 120, 10)).save(out, format="JPEG")
    return out.getvalue()


@dataclass
class World:
    db: Database
    settings: Settings
    number: str  # assigned to crew `mine`
    other_tenant_number: str
    mine: int
    theirs: int
    make: Callable[..., httpx.AsyncClient]


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    now = datetime.now(UTC)
    cats = life.load_categories()
    with database.session() as session:
        tenant_b = tenants.add_tenant(session, "Company B", slug="b")
        for name, role in (("disp", "dispatcher"), ("brigade", "crew"), ("stranger", "crew")):
            accounts.create_user(session, name, PASSWORD, role, now=now)
        accounts.create_user(session, "unlinked", PASSWORD, "crew", now=now)
        mine = request_crews.add_crew(
            session, "Heat N", categories=[], districts=[], known_categories=cats
        )
        theirs = request_crews.add_crew(
            session, "Lifts", categories=[], districts=[], known_categories=cats
        )
        files.link_member(session, mine.id, "brigade")
        files.link_member(session, theirs.id, "stranger")
        made = store.create_request(
            session,
            store.NewRequest(category="heating", street="Lenina", house="5", flat="12"),
            categories=cats,
            actor="op",
        )
        request_assignment.assign(session, made.request.number, mine.id, actor="disp")
        other = store.create_request(
            session,
            store.NewRequest(category="lift", street="Mira", house="1"),
            categories=cats,
            actor="op",
            tenant_id=tenant_b.id,
        )
        numbers = (made.request.number, other.request.number)
        crews = (mine.id, theirs.id)
    settings = Settings(
        state_dir=tmp_path / "state",
        ami_port=1,
        redis_url="redis://127.0.0.1:1/0",
        attachment_max_bytes=LIMIT,
    )
    async with app_clients(database, settings) as make:
        yield World(database, settings, numbers[0], numbers[1], crews[0], crews[1], make)


async def _sign_in(http: httpx.AsyncClient, username: str) -> str:
    csrf = await login_form_token(http)
    answer = await http.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf, "next": "/"}
    )
    assert answer.status_code == 303, answer.text
    page = await http.get("/requests")
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert token
    return token[1]


def _stored(world: World) -> list[RequestAttachment]:
    with world.db.session() as session:
        return list(session.query(RequestAttachment).order_by(RequestAttachment.id))


async def test_upload_from_the_api_and_serve_back_safely(world: World) -> None:
    dispatcher = world.make("dispatcher")
    url = f"/api/requests/{world.number}/attachments"
    sent = await dispatcher.post(url, files={"file": ("../../../etc/cron.d/evil.jpg", png())})
    assert sent.status_code == 201, sent.text
    info = sent.json()
    # The content decides the type and the extension; no folder survives in the name.
    assert info["content_type"] == "image/png" and info["name"] == "evil.png"
    assert info["size"] == len(png()) and info["uploaded_by"].startswith("token:dispatcher-")
    listed = (await dispatcher.get(url)).json()
    assert [a["id"] for a in listed] == [info["id"]]

    served = await dispatcher.get(info["url"])
    assert served.status_code == 200 and served.content == png()
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"] == 'inline; filename="evil.png"'
    assert "sandbox" in served.headers["content-security-policy"]
    assert "no-store" in served.headers["cache-control"]

    pdf = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
    doc = await dispatcher.post(url, files={"file": ("act.pdf", pdf, "text/html")})
    assert doc.status_code == 201 and doc.json()["content_type"] == "application/pdf"
    downloaded = await dispatcher.get(doc.json()["url"])
    assert downloaded.headers["content-type"] == "application/pdf"
    assert downloaded.headers["content-disposition"] == 'attachment; filename="act.pdf"'

    # The bytes are files under the state folder, under random names; the metadata in the DB.
    rows = _stored(world)
    folder = world.settings.attachments_dir
    assert sorted(p.name for p in folder.iterdir()) == sorted(r.stored_as for r in rows)
    assert all(re.fullmatch(r"[0-9a-f]{32}", r.stored_as) for r in rows)
    assert not list((world.settings.state_dir.parent).glob("**/evil*"))
    history = (await dispatcher.get(f"/api/requests/{world.number}")).json()["history"]
    assert [h["note"] for h in history if h["action"] == "attachment"] == ["evil.png", "act.pdf"]


async def test_bad_files_are_refused_with_the_reason(world: World) -> None:
    dispatcher = world.make("dispatcher")
    url = f"/api/requests/{world.number}/attachments"
    renamed = await dispatcher.post(url, files={"file": ("photo.jpg", HTML, "image/jpeg")})
    assert renamed.status_code == 415
    assert renamed.json()["detail"]["code"] == "file_type"
    assert "JPEG, PNG or WebP photo, or a PDF" in renamed.json()["detail"]["message"]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert (await dispatcher.post(url, files={"file": ("a.svg", svg)})).status_code == 415
    fake_jpeg = b"\xff\xd8\xff\xe0" + HTML
    assert (await dispatcher.post(url, files={"file": ("a.jpg", fake_jpeg)})).status_code == 415
    # Over the limit but within the form's allowance: the store refuses it.
    big = png() + b"\0" * (LIMIT - len(png()) + 1)
    over = await dispatcher.post(url, files={"file": ("big.png", big)})
    assert over.status_code == 413 and over.json()["detail"]["code"] == "too_large"
    # Far over: refused from its Content-Length, before any of it is read.
    huge = await dispatcher.post(url, files={"file": ("huge.png", b"\0" * (LIMIT * 4))})
    # (the cap's own answer, dashboard/upload_limit.py: the form was never parsed or spooled)
    assert huge.status_code == 413 and "the upload is too large" in huge.text

    # Sent chunked (no Content-Length): cut off at the cap, also 413.
    async def chunks() -> AsyncIterator[bytes]:
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(16):
            yield b"\0" * (LIMIT // 2)
        yield b"\r\n--xyz--\r\n"

    chunked = await dispatcher.post(
        url, content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=xyz"}
    )
    assert chunked.status_code == 413 and "the upload is too large" in chunked.text
    assert _stored(world) == [] and not any(world.settings.attachments_dir.glob("*"))


async def test_the_wall_and_the_crews(world: World) -> None:
    dispatcher = world.make("dispatcher")
    url = f"/api/requests/{world.number}/attachments"
    info = (await dispatcher.post(url, files={"file": ("a.jpg", jpeg())})).json()
    # Another tenant's supervisor: as if the request did not exist.
    tenant_b = world.make("supervisor", "b")
    for answer in (
        await tenant_b.get(url),
        await tenant_b.get(info["url"]),
        await tenant_b.post(url, files={"file": ("b.jpg", jpeg())}),
    ):
        assert answer.status_code == 404
    # The centre's staff cannot reach B's request's files through A's request either.
    other = f"/api/requests/{world.other_tenant_number}/attachments/{info['id']}"
    assert (await dispatcher.get(other)).status_code == 404
    assert (await dispatcher.get(f"{url}/..%2F..%2Fhotline.db")).status_code in (404, 422)
    assert (await world.make().get(info["url"])).status_code == 401

    # A crew token is linked to no crew; a crew account of another crew; an unlinked one.
    assert (await world.make("crew").get(info["url"])).status_code == 404
    for username in ("stranger", "unlinked"):
        client = world.make()
        csrf = await _sign_in(client, username)
        assert (await client.get(info["url"])).status_code == 404
        assert (await client.get(url)).status_code == 404
        refused = await client.post(
            url, files={"file": ("x.jpg", jpeg())}, headers={"X-CSRF-Token": csrf}
        )
        assert refused.status_code == 404
        page = (await client.get(f"/requests/{world.number}")).text
        assert info["url"] not in page
    # The assigned crew sees them.
    brigade = world.make()
    await _sign_in(brigade, "brigade")
    assert (await brigade.get(info["url"])).content == jpeg()
    assert len(_stored(world)) == 1


async def test_page_upload_and_the_crews_done_photo(world: World) -> None:
    disp = world.make()
    csrf = await _sign_in(disp, "disp")
    attach = f"/requests/{world.number}/attachments"
    refused = await disp.post(attach, files={"file": ("a.png", png())})
    assert refused.status_code == 403  # no CSRF token
    done = await disp.post(attach, files={"file": ("a.png", png())}, data={"csrf_token": csrf})
    assert done.status_code == 303, done.text
    page = (await disp.get(done.headers["location"])).text
    assert "a.png attached" in page and 'id="request-attachments"' in page
    bad = await disp.post(attach, files={"file": ("x.jpg", HTML)}, data={"csrf_token": csrf})
    assert bad.status_code == 415 and "not an accepted file" in bad.text

    crew = world.make()
    csrf = await _sign_in(crew, "brigade")
    jobs = (await crew.get("/crew")).text  # its own crew's jobs, without choosing
    assert f'data-number="{world.number}"' in jobs and 'name="photo"' not in jobs
    with world.db.session() as session:
        version = store.get_request(session, world.number).version
    for state in ("on_the_way", "in_progress"):
        moved = await crew.post(
            f"/requests/{world.number}/status",
            data={"state": state, "version": str(version), "back": "crew", "csrf_token": csrf},
        )
        assert moved.status_code == 303, moved.text
        version += 1
    assert 'name="photo"' in (await crew.get("/crew")).text
    form = {"state": "done", "version": str(version), "back": "crew", "note": "fixed"}
    # A bad photo refuses the whole step: the request stays in progress (no half-done state).
    wrong = await crew.post(
        f"/requests/{world.number}/status",
        data={**form, "csrf_token": csrf},
        files={"photo": ("done.jpg", HTML, "image/jpeg")},
    )
    assert wrong.status_code == 415 and "not an accepted file" in wrong.text
    with world.db.session() as session:
        assert store.get_request(session, world.number).state == "in_progress"
    assert len(_stored(world)) == 1
    ok = await crew.post(
        f"/requests/{world.number}/status",
        data={**form, "csrf_token": csrf},
        files={"photo": ("done.jpg", jpeg(), "image/jpeg")},
    )
    assert ok.status_code == 303, ok.text
    with world.db.session() as session:
        request = store.get_request(session, world.number)
        assert request.state == "done" and request.status_notes == "fixed"
    rows = _stored(world)
    assert [(r.name, r.uploaded_by) for r in rows] == [("a.png", "disp"), ("done.jpg", "brigade")]
    assert len(list(world.settings.attachments_dir.iterdir())) == 2
