"""/docs draws the API in a real Chromium with nothing but the dashboard's origin (/redoc leads
there: ReDoc's bundle always fetches its vendor's logo from the vendor's CDN).

Before, both pages loaded their scripts from a CDN (a script of someone else's into the
dashboard's origin; nothing at all without outside network), and Swagger UI was started by an
inline script the dashboard's Content-Security-Policy refused: the page stayed blank.
"""

from __future__ import annotations

from typing import Any

import pytest

from call_router.settings import Settings
from tests.browser.conftest import BrowserPage

pytestmark = pytest.mark.asterisk


@pytest.mark.parametrize(
    ("path", "drawn"),
    [
        # Swagger UI's title block, then an operation of ours.
        ("/docs", ".swagger-ui .info .title"),
        ("/redoc", ".swagger-ui .info .title"),
    ],
)
def test_the_api_viewers_load_everything_from_the_dashboard(
    stack: Settings, browser_page: BrowserPage, path: str, drawn: str
) -> None:
    page = browser_page.page
    # Leave the page the sign-in landed on first: its own fetches (the home page's callback
    # list) would otherwise be cut short by this navigation and counted as failed here.
    page.goto("about:blank")
    requested: list[str] = []
    page.on("request", lambda req: requested.append(req.url))
    failed: list[str] = []
    page.on("requestfailed", lambda req: failed.append(req.url))

    page.goto(f"{stack.dashboard_url}{path}")
    title: Any = page.wait_for_selector(drawn, timeout=30_000)
    assert "Hotline dashboard" in title.inner_text()
    # Our routes are drawn too (from /openapi.json).
    page.wait_for_function("() => document.body.innerText.includes('/api/calls')", timeout=30_000)

    origin = stack.dashboard_url.rstrip("/")
    outside = [
        url for url in requested
        if not (url.startswith(origin + "/") or url.startswith(("data:", "blob:")))
    ]  # fmt: skip
    assert outside == [], outside
    assert failed == [], failed
    assert browser_page.console_errors == [], browser_page.console_errors
