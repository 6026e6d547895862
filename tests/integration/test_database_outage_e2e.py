"""PostgreSQL stopped for 30 s under load: the router loses no event.

A hotline stack of its own (`hotline up` with its own state folder and ports) on a PostgreSQL
cluster of its own, so stopping the database touches nothing else. Calls are in progress when
the database goes away (one talking, three waiting); while it is away the operator ends one
call and answers the next, which ends too, and two callers give up waiting in the queue. When
it is back: every call has exactly one row, every row is finished with its true outcome, every
abandon has its callback entry.

Then the router is SIGKILLed in the middle of an outage and restarted while the database is
still away: the spool gives back what was on disk, Asterisk's queue_log/CDR the rest.

Last, callers who arrive while the database is away: the FastAGI server plays them the menu
(its writes wait in its own spool), one reaches an operator, one gives up in the queue, one asks
for a callback; their rows, timelines and callback entries appear when the database is back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from call_router import health as health_report
from call_router.db import Database
from call_router.models import Call, Callback, CallEvent
from call_router.settings import Settings
from hotline import services
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import CallResult, place_call
from tests.conftest import HOTLINE, PORT_BASE, STACK_ENV, asterisk_available, require, wait_for
from tests.integration.private_postgres import PrivatePostgres, available

pytestmark = pytest.mark.asterisk

# This stack's ports sit above the session stack's (PORT_BASE .. +499), PostgreSQL's too.
PORT_OFFSET = 500
POSTGRES_PORT = PORT_BASE + 520
PORT_KEYS = (
    "HOTLINE_SIP_PORT", "HOTLINE_AMI_PORT", "HOTLINE_AGI_PORT", "HOTLINE_AUDIOSOCKET_PORT",
    "HOTLINE_DASHBOARD_PORT", "HOTLINE_PSTN_PORT", "HOTLINE_RTP_START", "HOTLINE_RTP_END",
)  # fmt: skip
OUTAGE_SECONDS = 30


@dataclass
class OutageStack:
    settings: Settings
    env: dict[str, str]
    postgres: PrivatePostgres
    db: Database

    def hotline(self, *args: str, timeout: float = 120) -> dict[str, Any]:
        proc = subprocess.run(
            [*HOTLINE, *args, "--json"], capture_output=True, text=True, timeout=timeout,
            env=self.env,
        )  # fmt: skip
        assert proc.returncode == 0, f"hotline {' '.join(args)}: {proc.stderr}"
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result

    def api(self) -> httpx.Client:
        """The dashboard's API, as a supervisor."""
        token = self.hotline("tokens", "create", "--role", "supervisor", "--name", "outage")
        headers = {"Authorization": f"Bearer {token['token']}"}
        return httpx.Client(base_url=self.settings.dashboard_url, timeout=10, headers=headers)


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutageStack]:
    ok, reason = available()
    require(ok, reason)
    state = tmp_path_factory.mktemp("outage-state")
    env = {
        **os.environ,
        **{k: str(int(v) + PORT_OFFSET) if k in PORT_KEYS else v for k, v in STACK_ENV.items()},
        "HOTLINE_STATE_DIR": str(state),
        "HOTLINE_RECORDINGS_DIR": str(state / "recordings"),
        "HOTLINE_REDIS_PREFIX": f"hotline-outage-{uuid.uuid4().hex[:8]}",
        # One in-process worker: on a loaded machine uvicorn's supervisor kills workers slower
        # to start than its health check, and this test is about the router, not the web.
        "HOTLINE_DASHBOARD_WORKERS": "1",
    }
    postgres = PrivatePostgres(POSTGRES_PORT)
    env["HOTLINE_DATABASE_URL"] = postgres.url
    settings = Settings(
        **{
            k.removeprefix("HOTLINE_").lower(): v
            for k, v in env.items()
            if k.startswith("HOTLINE_")
        }
    )
    ok, reason = asterisk_available(settings)
    require(ok, reason)
    db: Database | None = None
    try:
        postgres.init()
        postgres.start()
        up = subprocess.run([*HOTLINE, "up"], capture_output=True, text=True, timeout=900, env=env)
        assert up.returncode == 0, f"hotline up: {up.stdout}\n{up.stderr}"
        db = Database(postgres.url)
        yield OutageStack(settings, env, postgres, db)
    finally:
        subprocess.run([*HOTLINE, "down"], capture_output=True, timeout=120, env=env)
        if db is not None:
            db.dispose()
        logs = state / "log"
        if logs.exists():
            artifacts = Path(__file__).parent.parent / "artifacts" / "outage-stack-logs"
            shutil.rmtree(artifacts, ignore_errors=True)
            shutil.copytree(logs, artifacts, dirs_exist_ok=True)
        postgres.destroy()


def calls_of(db: Database, caller: str) -> list[Call]:
    with db.session() as session:
        return list(session.scalars(select(Call).where(Call.caller_number == caller)))


def open_entry(db: Database, caller: str) -> Callback | None:
    with db.session() as session:
        return session.scalars(
            select(Callback).where(Callback.caller_number == caller, Callback.status == "open")
        ).first()


def finished(db: Database, caller: str) -> Call | None:
    """The caller's one row, once it has ended."""
    rows = calls_of(db, caller)
    return rows[0] if len(rows) == 1 and rows[0].ended_at is not None else None


def answered(db: Database, caller: str) -> bool:
    rows = calls_of(db, caller)
    return bool(rows and rows[0].answered_at)


def queued(db: Database, caller: str) -> bool:
    rows = calls_of(db, caller)
    return bool(rows and rows[0].queue_joined_at)


def agent_state(api: httpx.Client, login: str) -> str:
    (found,) = [a for a in api.get("/api/agents").json() if a["login"] == login]
    return str(found["state"])


def test_postgresql_stopped_30s_under_load_loses_no_call_and_no_abandon(
    outage_stack: OutageStack,
) -> None:
    stack, settings, db = outage_stack, outage_stack.settings, outage_stack.db
    api = stack.api()
    answering = stack.hotline("operators", "add", "Anna Answers", "--queues", "heating")
    on_break = stack.hotline("operators", "add", "Boris Break", "--queues", "lift")
    # Boris is logged in but paused: lift callers join the queue and wait for nobody.
    stack.hotline("agents", "pause", on_break["sip_login"], "--reason", "training")
    talker, waiter, newcomer, late_waiter = (
        "+74951119501", "+74951119502", "+74951119503", "+74951119504",
    )  # fmt: skip
    with (
        Softphone(settings, answering["sip_login"], answering["sip_password"]) as anna,
        Softphone(settings, on_break["sip_login"], on_break["sip_password"]),
        ThreadPoolExecutor(4) as pool,
    ):
        wait_for(lambda: agent_state(api, answering["sip_login"]) == "free", what="Anna free")
        # Talks to Anna until she hangs up (during the outage).
        results: dict[str, Future[CallResult]] = {
            talker: pool.submit(place_call, settings, dtmf="3", from_number=talker, hold=90)
        }
        wait_for(lambda: answered(db, talker), timeout=60, what="Anna talking")
        # The others wait in the queues (Anna is busy, Boris on a break) when the database
        # goes away; their hold counts from the hotline's answer, ~10 s before that.
        for caller, digit, hold in ((newcomer, "3", 28), (waiter, "4", 22), (late_waiter, "4", 26)):
            results[caller] = pool.submit(
                place_call, settings, dtmf=digit, from_number=caller, hold=hold
            )
        for caller in (newcomer, waiter, late_waiter):
            wait_for(lambda c=caller: queued(db, c), timeout=60, what=f"{caller} queued")
        stack.postgres.stop()
        outage_started = time.monotonic()

        # While the database is away: Anna ends her call and answers the next caller, who
        # hangs up later; the two lift callers give up waiting.
        anna.hangup()
        assert results[talker].result(timeout=60).remote_hangup
        for caller, result in results.items():
            outcome = result.result(timeout=OUTAGE_SECONDS + 60)
            assert outcome.answered, f"{caller}: {outcome.detail}"
        spent = time.monotonic() - outage_started
        assert spent < OUTAGE_SECONDS + 15, f"calls outlasted the outage ({spent:.0f} s)"
        # The router knows, and what it holds is on disk already (spilled at each retry).
        wait_for(
            lambda: (
                (h := health_report.read_router_report(settings))
                and not h.database_reachable
                and h.spool_depth
            ),
            timeout=OUTAGE_SECONDS,
            what="the router holding the events on disk",
        )
        assert anna.calls_answered() == 2
        # The outage lasts its 30 s whatever the calls did: a duration, not a wait for a state.
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
        stack.postgres.start()
        for caller in results:
            wait_for(lambda c=caller: finished(db, c), timeout=60, what=f"{caller}'s row finished")

    outcomes = {caller: finished(db, caller) for caller in results}
    assert {caller: row.outcome for caller, row in outcomes.items() if row} == {
        talker: "answered",
        waiter: "abandoned_in_queue",
        newcomer: "answered",
        late_waiter: "abandoned_in_queue",
    }
    for caller in results:
        assert len(calls_of(db, caller)) == 1
    for caller in (waiter, late_waiter):
        entry = wait_for(lambda c=caller: open_entry(db, c), what=f"{caller}'s callback entry")
        assert (entry.reason, entry.queue) == ("abandoned_in_queue", "lift")
    for caller in (talker, newcomer):
        assert open_entry(db, caller) is None
    health = wait_for(
        lambda: (
            (h := health_report.read_router_report(settings))
            and h.database_reachable
            and not h.backlog
            and h
        ),
        what="the router's backlog written",
    )
    assert health.spool_depth == 0
    api.close()


def test_router_killed_during_the_outage_loses_nothing_its_spool_and_asterisk_give_it_back(
    outage_stack: OutageStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL while events wait for the database: what was on disk comes from the spool, the
    rest (at most the last seconds, in memory) from Asterisk's queue_log and CDRs."""
    stack, settings, db = outage_stack, outage_stack.settings, outage_stack.db
    api = stack.api()
    answering = stack.hotline("operators", "add", "Carl Crash", "--queues", "heating")
    on_break = stack.hotline("operators", "add", "Dora Down", "--queues", "lift")
    stack.hotline("agents", "pause", on_break["sip_login"], "--reason", "training")
    talker, waiter = "+74951119601", "+74951119602"
    with (
        Softphone(settings, answering["sip_login"], answering["sip_password"]) as carl,
        Softphone(settings, on_break["sip_login"], on_break["sip_password"]),
        ThreadPoolExecutor(2) as pool,
    ):
        wait_for(lambda: agent_state(api, answering["sip_login"]) == "free", what="Carl free")
        talking = pool.submit(place_call, settings, dtmf="3", from_number=talker, hold=90)
        wait_for(lambda: answered(db, talker), timeout=60, what="Carl talking")
        waiting = pool.submit(place_call, settings, dtmf="4", from_number=waiter, hold=20)
        wait_for(lambda: queued(db, waiter), timeout=60, what=f"{waiter} queued")
        stack.postgres.stop()
        carl.hangup()
        assert talking.result(timeout=60).remote_hangup
        # The hang-up waits on disk by now; the abandon that follows may be in memory only.
        wait_for(
            lambda: (h := health_report.read_router_report(settings)) and h.spool_depth,
            timeout=30,
            what="the router's spool",
        )
        assert waiting.result(timeout=60).answered
        pid = services.read_pid(settings, "router")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        # Gone, or already restarted by `hotline up`'s supervisor (it restarts at once).
        wait_for(lambda: services.read_pid(settings, "router") != pid, what="the router gone")
        for key, value in stack.env.items():
            if key.startswith("HOTLINE_"):
                monkeypatch.setenv(key, value)
        # Restarted (by its supervisor, else here) while the database is still away.
        services.start_service(settings, "router")
        services.wait_ready(settings, "router", timeout=60)
        stack.postgres.start()
        for caller in (talker, waiter):
            wait_for(lambda c=caller: finished(db, c), timeout=60, what=f"{caller}'s row finished")

    talked, gave_up = finished(db, talker), finished(db, waiter)
    assert talked is not None and gave_up is not None
    assert (talked.outcome, talked.operator) == ("answered", "Carl Crash")
    assert gave_up.outcome == "abandoned_in_queue"
    entry = wait_for(lambda: open_entry(db, waiter), what=f"{waiter}'s callback entry")
    assert (entry.reason, entry.queue) == ("abandoned_in_queue", "lift")
    assert open_entry(db, talker) is None
    assert [len(calls_of(db, caller)) for caller in (talker, waiter)] == [1, 1]
    wait_for(
        lambda: (
            (h := health_report.read_router_report(settings))
            and h.database_reachable
            and not h.backlog
        ),
        what="the router's backlog written",
    )
    api.close()


def events_of(db: Database, caller: str) -> list[str]:
    with db.session() as session:
        (call,) = session.scalars(select(Call).where(Call.caller_number == caller))
        return list(
            session.scalars(
                select(CallEvent.kind).where(CallEvent.call_id == call.id).order_by(CallEvent.at)
            )
        )


def test_calls_placed_while_the_database_is_away_get_the_menu_an_operator_or_a_callback(
    outage_stack: OutageStack,
) -> None:
    """Callers who arrive after PostgreSQL went away: the menu answers them, one reaches an
    operator, one gives up in the queue, one presses 1 for a callback; when the database is
    back each has its one finished row, its timeline and (for the last two) its callback."""
    stack, settings, db = outage_stack, outage_stack.settings, outage_stack.db
    api = stack.api()
    answering = stack.hotline("operators", "add", "Emil Early", "--queues", "heating")
    on_break = stack.hotline("operators", "add", "Fedor Far", "--queues", "lift")
    stack.hotline("agents", "pause", on_break["sip_login"], "--reason", "training")
    talker, giver_up, holder = "+74951119701", "+74951119702", "+74951119703"
    with (
        Softphone(settings, answering["sip_login"], answering["sip_password"]) as emil,
        Softphone(settings, on_break["sip_login"], on_break["sip_password"]),
        ThreadPoolExecutor(3) as pool,
    ):
        wait_for(lambda: agent_state(api, answering["sip_login"]) == "free", what="Emil free")
        # The router notices at its first write (these calls' events), not before.
        stack.postgres.stop()
        results = {
            talker: pool.submit(place_call, settings, dtmf="3", from_number=talker, hold=12),
            giver_up: pool.submit(place_call, settings, dtmf="4", from_number=giver_up, hold=20),
            # Presses 1 while waiting (again, if the menu was slow to put it in the queue): the
            # hotline confirms and hangs up long before 45 s.
            holder: pool.submit(
                place_call,
                settings,
                dtmf="4",
                from_number=holder,
                hold=45,
                dtmf_schedule=[(16.0, "1"), (22.0, "1"), (28.0, "1")],
            ),
        }
        for caller, result in results.items():
            outcome = result.result(timeout=120)
            assert outcome.answered, f"{caller}: {outcome.detail}"
        assert results[holder].result().remote_hangup, "the callback offer did not end the call"
        assert emil.calls_answered() == 1
        # All of it is on disk while the database is still away: the router's events and
        # the FastAGI server's menu writes.
        report = health_report.read_router_report(settings)
        assert report is not None and not report.database_reachable and report.spool_depth
        assert settings.agi_spool_file.exists() and settings.agi_spool_file.stat().st_size
        stack.postgres.start()
        for caller in results:
            wait_for(lambda c=caller: finished(db, c), timeout=90, what=f"{caller}'s row finished")

    # The menu's writes (choice, timeline) come from the FastAGI server's spool, replayed at
    # its next retry (backoff up to 5 s), not with the router's.
    wait_for(
        lambda: not settings.agi_spool_file.exists() or not settings.agi_spool_file.stat().st_size,
        timeout=60,
        what="the FastAGI server's spool replayed",
    )
    rows = {caller: finished(db, caller) for caller in results}
    assert {c: (r.outcome, r.menu_choice, r.queue) for c, r in rows.items() if r} == {
        talker: ("answered", "3", "heating"),
        giver_up: ("abandoned_in_queue", "4", "lift"),
        holder: ("callback_requested", "4", "lift"),
    }
    talked = rows[talker]
    assert talked is not None and talked.operator == "Emil Early" and talked.answered_at
    for caller in results:
        assert len(calls_of(db, caller)) == 1
    timelines = {caller: events_of(db, caller) for caller in results}
    for caller, kinds in timelines.items():
        assert {"menu_result", "queue_join", "hangup"} <= set(kinds), (caller, kinds)
    assert "agent_connect" in timelines[talker]
    assert "callback_requested" in timelines[holder]
    gave_up = wait_for(lambda: open_entry(db, giver_up), what=f"{giver_up}'s callback entry")
    assert (gave_up.reason, gave_up.queue) == ("abandoned_in_queue", "lift")
    held = wait_for(lambda: open_entry(db, holder), what=f"{holder}'s callback entry")
    assert (held.reason, held.queue) == ("virtual_hold", "lift")
    assert open_entry(db, talker) is None
    wait_for(
        lambda: (
            (h := health_report.read_router_report(settings))
            and h.database_reachable
            and not h.backlog
            and not h.spool_depth
        ),
        what="the router's backlog written",
    )
    api.close()
