"""After hours through the real Asterisk, whatever the time of day: the FastAGI server runs on
a copy of ivr_flows/ whose calendar is closed every day (the calendar is data, so that is the
injected clock). Emergencies reach the duty queue, a gas smell is put through to the gas
service over the carrier trunk, anything else leaves a voicemail that becomes a callback entry.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydub import AudioSegment
from sqlalchemy import select

from call_router.callback_models import CallbackAttempt
from call_router.db import Database
from call_router.models import Callback
from call_router.settings import PROJECT_ROOT, Settings
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.conftest import add_operator, finished_call, wait_for
from tests.integration.test_flows_e2e import agi_running_flows, menu_result

pytestmark = pytest.mark.asterisk

CLOSED = """\
week: {mon: closed, tue: closed, wed: closed, thu: closed, fri: closed, sat: closed,
       sun: closed}
"""


@pytest.fixture(scope="module")
def closed_hotline(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    flows = tmp_path_factory.mktemp("after-hours") / "ivr_flows"
    shutil.copytree(PROJECT_ROOT / "ivr_flows", flows)
    (flows / "calendar.yaml").write_text(CLOSED, encoding="utf-8")
    with agi_running_flows(stack, flows):
        yield flows


def events(api: httpx.Client, call: dict[str, Any]) -> dict[str, Any]:
    detail = api.get(f"/api/calls/{call['id']}").json()
    return {e["kind"]: e["data"] for e in detail["events"]}


def test_an_emergency_at_night_reaches_the_duty_queue(
    stack: Settings, api: httpx.Client, closed_hotline: Path
) -> None:
    caller = "+74956660101"
    # 1, then no key in the emergency menu (gas, flooding, lift, frost): the duty team.
    result = place_call(stack, dtmf="1", from_number=caller, hold=30)
    assert result.answered, result.detail
    call = finished_call(api, caller)
    decided = menu_result(api, call)
    assert (decided["queue"], decided["intent"], decided["choice"]) == ("duty", "emergency", "1")
    first = next(d for k, d in _steps(api, call) if d["node"] == "hours")
    assert first["next"] == "after_hours"


def _steps(api: httpx.Client, call: dict[str, Any]) -> list[tuple[str, Any]]:
    detail = api.get(f"/api/calls/{call['id']}").json()
    return [(e["kind"], e["data"]) for e in detail["events"] if e["kind"] == "flow_step"]


def test_a_gas_smell_at_night_is_put_through_to_the_gas_service(
    stack: Settings, api: httpx.Client, closed_hotline: Path
) -> None:
    """Key 3: Dial 104 over the pstn trunk, where a phone answers as the gas service."""
    caller = "+74956660102"
    with Softphone(
        stack, stack.gas_emergency_number, "", register=False, local_port=stack.pstn_port
    ) as gas_service:
        result = place_call(stack, dtmf="3", from_number=caller, hold=16)
        assert result.answered, result.detail
        assert gas_service.calls_answered() == 1, gas_service.log[-2000:]
    seen = transfer_outcome(api, finished_call(api, caller))
    assert seen["transfer"] == {
        "node": "gas",
        "number": stack.gas_emergency_number,
        "status": "ANSWER",
    }
    assert "hangup_in_menu" not in seen  # handed over, not abandoned


def transfer_outcome(api: httpx.Client, call: dict[str, Any]) -> dict[str, Any]:
    """The call's events once its transfer has an outcome. The FastAGI server writes how the
    transfer ended when Dial returns, off the caller's path: it may land just after the router
    has closed the row ("dialling" until then)."""
    seen: dict[str, Any] = wait_for(
        lambda: (
            (found := events(api, call)).get("transfer", {}).get("status") not in (None, "dialling")
            and found
        ),
        timeout=15,
        what="the transfer's outcome",
    )
    return seen


def test_anything_else_at_night_leaves_a_voicemail_for_a_callback(
    stack: Settings, api: httpx.Client, closed_hotline: Path
) -> None:
    """A resident's phone (baresip, sending a steady tone as its voice) presses 2, speaks
    after the beep and hangs up; the message is kept, trimmed, and linked to a callback."""
    resident = add_operator("Night Resident", "plumbing")  # an account to call in with
    login = resident["sip_login"]
    voicemail = stack.recordings_dir / "voicemail"
    before = set(voicemail.glob("*.wav")) if voicemail.exists() else set()
    with Softphone(stack, login, resident["sip_password"]) as phone:
        phone._send({"command": "dial", "params": stack.hotline_number})
        assert phone.wait_for_event("CALL_ESTABLISHED", timeout=15), phone.log[-2000:]
        time.sleep(1.0)  # the after-hours menu is playing
        phone._send({"command": "sndcode", "params": "2"})
        recording = wait_for(
            lambda: set(voicemail.glob("*.wav")) - before or None,
            timeout=20,
            what="Asterisk recording the voicemail",
        )
        time.sleep(6.0)  # the message
        phone.hangup()
        assert phone.wait_for_event("CALL_CLOSED", timeout=15)
    call = finished_call(api, login)
    # Written once the message is trimmed, which may be after the call row is closed.
    left = wait_for(
        lambda: events(api, call).get("voicemail"), timeout=15, what="the voicemail event"
    )
    (path,) = recording
    assert left["file"] == f"voicemail/{path.name}"
    audio = wait_for(lambda: _trimmed_audio(path), timeout=15, what="the trimmed voicemail")
    assert 3.0 <= len(audio) / 1000 <= stack.voicemail_max_seconds
    assert audio.dBFS > -40  # the caller's voice, not silence
    db = Database(stack.db_url)
    try:
        with db.session() as session:
            entry = session.scalars(select(Callback).where(Callback.caller_number == login)).one()
            assert (entry.reason, entry.queue, entry.status) == ("voicemail", "coordinator", "open")
            linked = session.scalars(
                select(CallbackAttempt).where(
                    CallbackAttempt.callback_id == entry.id, CallbackAttempt.action == "voicemail"
                )
            ).one()
            assert linked.data == {"file": left["file"]} and linked.call_id == call["id"]
    finally:
        db.dispose()


def _trimmed_audio(path: Path) -> AudioSegment | None:
    try:
        return AudioSegment.from_file(path)
    except Exception:
        return None  # still being written or trimmed
