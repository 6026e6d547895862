"""An operator's shift on the real Asterisk (a baresip phone), then the agent-session report
and Asterisk's queue_log checked against what the test did.

The operator logs in, pauses for lunch, takes a call, misses one (rejects the ring while going
on a break), and logs out. The report (CLI, API, page, CSV) must count exactly that; its
durations must lie between the bounds the test measured around each action. Every line of the
queue_log must match the documented format (call_router/queue_log.py), and the operator's and
the callers' lines must be there.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest

from call_router import queue_log
from call_router.callbacks import hotline_zone
from call_router.settings import Settings
from hotline.asterisk.sandbox import Asterisk
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.conftest import add_operator, alone_in_queue, finished_call, wait_for

pytestmark = pytest.mark.asterisk

NAME = "Olga Smena"


def hotline(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "hotline", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def agents(*args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(hotline("agents", *args, "--json").stdout)
    return out


def agent(api: httpx.Client, login: str) -> dict[str, Any]:
    (found,) = [a for a in api.get("/api/agents").json() if a["login"] == login]
    return found


class Stopwatch:
    """Bounds of a span between two actions that each took a while: [shortest, longest]."""

    def __init__(self) -> None:
        self.marks: dict[str, tuple[float, float]] = {}

    def around(self, name: str, action: Any) -> Any:
        before = time.monotonic()
        result = action()
        self.marks[name] = (before, time.monotonic())
        return result

    def between(self, first: str, last: str) -> tuple[float, float]:
        return self.marks[last][0] - self.marks[first][1], self.marks[last][1] - self.marks[first][
            0
        ]


def within(value: float, bounds: tuple[float, float], slack: float = 1.5) -> bool:
    return bounds[0] - slack <= value <= bounds[1] + slack


def no_ring(stack: Settings, phone: Softphone) -> str:
    """What to look at when the phone did not ring: the queue's members and the phone's log."""
    return f"{Asterisk(stack).cli('queue show lift')}\n{phone.log}"


def test_a_shift_in_the_agent_report_and_the_queue_log(stack: Settings, api: httpx.Client) -> None:
    # The report's period is the local days the shift was in (one, unless it crossed midnight:
    # a report of "today" alone would then miss its start).
    zone = hotline_zone(stack)
    first_day = datetime.now(zone).date().isoformat()
    op = add_operator(NAME, "lift")
    login = op["sip_login"]
    watch = Stopwatch()
    taken, missed = "+74951110061", "+74951110062"

    agents("logout", login)
    # This shift's phone must be lift's only one: another's would take a ring meant for it.
    alone_in_queue(api, login, "lift")
    try:
        with Softphone(stack, login, op["sip_password"], answer=False) as phone:
            watch.around("login", lambda: agents("login", login, "--queues", "lift"))
            wait_for(lambda: agent(api, login)["state"] == "free", what="the operator free")

            def pause(reason: str) -> None:
                reply = api.post(f"/api/agents/{login}/pause", json={"reason": reason})
                assert reply.status_code == 200, reply.text

            watch.around("lunch", lambda: pause("lunch"))
            wait_for(lambda: agent(api, login)["paused"], what="the operator paused")
            watch.around("back", lambda: agents("unpause", login))
            wait_for(lambda: agent(api, login)["state"] == "free", what="the operator back")

            with ThreadPoolExecutor(1) as pool:
                # A call taken: the phone rings, the operator answers. The caller holds well past
                # the ~6 s the menu takes from the answer to the queue.
                first = pool.submit(place_call, stack, dtmf="4", from_number=taken, hold=15)
                assert phone.wait_for_event("CALL_INCOMING", 1, timeout=60), no_ring(stack, phone)
                phone.accept()
                assert first.result(timeout=120).answered
                call = finished_call(api, taken)
                assert call["operator"] == NAME and call["outcome"] == "answered"

                # A call missed: it rings, the operator goes on a break and rejects it.
                second = pool.submit(place_call, stack, dtmf="4", from_number=missed, hold=30)
                assert phone.wait_for_event("CALL_INCOMING", 2, timeout=90), no_ring(stack, phone)
                watch.around("break", lambda: pause("break"))
                phone.hangup()
                second.result(timeout=120)
            lost = finished_call(api, missed)
            assert lost["outcome"] != "answered"
            watch.around("logout", lambda: agents("logout", login))
    finally:
        # Also when the shift failed: left in lift, this operator would take later tests' rings.
        if "logout" not in watch.marks:
            agents("logout", login)

    # The report, from the CLI.
    last_day = datetime.now(zone).date().isoformat()
    days = ("--since", first_day, "--until", last_day)
    period = {"date_from": first_day, "date_to": last_day}
    report = json.loads(hotline("reports", "agents", *days, "--json").stdout)
    (fig,) = [f for f in report["period"] if f["login"] == login]
    assert fig["name"] == NAME
    assert (fig["logins"], fig["logouts"], fig["pauses"]) == (1, 2, 2)
    assert (fig["answered"], fig["missed"], fig["callbacks"]) == (1, 1, 0)
    assert set(fig["pause_reasons"]) == {"lunch", "break"}
    assert within(fig["logged_in_seconds"], watch.between("login", "logout"))
    assert within(fig["pause_reasons"]["lunch"], watch.between("lunch", "back"))
    assert within(fig["pause_reasons"]["break"], watch.between("break", "logout"))
    # Each figure is rounded to whole seconds on its own.
    assert abs(fig["paused_seconds"] - sum(fig["pause_reasons"].values())) <= 1
    assert abs(fig["talk_seconds"] - call["talk_seconds"]) <= 1
    assert fig["wrapup_seconds"] == stack.wrapup_seconds
    busy = fig["talk_seconds"] + fig["wrapup_seconds"]
    available = fig["logged_in_seconds"] - fig["paused_seconds"]
    assert abs(fig["ready_seconds"] - (available - busy)) <= 2
    # From whole seconds over a shift of about a minute: a second moves it by ~0.02.
    assert fig["occupancy"] == pytest.approx(busy / available, abs=0.05)

    # The same figures from the CLI's CSV, the API, the dashboard's CSV and the page.
    cli_csv = hotline("reports", "agents", *days, "--csv").stdout
    cli_rows = list(csv.DictReader(io.StringIO(cli_csv)))
    (cli_period,) = [r for r in cli_rows if r["login"] == login and r["day"] == "period"]
    assert cli_period["missed"] == "1" and cli_period["pauses"] == "2"
    # This operator's row (logged out: fixed); others still logged in grow between the reads.
    from_api = api.get("/api/reports/agents", params=period).json()["period"]
    from_api = [f for f in from_api if f["login"] == login]
    assert from_api == [fig]
    rows = list(csv.DictReader(io.StringIO(api.get("/reports/agents.csv", params=period).text)))
    (period_row,) = [r for r in rows if r["login"] == login and r["day"] == "period"]
    assert int(period_row["answered"]) == 1 and int(period_row["missed"]) == 1
    page = api.get("/reports/agents", params=period)
    assert page.status_code == 200 and f'data-login="{login}"' in page.text

    # Asterisk's queue_log: every line in the documented format; this shift's lines there.
    lines = (stack.asterisk_dir / "log" / "queue_log").read_text().splitlines()
    text = "\n".join(lines)
    assert lines
    problems = {line: queue_log.check_line(line) for line in lines}
    assert not {line: p for line, p in problems.items() if p}, text
    rows_ = [queue_log.parse_line(line) for line in lines]
    mine = [r for r in rows_ if r.agent == NAME]
    events = [r.event for r in mine]
    assert "ADDMEMBER" in events and "REMOVEMEMBER" in events, text
    pauses = [r.param("reason") for r in mine if r.event == "PAUSE"]
    assert "lunch" in pauses and "break" in pauses
    assert "UNPAUSE" in events
    assert events.count("RINGNOANSWER") == 1
    # ENTERQUEUE carries the caller's number as they called (app_queue adds the position).
    entered = {r.param("callerid"): r.callid for r in rows_ if r.event == "ENTERQUEUE"}
    taken_id = entered[taken]
    (connect,) = [r for r in mine if r.event == "CONNECT"]
    assert connect.callid == taken_id
    (complete,) = [r for r in mine if r.event in ("COMPLETECALLER", "COMPLETEAGENT")]
    assert abs(int(complete.param("calltime") or 0) - call["talk_seconds"]) <= 1
