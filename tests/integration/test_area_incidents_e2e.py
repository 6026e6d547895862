"""Incidents by area through the real Asterisk (issue 16): an incident for one district is
heard by a caller whose open request is on a street of it, not by a caller from another
district, and a caller the hotline cannot place keys their district code and hears it.

Three SIP calls on the shipped `hotline` flow. When the code is keyed is taken from the
spoken prompts' lengths (the greeting and the language offer come first), not guessed.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import httpx
import pytest

from call_router.settings import Settings
from hotline.sipua.testcall import place_call
from tests.conftest import finished_call, run_hotline

pytestmark = pytest.mark.asterisk

# A city of its own: no other test's caller or request is in it.
AREAS_CSV = """\
city,district,street,house,code
Testgrad,Severny,,,4711
Testgrad,Severny,Sosnovaya,,
Testgrad,Yuzhny,,,4722
Testgrad,Yuzhny,Kedrovaya,,
"""
NORTH = "testgrad/severny"
# Asked after the answer: this long before the first prompt starts, at most.
SETTLE = 1.0


def seconds(settings: Settings, lang: str, name: str) -> float:
    with wave.open(str(settings.recordings_dir / "prompts" / lang / f"{name}.wav")) as w:
        return w.getnframes() / w.getframerate()


def events(api: httpx.Client, call: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    detail = api.get(f"/api/calls/{call['id']}").json()
    return [e["data"] for e in detail["events"] if e["kind"] == kind]


def step(api: httpx.Client, call: dict[str, Any], node: str) -> dict[str, Any]:
    found = [s for s in events(api, call, "flow_step") if s["node"] == node]
    assert found, f"the call never reached {node}: {events(api, call, 'flow_step')}"
    return found[0]


def heard(api: httpx.Client, call: dict[str, Any]) -> list[int]:
    return [i for e in events(api, call, "incident_announced") for i in e["incidents"]]


def open_request(api: httpx.Client, caller: str, street: str) -> None:
    made = api.post(
        "/api/requests",
        json={"category": "heating", "street": street, "house": "1", "caller_number": caller},
    )
    assert made.status_code in (200, 201), made.text


def test_a_districts_incident_is_heard_in_it_only_and_by_a_keyed_district_code(
    stack: Settings, api: httpx.Client, tmp_path: Path
) -> None:
    csv = tmp_path / "areas.csv"
    csv.write_text(AREAS_CSV, encoding="utf-8")
    imported = json.loads(run_hotline("areas", "import", str(csv), "--json").stdout)
    assert NORTH in imported["areas"]
    listed = json.loads(run_hotline("areas", "list", "--json").stdout)
    assert {"path": NORTH, "name": "Severny", "level": "district", "code": "4711"} in listed

    added = json.loads(
        run_hotline(
            "incidents", "add", "heating",
            "--ru", "В Северном районе нет отопления.",
            "--en", "No heating in the Severny district.",
            "--areas", "Testgrad/Severny",
            "--json",
        ).stdout.strip().splitlines()[-1]
    )  # fmt: skip
    assert added["areas"] == [NORTH] and len(added["prompts"]) == 2
    try:
        before = seconds(stack, "ru", "greeting") + seconds(stack, "en", "english_offer")
        announcement = seconds(stack, "ru", f"incident_{added['id']}")
        # Long enough to hear the announcement to its end, then gone during "if different".
        hold = SETTLE + before + announcement + 5.0

        # 1. From a street of the district (their open request's address): heard, not asked.
        north = "+74951160001"
        open_request(api, north, "Sosnovaya street")
        call = _call(stack, api, north, hold=hold)
        placed = step(api, call, "area")
        assert (placed["source"], placed["area"]) == ("known", f"{NORTH}/sosnovaya"), placed
        assert heard(api, call) == [added["id"]]

        # 2. From the other district: placed there, and nothing is announced.
        south = "+74951160002"
        open_request(api, south, "Kedrovaya")
        call = _call(stack, api, south, hold=hold)
        placed = step(api, call, "area")
        assert (placed["source"], placed["area"]) == ("known", "testgrad/yuzhny/kedrovaya")
        assert step(api, call, "incidents")["announced"] == []
        assert heard(api, call) == []

        # 3. Unknown: keys the district code while it is asked for, then hears it.
        asked = seconds(stack, "ru", "district_code")
        keyed_at = SETTLE + before + asked / 2
        stranger = "+74951160003"
        call = _call(
            stack, api, stranger, hold=keyed_at + asked + announcement + 5.0,
            dtmf="4711#", dtmf_delay=keyed_at,
        )  # fmt: skip
        placed = step(api, call, "area")
        assert (placed["source"], placed["area"]) == ("keypad", NORTH), placed
        assert heard(api, call) == [added["id"]]
    finally:
        run_hotline("incidents", "end", str(added["id"]))


def _call(
    stack: Settings,
    api: httpx.Client,
    caller: str,
    *,
    hold: float,
    dtmf: str = "",
    dtmf_delay: float = 0.0,
) -> dict[str, Any]:
    # The keys go out `dtmf_delay` after the answer (a wait in the SIP scenario).
    result = place_call(stack, from_number=caller, hold=hold, dtmf=dtmf, dtmf_delay=dtmf_delay)
    assert result.answered, result.detail
    return finished_call(api, caller)
