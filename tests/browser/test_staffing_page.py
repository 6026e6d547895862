"""The staffing forecast and the abandoned-callers list in a real Chromium: the seven days'
charts are drawn from nothing but the dashboard's origin (inline SVG under the CSP), the
shortfall shows in its own colour, and the abandoned caller is listed with a link to their
callback entry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from call_router.callbacks import hotline_zone
from call_router.db import Database
from call_router.models import Call, Callback
from call_router.settings import Settings
from tests.browser.conftest import BrowserPage
from tests.conftest import earlier_today

pytestmark = pytest.mark.asterisk


def _fill(stack: Settings) -> tuple[str, int]:
    """Last week, this quarter hour: 20 answered calls (a need nobody was logged in for); and
    an abandoned caller of two minutes ago with a callback entry, today in the centre's zone
    (the abandoned-callers page opens on today: just after midnight the caller came in at its
    first second, not in yesterday)."""
    now = datetime.now(UTC)
    slot = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0) - timedelta(weeks=1)
    number = f"+7495{uuid.uuid4().int % 10**7:07d}"
    db = Database(stack.db_url)
    try:
        with db.session() as session:
            for i in range(20):
                joined = slot + timedelta(seconds=20 * i)
                session.add(
                    Call(
                        linkedid=f"staff-{uuid.uuid4().hex}", caller_number="+74950000000",
                        started_at=joined, queue="heating", queue_joined_at=joined,
                        answered_at=joined + timedelta(seconds=3), talk_seconds=200,
                        ended_at=joined + timedelta(seconds=203), outcome="answered",
                    )
                )  # fmt: skip
            came = earlier_today(hotline_zone(stack), timedelta(seconds=110), now)
            left = came + timedelta(seconds=50)
            session.add(
                Call(
                    linkedid=f"ab-{uuid.uuid4().hex}", caller_number=number,
                    started_at=came, queue="plumbing",
                    queue_joined_at=came + timedelta(seconds=5), ended_at=left,
                    outcome="abandoned_in_queue", wait_seconds=45,
                )
            )  # fmt: skip
            entry = Callback(
                caller_number=number, reason="abandoned", queue="plumbing",
                created_at=left, updated_at=left,
            )  # fmt: skip
            session.add(entry)
            session.flush()
            return number, entry.id
    finally:
        db.dispose()


def test_staffing_and_abandoned_pages_draw_in_chromium(
    stack: Settings, browser_page: BrowserPage
) -> None:
    number, entry_id = _fill(stack)
    page = browser_page.page
    requested: list[str] = []
    page.on("request", lambda req: requested.append(req.url))

    page.goto(f"{stack.dashboard_url}/reports?lang=en")
    page.click("#report-more a:has-text('Staffing forecast')")
    page.wait_for_selector("svg.staffing-chart", timeout=20_000)
    assert page.locator("section.staffing-day").count() == 7
    assert page.locator("svg.staffing-chart").count() == 7
    # Today's chart: the need of this quarter hour, all of it short (nobody was logged in).
    today = page.locator("section.staffing-day").first
    assert today.locator("rect.needed").count() >= 1
    assert today.locator("rect.shortfall").count() >= 1
    box: Any = today.locator("svg.staffing-chart").bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 100
    assert "Operators at most 85% busy" in page.inner_text("#staffing-basis")

    page.click("a:has-text('Abandoned callers')")
    row = page.wait_for_selector(f"#abandoned tr:has-text('{number}')", timeout=10_000)
    assert row is not None
    link = page.locator(f"#abandoned tr:has-text('{number}') a.callback-link")
    assert link.get_attribute("href") == f"/callbacks/{entry_id}/history"

    origin = stack.dashboard_url.rstrip("/")
    assert [url for url in requested if not url.startswith(origin + "/")] == []
    assert browser_page.console_errors == [] and browser_page.dialogs == []
