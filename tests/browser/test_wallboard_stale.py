"""The wallboard in a real browser says its live data is STALE, with its age, while the router
is stopped (nobody keeps the live state current), and goes back to "Live" when it returns."""

from __future__ import annotations

import pytest

from call_router.settings import Settings
from hotline import services
from tests.browser.conftest import BrowserPage

pytestmark = pytest.mark.asterisk


def test_the_wallboard_says_stale_while_the_router_is_stopped(
    stack: Settings, browser_page: BrowserPage
) -> None:
    page = browser_page.page
    page.goto(f"{stack.dashboard_url}/wallboard?lang=en")
    page.wait_for_selector("#wallboard[data-stale='no']", timeout=20_000)

    assert services.stop_service(stack, "router")
    try:
        # The router's heartbeat ages past its limit; the next picture (at most 10 s) says so.
        page.wait_for_selector("#wb-status:has-text('STALE')", timeout=40_000)
        text = page.locator("#wb-status").inner_text()
        assert "last update" in text and " s ago" in text, text
        assert page.get_attribute("#wallboard", "data-stale") == "yes"
    finally:
        services.start_service(stack, "router")
        services.wait_ready(stack, "router", timeout=60)
    page.wait_for_selector("#wallboard[data-stale='no']", timeout=30_000)
    assert page.locator("#wb-status").inner_text().startswith("Live —")
