"""Supervisors' call control through the real Asterisk with real SIP phones (issue 18).

Callers are SIPp from the carrier trunk, operators and the supervisor's phone are baresip. A
paused operator is never rung; a caller waiting in heating is moved to the coordinator and
answered there, the move in the timeline with who made it; a waiting call is ended from the
API and its row says a supervisor ended it, by whom; a call that has just ended is a clear
409; the supervisor's phone listens to a call in progress and hears the operator; an operator
session and an operator token get 403 on every action. The dashboard does all this over one
AMI login (`AmiLink`), not one per action.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from call_router import queue_log
from call_router.db import Database
from call_router.models import Call, utcnow
from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import CallResult, place_call
from tests.audio import loudest_second, write_tone
from tests.conftest import add_operator, finished_call, run_hotline, wait_for

pytestmark = pytest.mark.asterisk

PASSWORD = "control-test-password-1"


class Caller:
    """A SIPp caller in a background thread (place_call blocks until the call ends)."""

    def __init__(self, stack: Settings, number: str, dtmf: str, hold: float) -> None:
        self.result: CallResult | None = None
        self._thread = threading.Thread(
            target=self._run, args=(stack, number, dtmf, hold), daemon=True
        )
        self._thread.start()

    def _run(self, stack: Settings, number: str, dtmf: str, hold: float) -> None:
        self.result = place_call(stack, dtmf=dtmf, from_number=number, hold=hold)

    def join(self, timeout: float = 90) -> CallResult:
        self._thread.join(timeout)
        assert self.result is not None, "the caller did not finish"
        return self.result


def events_of(api: httpx.Client, call_id: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = api.get(f"/api/calls/{call_id}").json()["events"]
    return events


def waiting(api: httpx.Client, caller: str, queue: str) -> Callable[[], dict[str, Any] | None]:
    """The caller's open call once it has joined `queue`."""

    def check() -> dict[str, Any] | None:
        calls = api.get("/api/calls", params={"caller": caller}).json()
        if not calls or calls[0]["ended_at"]:
            return None
        joined = [
            e
            for e in events_of(api, calls[0]["id"])
            if e["kind"] == "queue_join" and e["data"].get("queue") == queue
        ]
        return calls[0] if joined else None

    return check


def audit(api: httpx.Client) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = api.get("/api/control/audit").json()
    return rows


@pytest.fixture(scope="module")
def operators(stack: Settings) -> dict[str, dict[str, Any]]:
    """A heating operator (paused: must never ring) and a coordinator, plus the supervisor's
    own phone (a roster login in no queue anybody calls in these tests)."""
    found = {
        "heating": add_operator("Hanna Heat", "heating"),
        "coordinator": add_operator("Kira Coord", "coordinator"),
        "supervisor": add_operator("Sofia Super", "duty"),
    }
    run_hotline("agents", "logout", found["supervisor"]["sip_login"])
    return found


@pytest.fixture(scope="module")
def paused_heating(
    stack: Settings, supervisor_token: str, operators: dict[str, dict[str, Any]]
) -> Iterator[str]:
    """The heating operator paused from the API by the supervisor: callers wait in heating."""
    login = operators["heating"]["sip_login"]
    headers = {"Authorization": f"Bearer {supervisor_token}"}
    with httpx.Client(base_url=stack.dashboard_url, timeout=20, headers=headers) as api:
        paused = api.post(f"/api/agents/{login}/pause", json={"reason": "meeting"})
        assert paused.status_code == 200, paused.text
        assert paused.json()["paused"] is True
        row = audit(api)[0]
        assert (row["action"], row["operator"], row["target"], row["result"]) == (
            "pause",
            login,
            "meeting",
            "ok",
        )
        assert row["by"] == "token:test-suite"
    yield login


def test_a_waiting_caller_is_moved_to_another_queue_and_answered_there(
    stack: Settings,
    api: httpx.Client,
    operators: dict[str, dict[str, Any]],
    paused_heating: str,
) -> None:
    heating, coordinator = operators["heating"], operators["coordinator"]
    number = "+74951118001"
    with (
        Softphone(stack, heating["sip_login"], heating["sip_password"]) as heating_phone,
        Softphone(stack, coordinator["sip_login"], coordinator["sip_password"]) as coord_phone,
    ):
        caller = Caller(stack, number, dtmf="3", hold=45)
        call = wait_for(waiting(api, number, "heating"), timeout=40, what="the caller in heating")
        # An unknown queue: a clear 404, and the caller stays where they are.
        unknown = api.post(f"/api/calls/{call['id']}/move", json={"queue": "sauna"})
        assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_queue"
        assert waiting(api, number, "heating")() is not None

        moved = api.post(f"/api/calls/{call['id']}/move", json={"queue": "coordinator"})
        assert moved.status_code == 200, moved.text
        assert moved.json()["data"]["priority"] >= 1
        assert coord_phone.wait_for_event("CALL_ESTABLISHED", timeout=30), coord_phone.log
        coord_phone.hangup()
        result = caller.join()
        assert result.answered, result.detail
        done = finished_call(api, number)
        # The paused operator was never rung (pause from the API stops the ringing).
        assert heating_phone.calls_ringing() == 0
    assert done["outcome"] == "answered" and done["operator"] == "Kira Coord"
    assert done["queue"] == "coordinator"
    kinds = [e["kind"] for e in events_of(api, done["id"])]
    (move,) = [e for e in events_of(api, done["id"]) if e["kind"] == "moved"]
    assert move["data"]["by"] == "token:test-suite"
    assert (move["data"]["from_queue"], move["data"]["to_queue"]) == ("heating", "coordinator")
    assert kinds.index("moved") < kinds.index("agent_connect")
    assert not [
        e
        for e in events_of(api, done["id"])
        if e["kind"] == "ring" and heating["sip_login"] in json.dumps(e["data"])
    ]
    rows = audit(api)
    assert rows[0]["action"] == "move" and rows[0]["call_id"] == done["id"]
    assert rows[0]["result"] == "ok" and rows[0]["target"] == "coordinator"
    assert rows[1]["action"] == "move" and rows[1]["result"] == "refused"
    # The queue_log says why the caller left heating (app_queue writes ABANDON there).
    lines = (stack.asterisk_dir / "log" / "queue_log").read_text().splitlines()
    rows_ = [queue_log.parse_line(line) for line in lines]
    (callid,) = {
        r.callid for r in rows_ if r.event == "ENTERQUEUE" and r.param("callerid") == number
    }
    mine = [(r.queue, r.event, r.data) for r in rows_ if r.callid == callid]
    assert ("heating", queue_log.EVENT_MOVED, ("coordinator",)) in mine, mine
    assert not [p for line in lines for p in queue_log.check_line(line)]


def test_a_waiting_call_is_ended_by_the_supervisor_and_a_second_try_is_409(
    stack: Settings,
    api: httpx.Client,
    operators: dict[str, dict[str, Any]],
    paused_heating: str,
) -> None:
    heating = operators["heating"]
    number = "+74951118002"
    # Registered but paused: the caller joins heating and waits (an unregistered queue is
    # skipped for the coordinator).
    with Softphone(stack, heating["sip_login"], heating["sip_password"]) as heating_phone:
        caller = Caller(stack, number, dtmf="3", hold=45)
        call = wait_for(waiting(api, number, "heating"), timeout=40, what="the caller in heating")
        ended = api.post(f"/api/calls/{call['id']}/hangup")
        assert ended.status_code == 200, ended.text
        assert ended.json()["data"]["channels"]
        caller.join()
        done = finished_call(api, number)
        assert heating_phone.calls_ringing() == 0
    detail = api.get(f"/api/calls/{done['id']}").json()
    assert detail["hangup_by"] == "supervisor"
    (mark,) = [e for e in detail["events"] if e["kind"] == "ended_by_supervisor"]
    assert mark["data"]["by"] == "token:test-suite"
    # A moment later: the call has ended, a clear 409 (never a 500), for every action.
    again = api.post(f"/api/calls/{call['id']}/hangup")
    assert again.status_code == 409 and again.json()["code"] == "call_ended", again.text
    move = api.post(f"/api/calls/{call['id']}/move", json={"queue": "coordinator"})
    assert move.status_code == 409 and move.json()["code"] == "call_ended", move.text
    spy = api.post(f"/api/calls/{call['id']}/monitor", json={"mode": "listen"})
    assert spy.status_code == 409, spy.text
    missing = api.post("/api/calls/2000000000/hangup")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    rows = audit(api)
    assert [r["result"] for r in rows[:3]] == ["refused", "refused", "refused"]
    assert rows[3]["action"] == "hangup" and rows[3]["result"] == "ok"


def test_a_stuck_call_row_with_no_channel_left_is_closed_by_the_supervisor(
    stack: Settings, api: httpx.Client
) -> None:
    """A row left open after a fault (Asterisk has no channel of it any more): ended from the
    dashboard, it is closed, the log saying a supervisor ended it and who; the CLI then
    answers a clear "already ended" for every action, exit 1, JSON on request."""
    db = Database(stack.db_url)
    try:
        with db.session() as session:
            stuck = Call(
                linkedid=f"stuck-{uuid.uuid4().hex[:16]}",
                caller_number="+74951118004",
                started_at=utcnow() - timedelta(minutes=40),
            )
            session.add(stuck)
            session.flush()
            call_id = stuck.id
    finally:
        db.dispose()
    ended = api.post(f"/api/calls/{call_id}/hangup")
    assert ended.status_code == 200, ended.text
    assert ended.json()["detail"] == "closed the stuck call row"
    assert ended.json()["data"]["channels"] == []
    detail = api.get(f"/api/calls/{call_id}").json()
    assert detail["ended_at"] is not None and detail["hangup_by"] == "supervisor"
    (mark,) = [e for e in detail["events"] if e["kind"] == "ended_by_supervisor"]
    assert mark["data"]["by"] == "token:test-suite" and mark["data"]["channels"] == []
    row = audit(api)[0]
    assert (row["action"], row["call_id"], row["result"]) == ("hangup", call_id, "ok")

    for args in (("hangup", str(call_id)), ("move", str(call_id), "--queue", "coordinator")):
        out = run_hotline("calls", *args, "--json", check=False)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        answer = json.loads(out.stdout.strip().splitlines()[-1])
        assert answer["ok"] is False and answer["code"] == "call_ended", (args, answer)
        assert "already ended" in out.stderr
    rows = [r for r in audit(api) if r["call_id"] == call_id]
    assert [(r["action"], r["result"], r["by"].startswith("cli:")) for r in rows] == [
        ("move", "refused", True),
        ("hangup", "refused", True),
        ("hangup", "ok", False),
    ]


def test_listen_rings_the_supervisors_phone_which_hears_the_operator(
    stack: Settings,
    api: httpx.Client,
    operators: dict[str, dict[str, Any]],
    tmp_path: Path,
) -> None:
    coordinator, supervisor = operators["coordinator"], operators["supervisor"]
    operator_voice, heard = tmp_path / "operator.wav", tmp_path / "heard.wav"
    write_tone(operator_voice, 60, hz=600)
    number = "+74951118003"
    with (
        Softphone(
            stack, coordinator["sip_login"], coordinator["sip_password"], audio=operator_voice
        ) as coord_phone,
        Softphone(
            stack, supervisor["sip_login"], supervisor["sip_password"], record_to=heard
        ) as sup_phone,
    ):
        caller = Caller(stack, number, dtmf="0", hold=40)
        assert coord_phone.wait_for_event("CALL_ESTABLISHED", timeout=40), coord_phone.log
        calls = api.get("/api/calls", params={"caller": number}).json()
        call_id = calls[0]["id"]
        # A token has no phone of its own: a clear 409, nothing rung.
        no_phone = api.post(f"/api/calls/{call_id}/monitor", json={"mode": "listen"})
        assert no_phone.status_code == 409 and no_phone.json()["code"] == "no_phone"
        out = run_hotline(
            "calls", "monitor", str(call_id), "--phone", supervisor["sip_login"], "--json",
            timeout=90,
        )  # fmt: skip
        shown = json.loads(out.stdout.strip().splitlines()[-1])
        assert shown["ok"] is True and shown["mode"] == "listen"
        assert sup_phone.wait_for_event("CALL_ESTABLISHED", timeout=10), sup_phone.log
        # Listen for a while: the operator's tone arrives as RTP on the supervisor's phone.
        assert not sup_phone.wait_for(lambda: sup_phone.calls_closed() > 0, timeout=4)
        sup_phone.hangup()
        assert sup_phone.wait_for_event("CALL_CLOSED", timeout=10), sup_phone.log
        coord_phone.hangup()
        caller.join()
    assert heard.exists(), "the supervisor's phone recorded nothing"
    assert loudest_second(heard) > 2000  # the operator's tone, not silence
    row = audit(api)[0]
    assert (row["action"], row["target"], row["result"]) == ("monitor", "listen", "ok")
    assert row["by"].startswith("cli:") and row["call_id"] == call_id


def test_operators_get_403_on_every_control_action(
    stack: Settings,
    api: httpx.Client,
    operators: dict[str, dict[str, Any]],
    paused_heating: str,
) -> None:
    heating, coordinator = operators["heating"], operators["coordinator"]
    run_hotline(
        "users", "add", "ctl-olga", "--role", "operator", "--operator", coordinator["sip_login"],
        "--password-stdin", stdin=PASSWORD,
    )  # fmt: skip
    token = json.loads(
        run_hotline("tokens", "create", "--role", "operator", "--name", "ctl-op", "--json")
        .stdout.strip()
        .splitlines()[-1]
    )["token"]
    call_id = api.get("/api/calls", params={"limit": 1}).json()[0]["id"]
    actions: list[tuple[str, dict[str, Any] | None]] = [
        (f"/api/calls/{call_id}/hangup", None),
        (f"/api/calls/{call_id}/move", {"queue": "coordinator"}),
        ("/api/calls/move", {"calls": [call_id], "queue": "coordinator"}),
        (f"/api/calls/{call_id}/monitor", {"mode": "barge"}),
        (f"/api/agents/{heating['sip_login']}/pause", {"reason": "x"}),
        (f"/api/agents/{heating['sip_login']}/unpause", None),
        (f"/api/agents/{heating['sip_login']}/logout", None),
        (f"/api/agents/{heating['sip_login']}/queues", {"queues": [{"queue": "duty"}]}),
    ]
    before = len(audit(api))
    with httpx.Client(base_url=stack.dashboard_url, timeout=20) as session:
        form = session.get("/login")
        login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert login_csrf, form.text
        signed = session.post(
            "/login",
            data={"username": "ctl-olga", "password": PASSWORD, "csrf_token": login_csrf[1]},
        )
        assert signed.status_code == 303, signed.text
        page = session.get("/calls")
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert csrf, page.text
        # The call page shows no control buttons to an operator.
        assert 'class="call-control"' not in session.get(f"/calls/{call_id}").text
        for path, body in actions:
            as_session = session.post(path, json=body, headers={"X-CSRF-Token": csrf[1]})
            assert as_session.status_code == 403, (path, as_session.text)
            as_token = httpx.post(
                stack.dashboard_url + path,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=20,
            )
            assert as_token.status_code == 403, (path, as_token.text)
        for form_path in ("hangup", "move", "monitor"):
            posted = session.post(
                f"/calls/{call_id}/control/{form_path}",
                data={"csrf_token": csrf[1], "queue": "coordinator", "mode": "listen"},
            )
            assert posted.status_code == 403, (form_path, posted.text)
        assert session.get("/api/control/audit").status_code == 403
        assert session.get("/api/control/monitors").status_code == 403
        assert session.get("/supervision/audit").status_code == 403
    # Nothing was done, so nothing was audited; the heating operator is still paused.
    assert len(audit(api)) == before
    (heating_state,) = [
        a for a in api.get("/api/agents").json() if a["login"] == heating["sip_login"]
    ]
    assert heating_state["paused"] is True


def test_the_dashboards_ami_link_logs_in_once_and_comes_back_after_a_loss(
    stack: Settings,
) -> None:
    """Every action of a process shares one login; a lost link logs in again by itself."""
    import asyncio

    from call_router.ami_client import AmiLink

    async def play() -> tuple[int, int]:
        link = AmiLink(stack, "supervise")
        try:
            for _ in range(5):
                (pong,) = await link.send({"Action": "Ping"})
                assert pong["Response"] == "Success"
            await asyncio.gather(*(link.send({"Action": "Ping"}) for _ in range(5)))
            once = link.logins
            # The connection drops (Asterisk restarted, a proxy timed out): the next action
            # logs in afresh instead of failing forever.
            assert link._manager is not None
            link._manager.close()
            link._manager.lost.set()
            (pong,) = await link.send({"Action": "Ping"})
            assert pong["Response"] == "Success"
            return once, link.logins
        finally:
            await link.close()

    assert asyncio.run(play()) == (1, 2)


def _session(stack: Settings, username: str) -> tuple[httpx.Client, str]:
    """A signed-in browser session (the real form) and its CSRF token."""
    client = httpx.Client(base_url=stack.dashboard_url, timeout=60)
    form = client.get("/login")
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert login_csrf, form.text
    signed = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": login_csrf[1]}
    )
    assert signed.status_code == 303, signed.text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', client.get("/calls").text)
    assert csrf
    return client, csrf[1]


def test_everyone_waiting_in_heating_is_moved_from_the_wallboard(
    stack: Settings,
    api: httpx.Client,
    operators: dict[str, dict[str, Any]],
    paused_heating: str,
) -> None:
    heating, coordinator = operators["heating"], operators["coordinator"]
    run_hotline(
        "users", "add", "ctl-boss", "--role", "supervisor",
        "--operator", operators["supervisor"]["sip_login"], "--password-stdin", stdin=PASSWORD,
    )  # fmt: skip
    numbers = ["+74951118011", "+74951118012"]
    boss, csrf = _session(stack, "ctl-boss")
    with (
        contextlib.closing(boss),
        Softphone(stack, heating["sip_login"], heating["sip_password"]),
        # The coordinator's phone rings but nobody answers: the moved callers wait there.
        Softphone(stack, coordinator["sip_login"], coordinator["sip_password"], answer=False),
    ):
        callers = [Caller(stack, number, dtmf="3", hold=50) for number in numbers]
        calls = [
            wait_for(waiting(api, n, "heating"), timeout=40, what=f"{n} in heating")
            for n in numbers
        ]
        page = boss.get(f"/calls/{calls[0]['id']}")
        assert 'class="call-control"' in page.text  # the buttons, for a supervisor
        # Without the CSRF token the form is refused and nobody moves.
        forged = boss.post(
            "/control/move-waiting", data={"from_queue": "heating", "to_queue": "coordinator"}
        )
        assert forged.status_code == 403
        moved = boss.post(
            "/control/move-waiting",
            data={"csrf_token": csrf, "from_queue": "heating", "to_queue": "coordinator"},
        )
        assert moved.status_code == 303
        assert "moved 2 of 2" in moved.headers["location"].replace("+", " ")
        for number in numbers:
            wait_for(waiting(api, number, "coordinator"), timeout=20, what=f"{number} moved")
        # Then ended from the call page's button (a form post with the session's CSRF token).
        for call in calls:
            ended = boss.post(f"/calls/{call['id']}/control/hangup", data={"csrf_token": csrf})
            assert ended.status_code == 303
        for caller in callers:
            caller.join()
        audit_page = boss.get("/supervision/audit")
        assert audit_page.status_code == 200 and "ctl-boss" in audit_page.text
    for number in numbers:
        done = finished_call(api, number)
        detail = api.get(f"/api/calls/{done['id']}").json()
        (move,) = [e for e in detail["events"] if e["kind"] == "moved"]
        assert move["data"]["by"] == "ctl-boss" and move["data"]["to_queue"] == "coordinator"
        assert detail["hangup_by"] == "supervisor"
