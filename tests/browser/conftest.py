"""A real headless Chromium (Debian's `chromium` package) driven by Playwright for Python.

Never `playwright install`: the browser is the system one. Chromium's own background traffic
(updates, sync, QUIC probes) is switched off: the test machine has no outside network.
Missing Chromium skips locally and FAILS in CI. On a failure the page's screenshot is saved to
tests/artifacts/browser/<test>.png.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from call_router.settings import Settings
from tests.browser import signin
from tests.conftest import require, run_hotline

CHROMIUM = os.environ.get("HOTLINE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "browser"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


# Module scope, not session: Playwright's sync API keeps an event loop running while it is
# started, and pytest-asyncio cannot run the async tests of later modules next to it.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    require(
        Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None,
        f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)",
    )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "Playwright for Python is not installed")
        raise
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class BrowserPage:
    """A page plus every JavaScript dialog it tried to open (alert() means an XSS)."""

    page: Any
    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Account:
    username: str
    password: str


@pytest.fixture(scope="session")
def supervisor_account(stack: Settings) -> Account:
    """A supervisor made once per session through the real CLI (password on stdin)."""
    account = Account(f"browser-sup-{os.getpid()}", secrets.token_urlsafe(18))
    run_hotline(
        "users",
        "add",
        account.username,
        "--role",
        "supervisor",
        "--password-stdin",
        stdin=account.password + "\n",
    )
    return account


def sign_in(page: Any, base_url: str, account: Account) -> None:
    """Sign in through the real /login form, as a person would."""
    page.goto(f"{base_url}/login?lang=en")
    page.fill("#login-form input[name=username]", account.username)
    page.fill("#login-form input[name=password]", account.password)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#current-user", timeout=10_000)


@pytest.fixture
def anonymous_page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[BrowserPage]:
    """A page with no session: it sees only /login."""
    with _browser_page(chromium, request) as holder:
        yield holder


@pytest.fixture
def browser_page(
    chromium: Any, request: pytest.FixtureRequest, stack: Settings, supervisor_account: Account
) -> Iterator[BrowserPage]:
    """A page signed in as a supervisor through the login form."""
    with _browser_page(chromium, request) as holder:
        sign_in(holder.page, stack.dashboard_url, supervisor_account)
        yield holder


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[httpx.Client]:
    """The test's own view through the API: a client with a fresh supervisor token."""
    client = signin.supervisor_api(stack)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def operator_pages(
    chromium: Any, request: pytest.FixtureRequest, stack: Settings
) -> Iterator[Callable[[tuple[str, str]], BrowserPage]]:
    """Opens pages signed in through /login as the given (username, password), each in a
    browser context of its own (its own cookies): several operators side by side."""
    opened = 0
    with contextlib.ExitStack() as pages:

        def open_page(account: tuple[str, str]) -> BrowserPage:
            nonlocal opened
            opened += 1
            holder = pages.enter_context(_browser_page(chromium, request, opened))
            signin.sign_in(holder.page, stack, *account)
            return holder

        yield open_page


@contextlib.contextmanager
def _browser_page(
    chromium: Any, request: pytest.FixtureRequest, number: int = 0
) -> Iterator[BrowserPage]:
    context = chromium.new_context(locale="en-US", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    holder = BrowserPage(page)

    def on_dialog(dialog: Any) -> None:
        holder.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on(
        "console",
        lambda msg: (
            holder.console_errors.append(f"{msg.text} @ {msg.location.get('url', '')}")
            if msg.type == "error"
            else None
        ),
    )
    try:
        yield holder
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
            name += f"-{number}" if number else ""
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        context.close()
