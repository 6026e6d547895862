"""Security issue 10 through the real stack (`hotline up`): the dial-out plan and the AMI users.

- A caller with an international number who gives up in the queue lands on the callback list,
  marked refused with the reason; click-to-call refuses it.
- Even a call-back that bypasses Python (an Originate straight into [callback-out]) never
  sends a premium-rate or international number to the trunk: the resident's phone on the
  trunk's address gets no INVITE, while an in-plan number does ring it.
- The router's AMI user cannot run CLI commands or originate a shell; no hotline AMI user can.
"""

from __future__ import annotations

import grp
import json
import pwd
import re
import stat
import uuid
from pathlib import Path

import httpx
import pytest

from call_router.settings import AMI_ROLES, Settings
from hotline.asterisk.sandbox import Asterisk
from hotline.sipua.softphone import Softphone
from tests.conftest import add_operator, finished_call, require, run_hotline, wait_for
from tests.integration.conftest import entry_of, missed_call
from tests.integration.test_asterisk_sandbox import Ami, login
from tests.integration.test_meters_e2e import history, key_in_reading, new_payer

pytestmark = pytest.mark.asterisk


def test_a_caller_from_abroad_is_listed_refused_and_cannot_be_called_back(
    stack: Settings, api: httpx.Client
) -> None:
    operator = add_operator("Ines Abroad", "heating")
    caller = "+442079460123"  # a London number: outside the national plan
    callback_id = missed_call(stack, api, operator, caller)
    entry = entry_of(api, caller)
    assert entry is not None and entry["id"] == callback_id
    assert entry["refused_reason"] == "international"
    login_ = operator["sip_login"]
    claimed = api.post(f"/api/callbacks/{callback_id}/claim", json={"operator": login_})
    assert claimed.status_code == 200, claimed.text
    call = api.post(f"/api/callbacks/{callback_id}/call", json={"operator": login_})
    assert call.status_code == 409, call.text
    assert call.json()["detail"]["code"] == "number_refused"
    detail = api.get(f"/api/callbacks/{callback_id}").json()
    assert detail["active_call_id"] is None
    assert "call_started" not in [h["action"] for h in detail["history"]]
    # The operators' page shows why.
    page = api.get("/callbacks/lists", params={"operator": login_})
    assert page.status_code == 200 and "(international)" in page.text


def _originate_callback(stack: Settings, events: Ami, number: str) -> dict[str, str]:
    """Originate straight into [callback-out] as click-to-call's AMI user, bypassing Python;
    the originated channel's Hangup event (the call-back is over by then)."""
    actions, reply = login(stack, role="originate")
    assert reply["Response"] == "Success", reply
    channel_id = f"sec-{uuid.uuid4().hex[:12]}"
    try:
        reply = actions.action(
            "Originate",
            # A Local channel that answers at once stands in for the operator's phone.
            Channel="Local/hold@hotline-tests",
            Context="callback-out",
            Exten="dial",
            Priority="1",
            ChannelId=channel_id,
            Timeout="10000",
            Async="true",
            Variable=f"HOTLINE_CALLBACK_NUMBER={number},HOTLINE_CALLBACK_RING=3",
        )
        assert reply["Response"] == "Success", reply
        hangup = events.wait_event(
            lambda e: e.get("Event") == "Hangup" and e.get("Uniqueid") == channel_id,
            timeout=40,
            what=f"the hang-up of the call-back to {number}",
        )
    finally:
        actions.close()
    return hangup


def _originate_application(stack: Settings, application: str, data: str) -> None:
    """Run one dialplan application on a Local channel that answers at once, as click-to-call's
    AMI user (which may originate, but not System() or MixMonitor)."""
    actions, reply = login(stack, role="originate")
    try:
        assert reply["Response"] == "Success", reply
        started = actions.action(
            "Originate",
            Channel="Local/hold@hotline-tests",
            Application=application,
            Data=data,
            Async="true",
        )
        assert started["Response"] == "Success", started
    finally:
        actions.close()


def test_the_dialplan_never_sends_a_number_outside_the_plan_to_the_trunk(stack: Settings) -> None:
    events, reply = login(stack)
    assert reply["Response"] == "Success", reply
    try:
        with Softphone(
            stack, "resident", "", answer=False, register=False, local_port=stack.pstn_port
        ) as resident:
            # Control: an in-plan number does reach the trunk (the test can see an INVITE).
            _originate_callback(stack, events, "+74952220099")
            assert resident.wait_for_event("CALL_INCOMING", timeout=10), resident.log[-1500:]
            for number in ("+78091234567", "+8821612345678", "+442079460000"):
                hangup = _originate_callback(stack, events, number)
                # Dial would have sent its INVITE before the hang-up; allow for delivery.
                assert not resident.wait_for_event("CALL_INCOMING", count=2, timeout=2), (
                    f"{number} was dialled over the trunk",
                    resident.log[-1500:],
                )
                assert hangup.get("Cause") == "28", hangup  # refused: invalid number format
    finally:
        events.close()


def _login_as(stack: Settings, username: str, secret: str) -> Ami:
    client = Ami(stack.ami_host, stack.ami_port)
    reply = client.action("Login", Username=username, Secret=secret)
    assert reply["Response"] == "Success", (username, reply)
    return client


def _assert_no_command_and_no_shell(client: Ami, who: str, shell_command: str) -> None:
    """`client` may neither run CLI commands, nor originate into System(), nor load modules."""
    command = client.action("Command", Command="core show version")
    assert command["Response"] == "Error", (who, command)
    assert "Permission denied" in command.get("Message", ""), (who, command)
    shell = client.action(
        "Originate",
        Channel="Local/silent@hotline-tests",
        Application="System",
        Data=shell_command,
        Async="true",
    )
    assert shell["Response"] == "Error", (who, shell)
    message = shell.get("Message", "")
    # Without the originate class: denied; with it but without system: forbidden.
    assert "Permission denied" in message or "Access Forbidden" in message, (who, shell)
    load = client.action("ModuleLoad", Module="app_system.so", LoadType="load")
    assert load["Response"] == "Error", (who, load)


def test_the_routers_ami_user_cannot_run_commands_or_a_shell(stack: Settings) -> None:
    # Logged in exactly as the router is (settings.ami_username / ami_secret).
    router = _login_as(stack, stack.ami_username, stack.ami_secret)
    marker = stack.sandbox_root / "tmp" / f"hotline-pwned-{uuid.uuid4().hex[:8]}"
    try:
        _assert_no_command_and_no_shell(router, "router", f"touch /tmp/{marker.name}")
        # The router has no originate class at all: not even a harmless application.
        plain = router.action(
            "Originate", Channel="Local/silent@hotline-tests", Application="Wait", Data="1"
        )
        assert plain["Response"] == "Error" and "Permission denied" in plain.get("Message", "")
    finally:
        router.close()
    assert not marker.exists()


def test_no_hotline_ami_user_may_run_commands_or_a_shell(stack: Settings) -> None:
    for role in AMI_ROLES:
        client = _login_as(stack, *stack.ami_login(role))
        try:
            _assert_no_command_and_no_shell(client, role, "true")
        finally:
            client.close()


# --- file modes (issue 10 item 5) ----------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_and_recordings_are_private_after_hotline_up(stack: Settings) -> None:
    state = stack.state_dir
    assert _mode(state) == 0o700
    for name in ("hotline.db", "secrets.json"):
        assert _mode(state / name) == 0o600, name
    assert _mode(stack.log_dir) == 0o700
    assert all(_mode(p) & 0o077 == 0 for p in stack.log_dir.iterdir())
    assert _mode(stack.recordings_dir / "voicemail") == 0o700
    for name in ("manager.conf", "pjsip.conf", "voicemail.conf"):
        assert _mode(stack.asterisk_dir / "etc" / name) == 0o600, name
    # Files Asterisk itself writes: its log, and a recording (Record(): Originate refuses
    # MixMonitor, which can run a command).
    assert _mode(stack.asterisk_dir / "log" / "full") == 0o600
    recording = stack.recordings_dir / "calls" / f"modes-{uuid.uuid4().hex[:8]}.wav"
    _originate_application(stack, "Record", f"{Asterisk(stack).view(recording)},0,1")
    wait_for(recording.exists, timeout=20, what="the recording Asterisk writes")
    assert _mode(recording) == 0o600
    assert _mode(recording.parent) == 0o700
    # Written by the sandbox Asterisk's own user, not root (system mode: its own user).
    run_as = Asterisk(stack).run_ids()
    if run_as is not None:
        assert recording.stat().st_uid == run_as[0] != 0


def test_the_sandbox_asterisk_is_not_root(stack: Settings) -> None:
    asterisk = Asterisk(stack)
    # System mode runs the host's own Asterisk as its package made it: nothing of ours to check
    # (skipped locally; CI always runs the sandbox, so there it fails instead).
    require(asterisk.mode == "sandbox", "system mode: the host's own Asterisk runs as packaged")
    status = asterisk.status()
    assert status.running and status.pid is not None, status.detail
    run_as = asterisk.run_ids()
    assert run_as is not None and run_as[0] != 0
    # An id of its own: no service of the host shares it (it could signal or trace them).
    assert run_as[0] not in {p.pw_uid for p in pwd.getpwall()}
    assert run_as[1] not in {g.gr_gid for g in grp.getgrall()}
    # Every thread, effective and saved ids too: nothing of root left after start-up.
    for task in Path(f"/proc/{status.pid}/task").iterdir():
        text = (task / "status").read_text()
        uids = re.search(r"^Uid:\s+(.*)$", text, re.M)
        gids = re.search(r"^Gid:\s+(.*)$", text, re.M)
        assert uids and gids
        assert {int(u) for u in uids.group(1).split()} == {run_as[0]}, (task, uids.group(0))
        assert {int(g) for g in gids.group(1).split()} == {run_as[1]}, (task, gids.group(0))
    # The remote console (over the control socket in its run dir) still answers.
    out = run_hotline("asterisk", "cli", "core show uptime")
    assert "uptime" in out.stdout.lower(), out.stdout
    # What it writes is its own, and still private: voicemail, a recording, its logs.
    voicemail = stack.recordings_dir / "voicemail"
    assert voicemail.stat().st_uid == run_as[0] and _mode(voicemail) == 0o700
    full = stack.asterisk_dir / "log" / "full"
    assert full.stat().st_uid == run_as[0] and _mode(full) == 0o600


def test_a_loosened_folder_is_reported_at_start_up(stack: Settings) -> None:
    voicemail = stack.recordings_dir / "voicemail"
    voicemail.chmod(0o755)
    try:
        out = run_hotline("up", timeout=300)
    finally:
        voicemail.chmod(0o700)
    assert f"warning: {voicemail} is readable by other local users (mode 0755)" in out.stderr
    assert f"chmod 0700 {voicemail}" in out.stderr
    clean = run_hotline("up", timeout=300)
    assert "readable by other local users" not in clean.stderr


# --- logs (issue 10 item 8) ------------------------------------------------------------------


def test_no_payer_code_in_any_log_after_a_meter_reading_call(
    stack: Settings, api: httpx.Client
) -> None:
    payer, caller = new_payer(), "+74956660077"
    result = key_in_reading(stack, caller, payer)
    assert result.answered, result.detail
    finished_call(api, caller)
    # The keys did reach the hotline: the reading is stored under the payer code.
    assert [(r["meter"], r["value"]) for r in history(payer)] == [("cold_water", 512)]
    logs = [stack.log_dir, stack.asterisk_dir / "log"]
    files = [p for folder in logs for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "full" for p in files) and any(p.name == "agi.log" for p in files)
    for path in files:
        text = path.read_text(errors="replace")
        assert payer not in text, f"the payer code is in {path}"
        # Asterisk's dtmf log level writes a begin and an end line per key: the code, spelt out.
        keys = "".join(re.findall(r"DTMF end '([0-9*#])'", text))
        assert payer not in keys, f"the payer code's keys are in {path}"


def test_the_retention_sweep_rotates_asterisk_logs(stack: Settings) -> None:
    folder = stack.asterisk_dir / "log"

    def rotated() -> set[str]:
        return {p.name for p in folder.iterdir() if p.name.startswith("full.")}

    def rotated_cdrs() -> set[str]:
        return {p.name for p in (folder / "cdr-csv").glob("Master.csv.*")}

    # A call's CDR (and its queue_log line) so that there is something to rotate.
    cdr = folder / "cdr-csv" / "Master.csv"
    _originate_application(stack, "QueueLog", "heating,sweep-test,NONE,INFO,rotation")
    wait_for(lambda: cdr.exists() and cdr.stat().st_size > 0, timeout=30, what="a CDR")
    before, before_cdrs = rotated(), rotated_cdrs()
    out = run_hotline("retention", "sweep", "--json")
    report = json.loads(out.stdout)
    assert report["errors"] == [] and "asterisk_log_rotate_failed" not in out.stderr
    wait_for(lambda: rotated() - before, timeout=10, what="a rotated full log")
    assert (folder / "full").exists()  # Asterisk writes a fresh one
    # The CDR file with every caller's number is rotated too (and swept like the logs).
    assert rotated_cdrs() - before_cdrs
    assert not cdr.exists() or "sweep-test" not in cdr.read_text()
    assert any(p.name.startswith("queue_log.") for p in folder.iterdir())
