"""A supervisor changes the voice menu by editing YAML only, through the real Asterisk.

The running FastAGI server is pointed at a copy of ivr_flows/ (HOTLINE_FLOWS_DIR); the test
edits that copy like a supervisor would, checks it, reloads it, and a real SIP call with the
new key lands in the new queue. Then a broken edit is refused and the last good menu stays.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from call_router.settings import PROJECT_ROOT, Settings
from hotline import services
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.conftest import add_operator, finished_call, run_hotline, wait_for

pytestmark = pytest.mark.asterisk

FLOWS_CLI = [sys.executable, "-m", "hotline", "flows"]

OPERATOR_CHOICE = '      operator: {key: "0", next: operator, confirm_prompt: said_operator}\n'
NEW_OPTION = OPERATOR_CHOICE + '      emergency: {key: "8", next: urgent}\n'
NEW_NODE = """
  urgent:
    type: route
    queue: duty
    intent: emergency
    priority: 10
    prompt: transfer
"""


def flows_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLOWS_CLI, *args], capture_output=True, text=True, timeout=60, env=os.environ.copy()
    )


def restart_agi(settings: Settings) -> None:
    services.stop_service(settings, "agi")
    services.start_service(settings, "agi")
    services.wait_ready(settings, "agi")


@contextlib.contextmanager
def agi_running_flows(
    settings: Settings, flows: Path, prepare: Callable[[], None] | None = None
) -> Iterator[Path]:
    """The `agi` service restarted on the flows folder `flows` (HOTLINE_FLOWS_DIR; `prepare`
    runs with it set, before the restart), and back on the default folder afterwards."""
    saved = os.environ.get("HOTLINE_FLOWS_DIR")
    os.environ["HOTLINE_FLOWS_DIR"] = str(flows)
    try:
        if prepare is not None:
            prepare()
        restart_agi(settings)
        yield flows
    finally:
        if saved is None:
            os.environ.pop("HOTLINE_FLOWS_DIR", None)
        else:
            os.environ["HOTLINE_FLOWS_DIR"] = saved
        # Prompts the test spoke from its edited texts are spoken again from the real ones:
        # the stack's later tests hear (and check) the shipped menu.
        run_hotline("prompts", "build")
        restart_agi(settings)


@pytest.fixture
def supervised_flows(stack: Settings, tmp_path: Path) -> Iterator[Path]:
    """The FastAGI server running on a copy of ivr_flows/ the test may edit."""
    flows = tmp_path / "ivr_flows"
    shutil.copytree(PROJECT_ROOT / "ivr_flows", flows)
    with agi_running_flows(stack, flows):
        yield flows


def _agi_log(settings: Settings) -> str:
    path = settings.log_dir / "agi.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def menu_result(api: httpx.Client, call: dict[str, Any]) -> dict[str, Any]:
    """What the flow decided (the call's final queue may differ: overflow to the coordinator)."""
    detail = api.get(f"/api/calls/{call['id']}").json()
    kinds = [e["kind"] for e in detail["events"]]
    assert "flow_step" in kinds, kinds  # every step of the flow is on the call's timeline
    results = [e["data"] for e in detail["events"] if e["kind"] == "menu_result"]
    assert len(results) == 1, kinds
    return dict(results[0])


def test_supervisor_adds_a_menu_option_by_yaml_only(
    stack: Settings, api: httpx.Client, supervised_flows: Path
) -> None:
    hotline_yaml = supervised_flows / "hotline.yaml"
    text = hotline_yaml.read_text(encoding="utf-8")
    assert OPERATOR_CHOICE in text
    text = text.replace(OPERATOR_CHOICE, NEW_OPTION) + NEW_NODE
    text = text.replace(
        "To hear the menu again press star.",
        "For flooding or people stuck in a lift, press 8. To hear the menu again press star.",
    ).replace(
        "Чтобы прослушать меню ещё раз",
        "Авария, затопление или застряли в лифте — 8. Чтобы прослушать меню ещё раз",
    )
    hotline_yaml.write_text(text, encoding="utf-8")

    # The changed menu text is spoken again; then the check is clean and the server reloads.
    run_hotline("prompts", "build")
    checked = flows_cli("check")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip().endswith("OK")
    reloaded = flows_cli("reload")
    assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr
    assert "reloaded" in reloaded.stdout

    operator = add_operator("Dmitry Duty", "duty")
    caller = "+74951110061"
    with Softphone(stack, operator["sip_login"], operator["sip_password"]):
        # The caller holds well past the ~6 s from the answer to the duty queue's ring.
        result = place_call(stack, dtmf="8", from_number=caller, hold=12)
        assert result.answered, result.detail
        call = finished_call(api, caller)
    assert menu_result(api, call)["queue"] == "duty"
    assert (call["menu_choice"], call["intent"]) == ("8", "emergency")
    # Answered by the duty operator: the new option really leads to that team.
    assert (call["queue"], call["outcome"]) == ("duty", "answered"), (call, _agi_log(stack))

    # A broken edit: refused with file and key path, and the running menu keeps key 8.
    hotline_yaml.write_text(
        text.replace("    queue: duty\n", "    queue: dutty\n"), encoding="utf-8"
    )
    broken = flows_cli("check")
    assert broken.returncode == 1
    assert "hotline.yaml: nodes.emergency.queue: unknown queue 'dutty'" in broken.stderr
    refused = flows_cli("reload")
    assert refused.returncode == 1
    assert "last good version" in refused.stderr

    caller = "+74951110062"
    result = place_call(stack, dtmf="8", from_number=caller, hold=6)
    assert result.answered, result.detail
    call = finished_call(api, caller)
    assert menu_result(api, call)["queue"] == "duty", _agi_log(stack)


def test_every_key_of_the_built_in_menu_and_failure_paths(
    stack: Settings, api: httpx.Client
) -> None:
    """The built-in `hotline` flow through the real Asterisk, by keypad."""
    # Keys arrive during the greeting (it hands them to the menu). Multi-key sequences
    # (`*` then a key, wrong keys) are covered over the AGI protocol in test_flow_engine.py:
    # the test caller's DTMF timing cannot aim a second key at the re-played menu.
    cases = [
        ("1", "plumbing", "water"),
        ("4", "lift", "lift"),
        ("0", "coordinator", "operator"),
        ("", "coordinator", None),  # silence: after the retries the coordinator helps
    ]
    for i, (dtmf, queue, intent) in enumerate(cases):
        caller = f"+7495111008{i}"
        result = place_call(stack, dtmf=dtmf, from_number=caller, hold=120 if not dtmf else 8)
        assert result.answered, result.detail
        call = finished_call(api, caller)
        decided = menu_result(api, call)
        assert (decided["queue"], decided["intent"], decided["choice"]) == (
            queue,
            intent,
            dtmf or None,
        ), (dtmf, decided)


def test_incident_is_heard_and_a_caller_who_then_hangs_up_counts_as_helped(
    stack: Settings, api: httpx.Client
) -> None:
    incidents = [sys.executable, "-m", "hotline", "incidents"]

    def cli(*args: str) -> str:
        proc = subprocess.run(
            [*incidents, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy()
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    import json

    added = json.loads(
        cli(
            "add",
            "hot_water",
            "--ru",
            "Во всём городе нет горячей воды, восстановим к восемнадцати часам.",
            "--en",
            "There is no hot water in the city; expected back at six p.m.",
            "--until",
            "23:59",
            "--json",
        )
        .strip()
        .splitlines()[-1]
    )
    assert len(added["prompts"]) == 2  # spoken for both languages
    try:
        caller = "+74951110071"
        # No key: the caller listens to the greeting and the announcement, then hangs up.
        result = place_call(stack, from_number=caller, hold=14)
        assert result.answered, result.detail
        call = finished_call(api, caller)

        def with_the_hangup() -> dict[str, Any] | None:
            # The FastAGI server writes the hang-up in the menu once it sees it, which may be
            # after the router has closed the call's row.
            detail = api.get(f"/api/calls/{call['id']}").json()
            events = {e["kind"]: e["data"] for e in detail["events"]}
            return events if "hangup_in_menu" in events else None

        events = wait_for(with_the_hangup, what="the hang-up in the menu on the timeline")
        assert events["incident_announced"]["incidents"] == [added["id"]]
        assert events["hangup_in_menu"]["node"] == "incidents", events
        listed = json.loads(cli("list", "--json").strip().splitlines()[-1])
        row = next(r for r in listed if r["id"] == added["id"])
        assert (row["heard"], row["hung_up_after"]) == (1, 1)
    finally:
        cli("end", str(added["id"]))
