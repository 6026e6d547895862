"""A tenant's own calendar and prompts through the real Asterisk (issue 19): the FastAGI server
runs on a copy of ivr_flows/ that an administrator changed with the CLI only
(`hotline tenants menu SLUG calendar|prompts`, an edit, `hotline prompts build`,
`hotline flows check`).

One company is closed every day while the centre is open around the clock: a call to its
number takes the after-hours path (key 1: the duty team), a call to the centre does not.
Another company has its own greeting: Asterisk plays that file (its own log says which) to
that company's callers, and the centre's greeting to everyone else.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from call_router.settings import PROJECT_ROOT, Settings
from hotline.sipua.testcall import place_call
from tests.conftest import finished_call, run_hotline
from tests.integration.test_flows_e2e import agi_running_flows, flows_cli, menu_result

pytestmark = pytest.mark.asterisk

CLOSED_NUMBER = "530001"
VOICE_NUMBER = "540001"
CLOSED = """\
week: {mon: closed, tue: closed, wed: closed, thu: closed, fri: closed, sat: closed,
       sun: closed}
"""
OWN_GREETING = """\
prompts:
  greeting:
    ru: "Здравствуйте! Вы позвонили в диспетчерскую товарищества собственников Голос."
    en: "Hello! You have reached the dispatch office of the Golos homeowners."
"""


@dataclass(frozen=True)
class Companies:
    closed: str
    voice: str
    flows: Path


def cli(*args: str) -> Any:
    return json.loads(run_hotline(*args, "--json").stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def companies(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Companies]:
    flows = tmp_path_factory.mktemp("tenant-menus") / "ivr_flows"
    shutil.copytree(PROJECT_ROOT / "ivr_flows", flows)
    suffix = uuid.uuid4().hex[:6]
    closed, voice = f"e2e-closed-{suffix}", f"e2e-voice-{suffix}"

    def administer() -> None:
        """What an administrator does, with HOTLINE_FLOWS_DIR pointing at the copy."""
        for slug, number in ((closed, CLOSED_NUMBER), (voice, VOICE_NUMBER)):
            cli("tenants", "add", f"Dom {slug}", "--slug", slug)
            assert cli("numbers", "add", number, "--tenant", slug)["applied"] is True
        started = cli("tenants", "menu", closed, "calendar")
        assert started["calendar"] is True and started["flows"] == []
        Path(started["folder"], "calendar.yaml").write_text(CLOSED, encoding="utf-8")
        started = cli("tenants", "menu", voice, "prompts")
        Path(started["folder"], "prompts.yaml").write_text(OWN_GREETING, encoding="utf-8")
        assert cli("tenants", "menu", voice)["prompts"] == ["greeting"]
        run_hotline("prompts", "build")
        assert (stack.recordings_dir / "prompts/tenants" / voice / "ru/greeting.wav").is_file()
        checked = flows_cli("check")
        assert checked.returncode == 0, checked.stderr

    with agi_running_flows(stack, flows, prepare=administer):
        yield Companies(closed, voice, flows)


def _steps(api: httpx.Client, call: dict[str, Any]) -> dict[str, dict[str, Any]]:
    detail = api.get(f"/api/calls/{call['id']}").json()
    return {e["data"]["node"]: e["data"] for e in detail["events"] if e["kind"] == "flow_step"}


def _asterisk_log(settings: Settings) -> Path:
    return settings.asterisk_dir / "log" / "full"


def _played(settings: Settings, since: int) -> list[str]:
    """The sound files Asterisk logged playing after byte `since` of its full log."""
    with _asterisk_log(settings).open("rb") as log:
        log.seek(since)
        text = log.read().decode("utf-8", errors="replace")
    return [line.split("Playing '", 1)[1].split("'", 1)[0] for line in text.splitlines()
            if "Playing '" in line]  # fmt: skip


def test_a_closed_company_s_caller_takes_its_after_hours_path_while_the_centre_is_open(
    stack: Settings, api: httpx.Client, companies: Companies
) -> None:
    caller = "+74951190001"
    # Key 1 at night opens the emergency menu; choosing nothing there reaches the duty team
    # (its prompt and one timeout: the caller holds long enough).
    result = place_call(stack, to=CLOSED_NUMBER, dtmf="1", from_number=caller, hold=30)
    assert result.answered, result.detail
    call = finished_call(api, caller)
    assert call["tenant"] == companies.closed
    decided = menu_result(api, call)
    assert (decided["queue"], decided["intent"]) == ("duty", "emergency")
    steps = _steps(api, call)
    assert steps["hours"]["next"] == "after_hours"
    assert steps["hours"]["tenant_menu"] == companies.closed

    # The centre itself is open: its caller goes on to the company question and the greeting.
    centre_caller = "+74951190002"
    result = place_call(stack, dtmf="1", from_number=centre_caller, hold=8)
    assert result.answered, result.detail
    centre_call = finished_call(api, centre_caller)
    centre_steps = _steps(api, centre_call)
    assert centre_steps["hours"]["next"] == "company"
    assert "tenant_menu" not in centre_steps["hours"]
    assert menu_result(api, centre_call)["queue"] == "plumbing"


def test_a_company_s_own_greeting_is_played_to_its_callers_only(
    stack: Settings, api: httpx.Client, companies: Companies
) -> None:
    own = f"prompts/tenants/{companies.voice}/ru/greeting"
    before = _asterisk_log(stack).stat().st_size
    caller = "+74951190003"
    result = place_call(stack, to=VOICE_NUMBER, dtmf="1", from_number=caller, hold=8)
    assert result.answered, result.detail
    call = finished_call(api, caller)
    assert call["tenant"] == companies.voice
    assert _steps(api, call)["greeting"]["tenant_menu"] == companies.voice
    played = _played(stack, before)
    assert any(own in path for path in played), played
    assert not any("/prompts/ru/greeting" in path for path in played), played

    before = _asterisk_log(stack).stat().st_size
    centre_caller = "+74951190004"
    result = place_call(stack, dtmf="1", from_number=centre_caller, hold=8)
    assert result.answered, result.detail
    finished_call(api, centre_caller)
    played = _played(stack, before)
    assert any("/prompts/ru/greeting" in path for path in played), played
    assert not any("/tenants/" in path for path in played), played
