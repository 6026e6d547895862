"""A dispatcher and a crew in a real browser (issue 14): the dispatcher ticks two new requests
and assigns them to a crew at once on /dispatch; the crew, on a phone-sized screen, opens /crew
(its own crew's jobs, as its account is linked to the crew), goes on the way, starts work and
marks the job done with a short report and a photo from the phone's camera input. The API then
shows both requests assigned, the job done with the report in its history and the photo kept
(and served back as the image it is), and the resident's "is it fixed?" call scheduled.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from call_router.db import Database
from call_router.request_models import NUMBER_BASE, ServiceRequest
from call_router.settings import Settings
from tests.browser.conftest import _browser_page
from tests.browser.crew_steps import crew_phone, finish_job, start_job
from tests.browser.signin import role_account, sign_in, supervisor_api
from tests.conftest import run_hotline

pytestmark = pytest.mark.asterisk


@pytest.fixture
def api(stack: Settings) -> Iterator[httpx.Client]:
    client = supervisor_api(stack)
    try:
        yield client
    finally:
        client.close()


def _photo(folder: Path) -> Path:
    path = folder / "boiler.png"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def test_a_dispatcher_assigns_two_jobs_and_the_crew_finishes_one_from_its_phone(
    stack: Settings,
    chromium: Any,
    request: pytest.FixtureRequest,
    api: httpx.Client,
    tmp_path: Path,
) -> None:
    crew_name = f"Heat team {secrets.token_hex(3)}"
    crew: dict[str, Any] = json.loads(
        run_hotline("crews", "add", crew_name, "--category", "heating", "--json").stdout
    )
    numbers = []
    for flat in ("12", "14"):
        made = api.post(
            "/api/requests",
            json={
                "category": "heating",
                "street": "Gagarina St",
                "house": f"7{secrets.randbelow(900) + 100}",
                "flat": flat,
                "description": "Radiators cold since the morning",
                "caller_number": f"+7495555{secrets.randbelow(10**4):04d}",
            },
        )
        assert made.status_code == 201, made.text
        numbers.append(made.json()["number"])
    dispatcher = role_account("dispatcher")
    crew_user = role_account("crew")
    run_hotline("crews", "link", str(crew["id"]), crew_user[0])

    # The dispatcher: both new requests ticked, one crew chosen, one click.
    with _browser_page(chromium, request, 1) as holder:
        page = holder.page
        sign_in(page, stack, *dispatcher)
        page.goto(f"{stack.dashboard_url}/dispatch?lang=en")
        for number in numbers:
            page.check(f"#dispatch-new tr[data-number='{number}'] input[name=pick]")
        page.select_option("#bulk-assign select[name=crew_id]", label=crew_name)
        with page.expect_navigation():
            page.click("#bulk-assign button[type=submit]")
        assert holder.dialogs == [] and holder.console_errors == []
    for number in numbers:
        info = api.get(f"/api/requests/{number}").json()
        assert (info["state"], info["crew"]["id"]) == ("assigned", crew["id"]), info

    # The crew, on a phone: its own jobs, on the way, working, done with a report and photo.
    photo = _photo(tmp_path)
    with crew_phone(chromium, stack, *crew_user) as page:
        job = start_job(page, numbers[0])
        assert page.locator(f"article.job[data-number='{numbers[1]}']").count() == 1
        finish_job(page, job, "Air let out of the riser, radiators warm", photo)
        # Done jobs leave the crew's list of open jobs; the other one stays.
        page.wait_for_selector(f"article.job[data-number='{numbers[1]}']", timeout=10_000)
        assert page.locator(job).count() == 0

    done = api.get(f"/api/requests/{numbers[0]}").json()
    assert done["state"] == "done", done
    notes = [entry.get("note") or "" for entry in done["history"]]
    assert any("radiators warm" in note for note in notes), done["history"]
    files = api.get(f"/api/requests/{numbers[0]}/attachments").json()
    assert len(files) == 1 and files[0]["content_type"] == "image/png", files
    served = api.get(f"/api/requests/{numbers[0]}/attachments/{files[0]['id']}")
    assert served.status_code == 200 and served.content == photo.read_bytes()
    assert served.headers["x-content-type-options"] == "nosniff"
    # The resident will be asked whether it is fixed (the router's dialer places the call).
    assert done["feedback_attempts"] == 0 and done["feedback_score"] is None
    db = Database(stack.db_url)
    try:
        with db.session() as session:
            row = session.get(ServiceRequest, int(numbers[0]) - NUMBER_BASE)
            assert row is not None and row.feedback_due_at is not None
    finally:
        db.dispose()
