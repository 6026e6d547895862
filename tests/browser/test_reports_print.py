"""/reports and /reports/agents in a real Chromium: the service-level chart and the direction
table are drawn from nothing but the dashboard's origin, Russian labels, the agent-session page
reached from /reports, and printing (print media) shows the figures without the navigation,
filters and download links."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from call_router.agent_models import AgentStateLog
from call_router.callbacks import hotline_zone
from call_router.db import Database
from call_router.models import DIRECTION_CALLBACK, Call, Operator
from call_router.settings import Settings
from tests.browser.conftest import BrowserPage

pytestmark = pytest.mark.asterisk


def _fill(stack: Settings, start: datetime) -> str:
    """At `start`: an operator logs in, answers a caller, calls someone back; their login."""
    login = f"9{uuid.uuid4().int % 10**5:05d}"
    name = f"Печать {login}"
    db = Database(stack.db_url)
    try:
        with db.session() as session:
            session.add(Operator(name=name, sip_login=login, sip_password="x" * 16))
            session.add(
                AgentStateLog(sip_login=login, at=start, action="login", source="api", data={})
            )
            for direction, queue in (("inbound", "lift"), (DIRECTION_CALLBACK, None)):
                answered = start + timedelta(minutes=5)
                session.add(
                    Call(
                        linkedid=f"pr-{uuid.uuid4().hex}", caller_number="+74950000009",
                        started_at=answered - timedelta(seconds=12), queue=queue,
                        queue_joined_at=answered - timedelta(seconds=10) if queue else None,
                        answered_at=answered, ended_at=answered + timedelta(seconds=90),
                        talk_seconds=90, outcome="answered", direction=direction,
                        operator=name if queue else login,
                    )
                )  # fmt: skip
        return login
    finally:
        db.dispose()


def test_reports_chart_print_and_agent_sessions_in_chromium(
    stack: Settings, browser_page: BrowserPage
) -> None:
    # A day ago and more, so the period must be chosen (and carried to the agent-session page)
    # to hold it, whatever the hour the suite runs at.
    start = datetime.now(UTC) - timedelta(hours=25)
    login = _fill(stack, start)
    day = start.astimezone(hotline_zone(stack)).date().isoformat()
    page = browser_page.page
    requested: list[str] = []
    page.on("request", lambda req: requested.append(req.url))

    page.goto(f"{stack.dashboard_url}/reports?lang=ru&by=hour&date_from={day}")
    page.wait_for_selector("svg#chart-sl", timeout=20_000)
    assert "Уровень сервиса по времени" in page.inner_text("body")
    box: Any = page.locator("svg#chart-sl").bounding_box()
    assert box is not None and box["width"] > 300
    assert page.locator("svg#chart-sl rect").count() == 24
    callbacks = page.locator("#report-directions tr[data-direction=callback] td.num")
    assert int(callbacks.inner_text()) >= 1
    assert page.locator("header.top").is_visible() and page.locator("form.filters").is_visible()

    page.emulate_media(media="print")
    assert not page.locator("header.top").is_visible()
    assert not page.locator("form.filters").is_visible()
    assert page.locator("svg#chart-sl").is_visible()
    assert page.locator("p.print-only").is_visible()
    page.emulate_media(media="screen")

    page.click("#report-more a:has-text('Смены операторов')")
    row = page.wait_for_selector(f"#agents-period tr[data-login='{login}']", timeout=10_000)
    assert row is not None
    cells = page.locator(f"#agents-period tr[data-login='{login}'] td.num")
    # Log-ins / outs, then ... answered is the 9th number column.
    assert cells.nth(0).inner_text().startswith("1 /")
    assert cells.nth(8).inner_text() == "1"
    page.emulate_media(media="print")
    assert not page.locator("#agents-csv").is_visible()
    assert page.locator(f"#agents-period tr[data-login='{login}']").is_visible()

    origin = stack.dashboard_url.rstrip("/")
    assert [url for url in requested if not url.startswith(origin + "/")] == []
    assert browser_page.console_errors == [] and browser_page.dialogs == []
