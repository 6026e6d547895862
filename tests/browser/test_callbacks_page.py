"""The callback list and call playback in a real browser against the real hotline.

One resident leaves a real voicemail through the sandbox Asterisk (nobody answers, the menu
hands them to the coordinator, then the message offer): the call detail page plays it, and an
operator works the callback entry it created from the list page: claim, click-to-call with
both legs on real baresip phones, outcome. Two operators' pages side by side see each other's
claims live (no reload).
"""

from __future__ import annotations

import math
import secrets
import struct
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from call_router.db import Database
from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.browser.conftest import BrowserPage
from tests.browser.signin import operator_account
from tests.conftest import add_operator, finished_call, open_callback, run_hotline, wait_for
from tests.integration.conftest import entry_of

OperatorPages = Callable[[tuple[str, str]], BrowserPage]

pytestmark = pytest.mark.asterisk

RESIDENT = "+74954440010"
# The message offer comes ~90 s into a call nobody picks up (menu timeouts, coordinator,
# offer); the caller's tone lasts past it, then real silence ends the message (maxsilence).
TONE_SECONDS = 104
SILENCE_SECONDS = 10


def caller_audio(path: Path) -> Path:
    rate = 8000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(
            b"".join(
                struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * i / rate)))
                for i in range(rate * TONE_SECONDS)
            )
        )
        out.writeframes(b"\x00\x00" * rate * SILENCE_SECONDS)
    return path


@pytest.fixture(scope="module")
def operator(stack: Settings) -> Iterator[dict[str, Any]]:
    # Not in the coordinator queue: the voicemail path needs that queue empty.
    info = add_operator("Vic Voicemail", "meters")
    info["account"] = operator_account(stack, info["sip_login"])
    try:
        yield info
    finally:
        run_hotline("operators", "disable", info["sip_login"])


@pytest.fixture(scope="module")
def voicemail_call(
    stack: Settings, api: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    audio = caller_audio(tmp_path_factory.mktemp("voicemail") / "caller.wav")
    result = place_call(
        stack, from_number=RESIDENT, audio=audio, hold=TONE_SECONDS + SILENCE_SECONDS + 5
    )
    assert result.answered, result.detail
    call = finished_call(api, RESIDENT)
    assert call["outcome"] == "voicemail", call
    return call


def test_the_call_detail_plays_the_real_voicemail(
    stack: Settings,
    api: httpx.Client,
    operator: dict[str, Any],
    voicemail_call: dict[str, Any],
    operator_pages: OperatorPages,
) -> None:
    call_id = voicemail_call["id"]
    served = api.get(f"/calls/{call_id}/audio/voicemail")
    assert served.status_code == 200, served.text
    assert served.headers["content-type"] == "audio/wav"
    assert served.content[:4] == b"RIFF" and served.content[8:12] == b"WAVE"

    browser_page = operator_pages(operator["account"])
    page = browser_page.page
    page.goto(f"{stack.dashboard_url}/calls/{call_id}?lang=en")
    page.wait_for_function(
        """() => {
            const a = document.getElementById("audio-voicemail");
            return a !== null && a.readyState >= 1 && a.duration > 0;
        }""",
        timeout=20_000,
    )
    duration = page.evaluate("document.getElementById('audio-voicemail').duration")
    assert duration > 2, f"the message is {duration} s long"
    # And it really plays (muted: headless Chromium's autoplay rules allow that).
    position = page.evaluate(
        """async () => {
            const a = document.getElementById("audio-voicemail");
            a.muted = true;
            await a.play();
            await new Promise((done) => setTimeout(done, 700));
            a.pause();
            return a.currentTime;
        }"""
    )
    assert position > 0.2, f"playback did not advance ({position})"
    assert browser_page.dialogs == []


def test_an_operator_claims_calls_back_and_resolves_from_the_list(
    stack: Settings,
    api: httpx.Client,
    operator: dict[str, Any],
    voicemail_call: dict[str, Any],
    operator_pages: OperatorPages,
) -> None:
    login = operator["sip_login"]
    entry = wait_for(lambda: entry_of(api, RESIDENT), what="the voicemail's callback entry")
    assert entry["reason"] == "voicemail"
    row = f"tr.cb-row[data-id='{entry['id']}']"

    browser_page = operator_pages(operator["account"])
    page = browser_page.page
    page.goto(f"{stack.dashboard_url}/callbacks?lang=en")
    page.locator(f"#cb-queue {row} button[data-action='claim']").click()
    page.wait_for_selector(f"#cb-mine {row}", timeout=10_000)
    assert api.get(f"/api/callbacks/{entry['id']}").json()["claimed_by"] == login
    # The entry's history, on demand.
    page.locator(f"#cb-mine {row} details.history summary").click()
    page.wait_for_selector(f"#cb-mine {row} .history-body li:has-text('claimed')", timeout=5_000)

    with (
        Softphone(stack, login, operator["sip_password"]) as op_phone,
        Softphone(stack, RESIDENT, "", register=False, local_port=stack.pstn_port) as res_phone,
    ):
        page.locator(f"#cb-mine {row} button[data-action='call']").click()
        # The page follows the call: the operator's phone, then the resident's, connected.
        page.wait_for_selector("#cb-progress[data-stage='connected']", timeout=40_000)
        assert op_phone.calls_answered() == 1 and res_phone.calls_answered() == 1
        res_phone.hangup()
        page.wait_for_selector("#cb-progress[data-done='yes']", timeout=30_000)
    assert "the resident answered" in page.inner_text("#cb-progress-text")

    form = page.locator(f"#cb-mine form.cb-outcome[data-id='{entry['id']}']")
    form.locator("select[name='outcome']").select_option("reached")
    form.locator("input[name='note']").fill("Boiler <b>restarted</b>")
    form.locator("button[type='submit']").click()
    page.wait_for_selector(row, state="detached", timeout=10_000)

    done = api.get(f"/api/callbacks/{entry['id']}").json()
    assert done["status"] == "closed" and done["resolved_by"] == login
    assert done["last_outcome"] == "reached"
    actions = [h["action"] for h in done["history"]]
    assert actions[-4:] == ["claimed", "call_started", "call_ended", "outcome"], actions
    assert done["history"][-1]["note"] == "Boiler <b>restarted</b>"
    assert browser_page.dialogs == []
    assert not [e for e in browser_page.console_errors if "Content Security Policy" in e]


@pytest.fixture(scope="module")
def two_operators(stack: Settings) -> Iterator[list[dict[str, Any]]]:
    infos = [add_operator(name, "meters") for name in ("Lev Live", "Mia Live")]
    for info in infos:
        info["account"] = operator_account(stack, info["sip_login"])
    try:
        yield infos
    finally:
        for info in infos:
            run_hotline("operators", "disable", info["sip_login"])


def test_two_operators_see_each_others_claims_without_reloading(
    stack: Settings,
    api: httpx.Client,
    two_operators: list[dict[str, Any]],
    operator_pages: OperatorPages,
) -> None:
    # An entry of its own (a resident who asked for a call-back), straight into the list.
    number = "+7495" + str(secrets.randbelow(10**7)).zfill(7)
    db = Database(stack.db_url)
    try:
        entry_id = open_callback(db, number, queue="meters")
    finally:
        db.dispose()
    row = f"tr.cb-row[data-id='{entry_id}']"
    lev, mia = (operator_pages(info["account"]) for info in two_operators)
    for holder in (lev, mia):
        holder.page.goto(f"{stack.dashboard_url}/callbacks?lang=en")
        holder.page.wait_for_selector("#callbacks[data-live='yes']", timeout=10_000)
        holder.page.wait_for_selector(f"#cb-queue {row} button[data-action='claim']")
        # Set on the page: a reload would lose it.
        holder.page.evaluate("window.__noReload = true")

    lev.page.locator(f"#cb-queue {row} button[data-action='claim']").click()
    lev.page.wait_for_selector(f"#cb-mine {row}", timeout=5_000)
    # Mia's page hears of it over the live feed: claimed by Lev, no claim button any more.
    mia.page.wait_for_selector(
        f"#cb-queue {row}:not(:has(button[data-action='claim']))", timeout=5_000
    )
    assert two_operators[0]["sip_login"] in mia.page.inner_text(f"#cb-queue {row}")
    assert (
        api.get(f"/api/callbacks/{entry_id}").json()["claimed_by"]
        == (two_operators[0]["sip_login"])
    )

    # Lev gives it back: Mia may claim it again, and does; Lev sees that too.
    lev.page.locator(f"#cb-mine {row} button[data-action='release']").click()
    mia.page.wait_for_selector(f"#cb-queue {row} button[data-action='claim']", timeout=5_000)
    mia.page.locator(f"#cb-queue {row} button[data-action='claim']").click()
    lev.page.wait_for_selector(
        f"#cb-queue {row}:not(:has(button[data-action='claim']))", timeout=5_000
    )
    assert two_operators[1]["sip_login"] in lev.page.inner_text(f"#cb-queue {row}")
    for holder in (lev, mia):
        assert holder.page.evaluate("window.__noReload === true"), "the page reloaded"
        assert holder.dialogs == []
