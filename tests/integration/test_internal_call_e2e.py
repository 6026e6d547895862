"""An operator's test call to the hotline from their own desk phone, on the real Asterisk: the
call is logged with direction `internal` (the dialplan's HotlineInternalCall, read by the
router), so the reports, the abandoned list and the forecast - which count callers (inbound)
only - leave it out, and `/api/calls?direction=internal` finds it."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import pytest

from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from tests.conftest import add_operator, wait_for

pytestmark = pytest.mark.asterisk


def _calls(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    reply = api.get("/api/calls", params=params)
    assert reply.status_code == 200, reply.text
    rows: list[dict[str, Any]] = reply.json()
    return rows


def test_an_operators_test_call_is_internal(stack: Settings, api: httpx.Client) -> None:
    op = add_operator("Test Caller", "lift")
    login = op["sip_login"]
    # Out of the queues: no resident's call in another test rings this phone.
    subprocess.run(
        [sys.executable, "-m", "hotline", "agents", "logout", login],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    with Softphone(stack, login, op["sip_password"]) as phone:
        phone.dial(f"sip:{stack.hotline_number}@{stack.sip_host}:{stack.sip_port}")
        assert phone.wait_for_event("CALL_ESTABLISHED", timeout=30), phone.log

        def own_call() -> dict[str, Any] | None:
            rows = _calls(api, direction="internal")
            return next((r for r in rows if login in (r.get("caller_number") or "")), None)

        call = wait_for(own_call, timeout=30, what="the test call logged as internal")
        phone.hangup()
    assert call["direction"] == "internal"
    ended = wait_for(
        lambda: next(
            (
                r
                for r in _calls(api, direction="internal")
                if r["id"] == call["id"] and r["ended_at"]
            ),
            None,
        ),
        what="the test call's end",
    )
    assert ended["direction"] == "internal"
    # Not a caller: no inbound row for it.
    assert all(r["id"] != call["id"] for r in _calls(api, direction="inbound"))
