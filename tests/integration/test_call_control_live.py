"""Supervisors' call control, the rest of issue 18, through the real Asterisk with real SIP
phones: whisper reaches the operator and not the caller, and a DTMF switch to barge on the
supervisor's phone makes the caller hear it too (the caller is a baresip phone behind the
carrier trunk that records what it hears); the dashboard shows who is monitoring whom, in
which mode, and forgets the session when it ends; an operator's queues and penalties change
live and stay in the roster; two supervisors moving one caller at once, a supervisor whose
phone is not registered, a nonexistent queue, a penalty out of range: each a clear answer and
nothing half done.
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select

from call_router.control_models import ControlClaim
from call_router.db import Database
from call_router.models import utcnow
from call_router.operators import PENALTY_MAX
from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from tests.audio import write_tone
from tests.conftest import add_operator, finished_call, run_hotline, wait_for
from tests.integration.test_call_control_e2e import (
    PASSWORD,
    Caller,
    _session,
    audit,
    events_of,
    waiting,
)

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(900)]

CALLER_HZ, OPERATOR_HZ, SUPERVISOR_HZ = 450, 600, 1400
WINDOW = 0.5  # seconds of audio per measurement


@pytest.fixture(scope="module")
def people(stack: Settings) -> dict[str, dict[str, Any]]:
    """An operator answering coordinator calls, a heating operator (paused: callers wait), the
    supervisor's phone (a roster login in no queue anybody calls) and one never registered."""
    found = {
        "operator": add_operator("Olga Live", "coordinator"),
        "heating": add_operator("Hugo Heat", "heating"),
        "supervisor": add_operator("Vera Watch", "duty"),
        "unplugged": add_operator("Nina Unplugged", "duty"),
    }
    for who in ("supervisor", "unplugged"):
        run_hotline("agents", "logout", found[who]["sip_login"])
    run_hotline("agents", "pause", found["heating"]["sip_login"], "--reason", "training")
    for user, phone in (("live-boss", "supervisor"), ("live-unplugged", "unplugged")):
        run_hotline(
            "users", "add", user, "--role", "supervisor",
            "--operator", found[phone]["sip_login"], "--password-stdin", stdin=PASSWORD,
        )  # fmt: skip
    run_hotline(
        "users", "add", "live-olga", "--role", "operator",
        "--operator", found["operator"]["sip_login"], "--password-stdin", stdin=PASSWORD,
    )  # fmt: skip
    return found


@contextlib.contextmanager
def signed_in(stack: Settings, username: str) -> Iterator[httpx.Client]:
    """A browser-like session (the real sign-in form) sending its CSRF token on every POST."""
    client, csrf = _session(stack, username)
    with contextlib.closing(client):
        client.headers["X-CSRF-Token"] = csrf
        client.timeout = httpx.Timeout(90)
        yield client


# --- audio ---------------------------------------------------------------------------------


def _samples(path: Path) -> tuple[list[int], int]:
    with wave.open(str(path)) as recording:
        rate = recording.getframerate()
        frames = recording.readframes(recording.getnframes())
        count = recording.getnframes() * recording.getnchannels()
    return list(struct.unpack(f"<{count}h", frames)), rate


def _level(window: list[int], rate: int, hz: int) -> float:
    """The amplitude of one frequency in a window (Goertzel)."""
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for sample in window:
        s1, s2 = sample + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return 2 * math.sqrt(max(power, 0.0)) / len(window)


def tone_levels(path: Path, hz: int, start: float, end: float) -> list[float]:
    """The level of `hz` in each half second of the recording between `start` and `end`
    seconds (counted from the recording's start, i.e. the phone's answer)."""
    samples, rate = _samples(path)
    step = int(WINDOW * rate)
    first, last = int(start * rate), min(int(end * rate), len(samples))
    assert last - first >= step, f"{path.name}: nothing recorded in {start:.1f}..{end:.1f} s"
    return [_level(samples[i : i + step], rate, hz) for i in range(first, last - step + 1, step)]


HEARD = 1500.0  # a tone at 12000 through G.711 and the mix comes out well above this
SILENT = 300.0


def _monitor(api: httpx.Client, call_id: int) -> dict[str, Any] | None:
    shown = api.get("/api/control/monitors", params={"call_id": call_id})
    assert shown.status_code == 200, shown.text
    sessions: list[dict[str, Any]] = shown.json()
    return sessions[0] if sessions else None


@dataclass
class Talk:
    """A resident talking to the coordinator operator; every phone records what it hears."""

    caller: Softphone
    operator: Softphone
    supervisor: Softphone
    heard: dict[str, Path]
    call_id: int
    caller_up: float  # when the caller's (and so its recording's) call started
    op_up: float


@contextlib.contextmanager
def talking(
    stack: Settings,
    api: httpx.Client,
    people: dict[str, dict[str, Any]],
    tmp_path: Path,
    number: str,
) -> Iterator[Talk]:
    """The caller (a phone behind the carrier trunk) presses 0 and talks to the operator, the
    supervisor's phone registered; each says its own tone. Ends with the operator hanging up."""
    operator, supervisor = people["operator"], people["supervisor"]
    voices = {name: tmp_path / f"{name}.wav" for name in ("caller", "operator", "supervisor")}
    for name, hz in (
        ("caller", CALLER_HZ),
        ("operator", OPERATOR_HZ),
        ("supervisor", SUPERVISOR_HZ),
    ):
        write_tone(voices[name], 120, hz)
    heard = {name: tmp_path / f"{name}-heard.wav" for name in voices}
    with (
        Softphone(
            stack, operator["sip_login"], operator["sip_password"],
            audio=voices["operator"], record_to=heard["operator"],
        ) as op_phone,
        Softphone(
            stack, supervisor["sip_login"], supervisor["sip_password"],
            audio=voices["supervisor"], record_to=heard["supervisor"],
        ) as sup_phone,
        Softphone(
            stack, number, "unused", register=False,
            audio=voices["caller"], record_to=heard["caller"],
        ) as caller,
    ):  # fmt: skip
        caller.dial(f"sip:{stack.hotline_number}@{stack.sip_host}:{stack.sip_port}")
        assert caller.wait_for_event("CALL_ESTABLISHED", timeout=30), caller.log
        caller_up = time.monotonic()
        # 0: the coordinator. Pressed again until the operator has answered (the menu may
        # not be listening yet when the call is answered).
        for _ in range(10):
            caller.send_digits("0")
            if op_phone.wait_for_event("CALL_ESTABLISHED", timeout=5):
                break
        assert op_phone.calls_answered() == 1, op_phone.log
        op_up = time.monotonic()
        call_id = wait_for(
            lambda: next(iter(api.get("/api/calls", params={"caller": number}).json()), None),
            what="the call's row",
        )["id"]
        yield Talk(caller, op_phone, sup_phone, heard, call_id, caller_up, op_up)
        op_phone.hangup()
        assert caller.wait_for_event("CALL_CLOSED", timeout=20), caller.log


def test_whisper_reaches_only_the_operator_and_a_dtmf_switch_to_barge_reaches_the_caller(
    stack: Settings, api: httpx.Client, people: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    operator, supervisor = people["operator"], people["supervisor"]
    with (
        talking(stack, api, people, tmp_path, "74951118031") as talk,
        signed_in(stack, "live-boss") as boss,
        signed_in(stack, "live-unplugged") as unplugged,
    ):
        sup_phone, call_id, heard = talk.supervisor, talk.call_id, talk.heard
        caller_up, op_up = talk.caller_up, talk.op_up
        assert _monitor(api, call_id) is None

        # A supervisor whose phone is not registered: a clear 409, nothing rung.
        refused = unplugged.post(f"/api/calls/{call_id}/monitor", json={"mode": "whisper"})
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "phone_unavailable"
        assert sup_phone.calls_ringing() == sup_phone.calls_answered() == 0

        whisper = boss.post(f"/api/calls/{call_id}/monitor", json={"mode": "whisper"})
        assert whisper.status_code == 200, whisper.text
        assert sup_phone.wait_for_event("CALL_ESTABLISHED", timeout=10), sup_phone.log
        sup_up = time.monotonic()
        session = wait_for(lambda: _monitor(api, call_id), what="the monitor session")
        assert (session["supervisor"], session["mode"]) == (supervisor["sip_login"], "whisper")
        assert session["operator"] == operator["sip_login"]
        # Whisper for five seconds of the session (as Asterisk counts them), then press 6.
        wait_for(
            lambda: (_monitor(api, call_id) or {}).get("seconds", 0) >= 5,
            what="five seconds of whisper",
        )
        switched_at = time.monotonic()
        sup_phone.send_digits("6")
        barge = wait_for(
            lambda: (m := _monitor(api, call_id)) and m["mode"] == "barge" and m,
            what="the session in barge mode after the DTMF switch",
        )
        wait_for(
            lambda: (_monitor(api, call_id) or {}).get("seconds", 0) >= barge["seconds"] + 5,
            what="five seconds of barge",
        )
        ended_at = time.monotonic()
        sup_phone.hangup()
        assert sup_phone.wait_for_event("CALL_CLOSED", timeout=10), sup_phone.log
        # The session is gone from the board as soon as it ended.
        wait_for(lambda: _monitor(api, call_id) is None, what="the session to be cleared")

    margin = 1.0
    whisper_span = (sup_up + margin, switched_at - margin)
    barge_span = (switched_at + 1.5, ended_at - margin)

    def span(path: Path, start: float, hz: int, of: tuple[float, float]) -> list[float]:
        return tone_levels(path, hz, of[0] - start, of[1] - start)

    def profile(path: Path) -> str:
        """Per second: caller/operator/supervisor tone levels, for the failure message."""
        samples, rate = _samples(path)
        return " ".join(
            f"{i // rate}s:"
            + "/".join(
                str(round(_level(samples[i : i + rate], rate, hz)))
                for hz in (CALLER_HZ, OPERATOR_HZ, SUPERVISOR_HZ)
            )
            for i in range(0, len(samples) - rate, rate)
        )

    timeline = (
        f"caller up 0, operator up {op_up - caller_up:.1f}, supervisor up"
        f" {sup_up - caller_up:.1f}, switched {switched_at - caller_up:.1f},"
        f" ended {ended_at - caller_up:.1f}\n"
        + "\n".join(f"{name}: {profile(path)}" for name, path in heard.items())
    )

    # Whisper: the operator hears the supervisor, the caller does not (but hears the operator:
    # the recording is in step and the audio flows).
    assert min(span(heard["operator"], op_up, SUPERVISOR_HZ, whisper_span)) > HEARD, timeline
    assert max(span(heard["caller"], caller_up, SUPERVISOR_HZ, whisper_span)) < SILENT, timeline
    assert min(span(heard["caller"], caller_up, OPERATOR_HZ, whisper_span)) > HEARD, timeline
    # Barge (switched by DTMF in the same session): both hear the supervisor.
    assert min(span(heard["caller"], caller_up, SUPERVISOR_HZ, barge_span)) > HEARD, timeline
    assert min(span(heard["operator"], op_up, SUPERVISOR_HZ, barge_span)) > HEARD, timeline
    # And the supervisor heard the call all along.
    assert max(tone_levels(heard["supervisor"], OPERATOR_HZ, 0.5, 4.0)) > HEARD, timeline

    rows = [r for r in audit(api) if r["call_id"] == call_id and r["action"] == "monitor"]
    assert [(r["by"], r["target"], r["result"]) for r in rows] == [
        ("live-boss", "whisper", "ok"),
        ("live-unplugged", "whisper", "refused"),
    ]


# --- moving one caller: one supervisor at a time --------------------------------------------


def test_a_caller_being_moved_by_one_supervisor_is_a_clear_409_for_another(
    stack: Settings, api: httpx.Client, people: dict[str, dict[str, Any]]
) -> None:
    heating = people["heating"]
    number = "+74951118032"
    db = Database(stack.db_url)
    operator = people["operator"]
    with (
        Softphone(stack, heating["sip_login"], heating["sip_password"]) as heating_phone,
        # Rings but nobody answers: a caller moved to the coordinator waits there.
        Softphone(stack, operator["sip_login"], operator["sip_password"], answer=False),
    ):
        caller = Caller(stack, number, dtmf="3", hold=60)
        call = wait_for(waiting(api, number, "heating"), timeout=40, what="the caller in heating")
        # Another supervisor's move is under way (its claim on the call is there).
        with db.session() as session:
            session.add(ControlClaim(call_id=call["id"], token="x" * 32, by="other", at=utcnow()))
        busy = api.post(f"/api/calls/{call['id']}/move", json={"queue": "coordinator"})
        assert busy.status_code == 409, busy.text
        assert busy.json()["code"] == "busy"
        assert "another supervisor" in busy.json()["detail"]
        many = api.post("/api/calls/move", json={"calls": [call["id"]], "queue": "duty"})
        assert many.status_code == 200 and many.json()[0]["data"]["code"] == "busy"
        with db.session() as session:
            session.execute(delete(ControlClaim))
        # Nothing half done: still waiting in heating, no move in the timeline.
        assert waiting(api, number, "heating")() is not None
        assert not [e for e in events_of(api, call["id"]) if e["kind"] == "moved"]

        # Two supervisors at the same moment: each gets an answer (moved, or busy), the
        # caller is waiting in the coordinator queue, one timeline entry per move that was
        # made.
        answers: list[httpx.Response] = []

        def move() -> None:
            answers.append(api.post(f"/api/calls/{call['id']}/move", json={"queue": "coordinator"}))

        threads = [threading.Thread(target=move) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        codes = [(r.status_code, r.json().get("code")) for r in answers]
        assert len(codes) == 2 and all(c in ((200, None), (409, "busy")) for c in codes), codes
        done = [c for c in codes if c[0] == 200]
        assert done, codes
        moves = [e for e in events_of(api, call["id"]) if e["kind"] == "moved"]
        assert len(moves) == len(done)
        wait_for(waiting(api, number, "coordinator"), what="the caller in the coordinator queue")
        assert api.post(f"/api/calls/{call['id']}/hangup").status_code == 200
        caller.join()
        assert heating_phone.calls_ringing() == heating_phone.calls_answered() == 0
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ControlClaim)) == 0
    db.dispose()
    finished_call(api, number)
    rows = [r for r in audit(api) if r["call_id"] == call["id"] and r["action"] == "move"]
    refused = [r for r in rows if r["result"] == "refused"]
    assert len(refused) >= 2 and all("busy" in (r["detail"] or "") for r in refused)
    assert len([r for r in rows if r["result"] == "ok"]) == len(done)


# --- queues and penalties, live ---------------------------------------------------------------


def _member(api: httpx.Client, login: str) -> dict[str, Any]:
    (agent,) = [a for a in api.get("/api/agents").json() if a["login"] == login]
    return dict(agent)


def test_an_operators_queues_and_penalties_change_live_and_stay_in_the_roster(
    stack: Settings, api: httpx.Client, people: dict[str, dict[str, Any]]
) -> None:
    login = people["operator"]["sip_login"]
    changed = api.post(
        f"/api/agents/{login}/queues",
        json={"queues": [{"queue": "coordinator", "penalty": 3}, {"queue": "duty", "penalty": 7}]},
    )
    assert changed.status_code == 200, changed.text
    # Asterisk's own queue membership (QueueStatus) says so, not only the database.
    assert {(q["queue"], q["penalty"]) for q in changed.json()["queues"]} == {
        ("coordinator", 3),
        ("duty", 7),
    }
    assert changed.json()["pending"] is False
    roster = json.loads(run_hotline("operators", "list", "--json").stdout.strip().splitlines()[-1])
    (mine,) = [o for o in roster if o["sip_login"] == login]
    assert {(q["queue"], q["penalty"]) for q in mine["queues"]} == {("coordinator", 3), ("duty", 7)}

    # Bad input: a clear answer, Asterisk and the roster untouched.
    for body, status in (
        ({"queues": [{"queue": "sauna", "penalty": 0}]}, 404),
        ({"queues": [{"queue": "duty", "penalty": PENALTY_MAX + 1}]}, 422),
        ({"queues": [{"queue": "duty", "penalty": -1}]}, 422),
        ({"queues": []}, 422),
        ({"queues": [{"queue": "duty"}, {"queue": "duty"}]}, 422),
    ):
        bad = api.post(f"/api/agents/{login}/queues", json=body)
        assert bad.status_code == status, (body, bad.text)
        assert isinstance(bad.json()["detail"], str | list) and bad.json()["detail"]
    assert {(q["queue"], q["penalty"]) for q in _member(api, login)["queues"]} == {
        ("coordinator", 3),
        ("duty", 7),
    }
    missing = api.post("/api/agents/nobody99/queues", json={"queues": [{"queue": "duty"}]})
    assert missing.status_code == 404

    # The CLI does the same, audited as the shell's user.
    out = run_hotline("agents", "queues", login, "coordinator", "--json")
    assert [
        (q["queue"], q["penalty"]) for q in json.loads(out.stdout.splitlines()[-1])["queues"]
    ] == [("coordinator", 0)]
    rows = [r for r in audit(api) if r["operator"] == login and r["action"] == "queues"]
    assert rows[0]["by"].startswith("cli:") and rows[0]["target"] == "coordinator"
    assert rows[1]["target"] == "duty:0,duty:0" and rows[1]["result"] == "refused"
    assert any(r["target"] == "coordinator:3,duty:7" and r["result"] == "ok" for r in rows)

    # An operator may not change anyone's queues, their own included (403, nothing audited).
    before = len(audit(api))
    with signed_in(stack, "live-olga") as olga:
        own = olga.post(f"/api/agents/{login}/queues", json={"queues": [{"queue": "duty"}]})
        assert own.status_code == 403, own.text
        assert olga.get("/api/control/monitors").status_code == 403
    assert len(audit(api)) == before
    assert [(q["queue"], q["penalty"]) for q in _member(api, login)["queues"]] == [
        ("coordinator", 0)
    ]


# --- moving a caller to one operator ------------------------------------------------------------


def test_a_caller_moved_to_one_operator_is_answered_by_them_and_the_log_says_so(
    stack: Settings, api: httpx.Client, people: dict[str, dict[str, Any]]
) -> None:
    """The operator's own phone rings (not a queue); once they answer, the call is answered
    by them in the call log, its timeline showing the move (by whom) and the operator's
    ring and answer."""
    heating, operator = people["heating"], people["operator"]
    number = "+74951118033"
    with (
        Softphone(stack, heating["sip_login"], heating["sip_password"]) as heating_phone,
        Softphone(stack, operator["sip_login"], operator["sip_password"]) as op_phone,
    ):
        caller = Caller(stack, number, dtmf="3", hold=40)
        call = wait_for(waiting(api, number, "heating"), timeout=40, what="the caller in heating")
        # An operator not in the roster: a clear 404, the caller stays where they are.
        nobody = api.post(f"/api/calls/{call['id']}/move", json={"operator": "nobody-here"})
        assert nobody.status_code == 404 and nobody.json()["code"] == "unknown_operator"
        assert waiting(api, number, "heating")() is not None

        moved = api.post(f"/api/calls/{call['id']}/move", json={"operator": operator["sip_login"]})
        assert moved.status_code == 200, moved.text
        assert moved.json()["data"]["to_operator"] == operator["sip_login"]
        assert op_phone.wait_for_event("CALL_ESTABLISHED", timeout=30), op_phone.log
        op_phone.hangup()
        result = caller.join()
        assert result.answered, result.detail
        done = finished_call(api, number)
        assert heating_phone.calls_ringing() == 0
    assert done["outcome"] == "answered", done
    assert done["operator"] == operator["name"], done
    events = events_of(api, done["id"])
    kinds = [e["kind"] for e in events]
    (move,) = [e for e in events if e["kind"] == "moved"]
    assert move["data"]["by"] == "token:test-suite"
    assert move["data"]["to_operator"] == operator["sip_login"]
    assert move["data"]["from_queue"] == "heating"
    assert kinds.index("moved") < kinds.index("agent_connect"), kinds
    rows = [r for r in audit(api) if r["call_id"] == done["id"] and r["action"] == "move"]
    assert [(r["operator"], r["result"]) for r in rows] == [(operator["sip_login"], "ok")]


# --- listen, and the beep setting -------------------------------------------------------------

# Asterisk's beep sound (sounds/<language>/beep: 0.44 s of 700 Hz), whispered to the operator.
BEEP_HZ, BEEP_SECONDS = 700, 0.4
# Its level as the operator hears it (through GSM, the whisper's mix and G.711).
BEEP_HEARD = 500.0


def _in_background(*args: str) -> tuple[threading.Thread, list[Any]]:
    """A `hotline` command in a thread; its CompletedProcess lands in the list."""
    outs: list[Any] = []
    thread = threading.Thread(target=lambda: outs.append(run_hotline(*args, timeout=90)))
    thread.start()
    return thread, outs


def test_listen_is_heard_by_the_supervisor_alone_and_the_operators_beep_is_a_setting(
    stack: Settings,
    api: httpx.Client,
    people: dict[str, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two listen sessions on one call from the CLI: the first with the beep on (the default),
    the second with HOTLINE_MONITOR_BEEP=false. The supervisor hears the operator; neither the
    operator nor the caller hears the supervisor; the operator hears the beep the first time
    only, the caller never."""
    supervisor = people["supervisor"]
    sessions: list[tuple[float, float]] = []
    with talking(stack, api, people, tmp_path, "74951118034") as talk:
        sup_phone, call_id, heard = talk.supervisor, talk.call_id, talk.heard
        caller_up, op_up = talk.caller_up, talk.op_up
        for turn, beep in enumerate(("true", "false"), start=1):
            monkeypatch.setenv("HOTLINE_MONITOR_BEEP", beep)
            cli, outs = _in_background(
                "calls", "monitor", str(call_id), "--phone", supervisor["sip_login"], "--json"
            )
            # The session starts when the supervisor's phone answers (the CLI returns later).
            assert sup_phone.wait_for_event("CALL_ESTABLISHED", count=turn, timeout=60)
            started = time.monotonic()
            cli.join(90)
            (out,) = outs
            assert json.loads(out.stdout.strip().splitlines()[-1])["mode"] == "listen"
            session = wait_for(lambda: _monitor(api, call_id), what="the monitor session")
            assert session["mode"] == "listen"
            until = session["seconds"] + 5
            wait_for(
                lambda until=until: (_monitor(api, call_id) or {}).get("seconds", 0) >= until,
                what="five seconds of listening",
            )
            sessions.append((started, time.monotonic()))
            sup_phone.hangup()
            assert sup_phone.wait_for_event("CALL_CLOSED", count=turn, timeout=10)
            wait_for(lambda: _monitor(api, call_id) is None, what="the session to end")
    monkeypatch.delenv("HOTLINE_MONITOR_BEEP")

    def levels(who: str, hz: int, start: float, end: float) -> list[float]:
        up = {"caller": caller_up, "operator": op_up}[who]
        return tone_levels(heard[who], hz, start - up, end - up)

    def beep_peak(who: str, started: float) -> float:
        """The loudest beep-long stretch of the beep's tone around a session's start."""
        up = {"caller": caller_up, "operator": op_up}[who]
        samples, rate = _samples(heard[who])
        width, step = int(BEEP_SECONDS * rate), rate // 20
        first = max(int((started - up - 1.0) * rate), 0)
        last = min(int((started - up + 3.0) * rate), len(samples) - width)
        return max(
            _level(samples[i : i + width], rate, BEEP_HZ) for i in range(first, last + 1, step)
        )

    beeps = [(beep_peak("operator", s), beep_peak("caller", s)) for s, _ in sessions]
    for turn, (started, ended) in enumerate(sessions):
        listening = (started + 1.0, ended - 0.5)
        # Listen only: the supervisor's voice reaches neither side of the call.
        assert max(levels("operator", SUPERVISOR_HZ, *listening)) < SILENT, turn
        assert max(levels("caller", SUPERVISOR_HZ, *listening)) < SILENT, turn
    # The beep, whispered to the operator as the session starts: only when it is on; the
    # caller never hears it.
    (on, caller_on), (off, caller_off) = beeps
    assert on > BEEP_HEARD and off < SILENT and on > 5 * off, beeps
    assert caller_on < SILENT and caller_off < SILENT, beeps
    # The supervisor's phone received the operator's voice (it recorded both sessions; the
    # first one's first seconds are enough).
    assert min(tone_levels(heard["supervisor"], OPERATOR_HZ, 1.0, 4.0)) > HEARD
    rows = [r for r in audit(api) if r["call_id"] == call_id and r["action"] == "monitor"]
    assert [(r["target"], r["result"], r["by"][:4]) for r in rows] == [("listen", "ok", "cli:")] * 2
