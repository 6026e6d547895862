"""Agent state on the real Asterisk with real SIP operators (baresip), and the disposition.

Log-in / log-out / pause go through the CLI (`hotline agents`) and the dashboard API; what
Asterisk does is checked by who really rings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.conftest import add_operator, alone_in_queue, finished_call, wait_for

pytestmark = pytest.mark.asterisk


def agents(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "hotline", "agents", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def agent(api: httpx.Client, login: str) -> dict[str, Any]:
    (found,) = [a for a in api.get("/api/agents").json() if a["login"] == login]
    return found


def test_login_rings_the_operator_pause_stops_it_and_the_disposition_is_kept(
    stack: Settings, api: httpx.Client
) -> None:
    op = add_operator("Lena Lift", "lift,coordinator:5")
    login = op["sip_login"]

    out = agents("logout", login)
    assert out["applied"] is True and out["state"] == "logged_out" and out["queues"] == []
    # Logged in to one of the two skills only.
    out = agents("login", login, "--queues", "lift")
    assert out["applied"] is True and out["logged_in"] is True
    assert [(q["queue"], q["penalty"]) for q in out["queues"]] == [("lift", 0)]

    # Lena's phone must be lift's only one: another's would take the rings checked below.
    alone_in_queue(api, login, "lift")
    try:
        caller = "+74951110041"
        with Softphone(stack, login, op["sip_password"]) as phone:
            wait_for(lambda: agent(api, login)["state"] == "free", what="the operator free")
            # The menu takes ~6 s from the answer to the queue: the caller holds well past that.
            result = place_call(stack, dtmf="4", from_number=caller, hold=12)
            assert result.answered, result.detail
            call = finished_call(api, caller)
            assert phone.calls_answered() == 1
        assert call["queue"] == "lift" and call["outcome"] == "answered"
        assert call["operator"] == "Lena Lift"

        # The operator's answer after the call: stored and part of the call record.
        saved = api.post(
            f"/api/calls/{call['id']}/disposition",
            json={
                "category": "request_registered",
                "note": "Лифт стоит, 3 подъезд",
                "callout_created": True,
            },
        )
        assert saved.status_code == 200, saved.text
        assert saved.json()["operator"] == "Lena Lift"
        detail = api.get(f"/api/calls/{call['id']}").json()
        assert detail["disposition"]["category"] == "request_registered"
        assert detail["disposition"]["note"] == "Лифт стоит, 3 подъезд"
        assert detail["disposition"]["callout_created"] is True
        bad = api.post(f"/api/calls/{call['id']}/disposition", json={"category": "nonsense"})
        assert bad.status_code == 422
        missing = api.post("/api/calls/999999/disposition", json={"category": "other"})
        assert missing.status_code == 404

        # Paused from the dashboard API: a queued caller waits, the phone never rings.
        paused = api.post(f"/api/agents/{login}/pause", json={"reason": "lunch"})
        assert paused.status_code == 200, paused.text
        assert paused.json()["paused"] is True and paused.json()["pause_reason"] == "lunch"
        caller2 = "+74951110042"
        with Softphone(stack, login, op["sip_password"]) as phone:
            wait_for(lambda: agent(api, login)["state"] == "paused", what="the operator paused")
            result = place_call(stack, dtmf="4", from_number=caller2, hold=14)
            assert result.answered, result.detail
            call2 = finished_call(api, caller2)
            assert phone.calls_ringing() == 0
        assert call2["queue"] == "lift" and call2["outcome"] == "abandoned_in_queue"
        assert not [
            e for e in api.get(f"/api/calls/{call2['id']}").json()["events"] if e["kind"] == "ring"
        ]

        out = agents("unpause", login)
        assert out["paused"] is False
        state = agents("state")
        assert state["asterisk"] is True
        assert any(a["login"] == login and a["paused"] is False for a in state["agents"])
        out = agents("logout", login)
        assert out["state"] == "logged_out"
        assert agent(api, login)["logged_in"] is False
    finally:
        # Also when a step failed: left in lift, Lena would take later tests' rings.
        api.post(f"/api/agents/{login}/logout")
