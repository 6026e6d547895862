"""What a crew does on `/crew` from its phone, for the browser tests: sign in on a phone-sized
screen, take a job through "on the way" and "in progress", and mark it done with a short
report (and a photo from the camera input)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from call_router.settings import Settings
from tests.browser.signin import sign_in

PHONE_WIDTH = 390


@contextlib.contextmanager
def crew_phone(chromium: Any, stack: Settings, username: str, password: str) -> Iterator[Any]:
    """A phone-sized page signed in as the crew account, on /crew."""
    context = chromium.new_context(
        locale="en-US",
        viewport={"width": PHONE_WIDTH, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    try:
        page = context.new_page()
        sign_in(page, stack, username, password)
        page.goto(f"{stack.dashboard_url}/crew?lang=en")
        yield page
    finally:
        context.close()


def start_job(page: Any, number: str) -> str:
    """Request `number`'s job card, taken to "in progress" by its buttons (its selector)."""
    job = f"article.job[data-number='{number}']"
    page.wait_for_selector(job, timeout=10_000)
    for state in ("on the way", "in progress"):
        with page.expect_navigation():
            page.click(f"{job} button:has-text('{state}')")
        assert state in (page.text_content(f"{job} h2") or "")
    return job


def finish_job(page: Any, job: str, report: str, photo: Path | None = None) -> None:
    """Mark the job done with `report` (and `photo`)."""
    page.fill(f"{job} input[name=note]", report)
    if photo is not None:
        page.set_input_files(f"{job} input[name=photo]", str(photo))
    # Made for a phone: nothing (the top bar, the chosen file's name) widens the page past
    # the screen, which would zoom it out under the crew's thumb.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
    with page.expect_navigation():
        page.click(f"{job} button[value=done]")
