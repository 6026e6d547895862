"""A supervisor announces an incident through the /incidents form in a real Chromium against the
running hotline, sees it listed, and ends it early."""

from __future__ import annotations

import re

import pytest

from call_router.settings import Settings
from tests.browser.conftest import BrowserPage
from tests.conftest import run_hotline

pytestmark = pytest.mark.asterisk

HOSTILE = "<script>alert(1)</script>"
# Callers of other tests name no area, so an incident limited to this one is never announced
# to them.
AREA = "Browser Test Lane 7"


def test_a_supervisor_announces_an_incident_and_ends_it(
    stack: Settings, browser_page: BrowserPage
) -> None:
    page = browser_page.page
    page.goto(f"{stack.dashboard_url}/incidents?lang=en")
    form = page.locator("#incident-form")
    form.locator("select[name=category]").select_option("lift")
    form.locator("input[name=areas]").fill(f"{AREA}, {HOSTILE}")
    form.locator("input[name=until]").fill("2099-01-01 18:00")
    form.locator("textarea[name=message_ru]").fill("Лифт на ремонте.")
    form.locator("textarea[name=message_en]").fill(f"The lift is being repaired. {HOSTILE}")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#incident-notice:has-text('announced')", timeout=30_000)
    found = re.search(r"created=(\d+)", page.url)
    assert found, page.url
    incident_id = found[1]
    try:
        row = page.locator(f"#incidents-current #incident-{incident_id}")
        assert row.get_attribute("data-state") == "active"
        text = row.inner_text()
        assert "lift" in text and f"{AREA}, {HOSTILE}" in text  # shown as text, not run
        assert "2099-01-01 18:00" in text
        row.locator("button[type=submit]").click()
        page.wait_for_selector("#incident-notice:has-text('ended')", timeout=10_000)
        ended = page.locator(f"#incidents-ended #incident-{incident_id}")
        assert ended.get_attribute("data-state") == "ended"
        assert page.locator(f"#incidents-current #incident-{incident_id}").count() == 0
        assert browser_page.dialogs == []
    finally:
        run_hotline("incidents", "end", incident_id)
