"""Asterisk's queue_log and CDR lines → the events the router missed (call_router/reconcile.py).

Lines are in Asterisk 22's formats: queue_log `time|callid|queue|agent|verb|data...`
(log_membername_as_agent=yes, so the agent is the member name) and cdr_csv with loguniqueid,
loguserfield and newcdrcolumns.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from call_router.reconcile import (
    AsteriskRecords,
    KnownEvent,
    ended_at,
    failsafe_calls,
    missed_events,
    parse_cdr_ends,
    parse_queue_log,
    read_tail,
)

T0 = 1_763_892_000
CALL = "1763892000.10"


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


ANSWERED_LINES = [
    f"{T0 - 5}|NONE|NONE|NONE|QUEUESTART|",
    f"{T0 + 20}|{CALL}|plumbing|NONE|ENTERQUEUE||+74951234567|1",
    f"{T0 + 20}|{CALL}|plumbing|Boris|RINGNOANSWER|15000",
    f"{T0 + 26}|{CALL}|plumbing|Anna Petrova|CONNECT|6|1763892020.11|6",
    f"{T0 + 146}|{CALL}|plumbing|Anna Petrova|COMPLETECALLER|6|120|1",
    f"{T0 + 30}|1763892999.1|plumbing|NONE|ENTERQUEUE||+74950000000|1",
]


def cdr_line(linkedid: str, uniqueid: str, end: str, clid: str = '"Ivan" <+74951234567>') -> str:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL).writerow(
        ["", "+74951234567", "h", "hotline-queue-exit", clid, "PJSIP/pstn-00000001", "",
         "NoOp", "x", "2025-11-23 10:00:00", "2025-11-23 10:00:00", end, 146, 146, "ANSWERED",
         "DOCUMENTATION", uniqueid, "", "", linkedid, 0]
    )  # fmt: skip
    return out.getvalue()


def test_queue_log_rows_of_the_wanted_calls_only_and_bad_lines_skipped() -> None:
    rows = parse_queue_log([*ANSWERED_LINES, "garbage", "x|y", f"abc|{CALL}|q|a|V"], {CALL})
    assert [r.verb for r in rows] == ["ENTERQUEUE", "RINGNOANSWER", "CONNECT", "COMPLETECALLER"]
    assert rows[2].agent == "Anna Petrova" and rows[2].field(1) == "1763892020.11"
    assert rows[2].field(9) == ""


def test_an_answered_call_missed_entirely_becomes_join_connect_complete() -> None:
    events = missed_events(parse_queue_log(ANSWERED_LINES, {CALL}), known=[])
    assert [e["Event"] for e in events] == ["QueueCallerJoin", "AgentConnect", "AgentComplete"]
    join, connect, complete = events
    assert (join["Linkedid"], join["Uniqueid"], join["Queue"]) == (CALL, CALL, "plumbing")
    assert join["Timestamp"] == str(T0 + 20)
    # The operator leg's uniqueid: the same key as the live AgentConnect / AgentComplete.
    assert (connect["MemberName"], connect["HoldTime"], connect["DestUniqueid"]) == (
        "Anna Petrova", "6", "1763892020.11",
    )  # fmt: skip
    assert (complete["Reason"], complete["TalkTime"], complete["DestUniqueid"]) == (
        "caller", "120", "1763892020.11",
    )  # fmt: skip


def test_what_the_timeline_already_has_is_not_added_again() -> None:
    known = [
        # The live event had sub-second precision; the queue_log line has whole seconds.
        KnownEvent("queue_join", "plumbing", at(20.73)),
        KnownEvent("agent_connect", "plumbing", at(26.2)),
    ]
    events = missed_events(parse_queue_log(ANSWERED_LINES, {CALL}), known)
    assert [e["Event"] for e in events] == ["AgentComplete"]
    # A join of another queue is another event (overflow to the coordinator).
    other = [KnownEvent("queue_join", "coordinator", at(20))]
    assert missed_events(parse_queue_log(ANSWERED_LINES[:2], {CALL}), other)[0]["Queue"] == (
        "plumbing"
    )


def test_abandon_timeout_and_virtual_hold_lines() -> None:
    lines = [
        f"{T0 + 5}|{CALL}|meters|NONE|ENTERQUEUE||+74951234567|1",
        f"{T0 + 65}|{CALL}|meters|NONE|EXITWITHTIMEOUT|1|1|60",
        f"{T0 + 66}|{CALL}|coordinator|NONE|ENTERQUEUE||+74951234567|1",
        f"{T0 + 80}|{CALL}|coordinator|NONE|EXITWITHKEY|1|1|1|14",
        f"{T0 + 80}|{CALL}|coordinator|NONE|HOTLINECALLBACK|virtual_hold",
        f"{T0 + 90}|1763892000.99|lift|NONE|ABANDON|1|1|40",
    ]
    events = missed_events(parse_queue_log(lines, {CALL, "1763892000.99"}), known=[])
    assert [(e["Event"], e.get("Variable"), e.get("UserEvent")) for e in events] == [
        ("QueueCallerJoin", None, None),
        ("QueueCallerLeave", None, None),
        ("VarSet", "QUEUESTATUS", None),
        ("QueueCallerJoin", None, None),
        ("QueueCallerLeave", None, None),
        ("UserEvent", None, "HotlineCallbackRequest"),
        ("QueueCallerAbandon", None, None),
    ]
    assert events[2]["Value"] == "TIMEOUT" and events[5]["Queue"] == "coordinator"
    assert events[6]["HoldTime"] == "40"


def test_the_end_comes_from_the_cdr_else_from_a_final_queue_log_line() -> None:
    text = (
        cdr_line(CALL, CALL, "2025-11-23 10:02:27")
        + cdr_line(CALL, "1763892020.11", "2025-11-23 10:02:26", clid='"a,b""|" <1>')
        + cdr_line("other", "other", "2025-11-23 11:00:00")
        + "not,a,cdr\n"
    )
    ends = parse_cdr_ends(text, {CALL})
    assert ends == {CALL: at(147)}
    rows = parse_queue_log(ANSWERED_LINES, {CALL})
    assert ended_at(CALL, rows, ends) == at(147)
    assert ended_at(CALL, rows, {}) == at(146)  # COMPLETECALLER
    assert ended_at(CALL, rows[:2], {}) is None  # still waiting as far as the log knows


def test_records_are_read_from_the_log_dir_tail_only(tmp_path: Path) -> None:
    (tmp_path / "cdr-csv").mkdir()
    (tmp_path / "queue_log").write_text("\n".join(ANSWERED_LINES) + "\n")
    (tmp_path / "cdr-csv" / "Master.csv").write_text(cdr_line(CALL, CALL, "2025-11-23 10:02:27"))
    rows, ends = AsteriskRecords.in_log_dir(tmp_path).read([CALL])
    assert [r.verb for r in rows[CALL]] == [
        "ENTERQUEUE",
        "RINGNOANSWER",
        "CONNECT",
        "COMPLETECALLER",
    ]
    assert ends == {CALL: at(147)}
    assert AsteriskRecords.in_log_dir(tmp_path / "missing").read([CALL]) == ({}, {})
    # A long file: only whole lines of its tail.
    assert read_tail(tmp_path / "queue_log", limit=100).splitlines() == ANSWERED_LINES[-1:]


def test_lines_moved_by_a_log_rotation_are_still_read(tmp_path: Path) -> None:
    """The router's daily LoggerRotate may move a call's first lines into queue_log.<time>."""
    (tmp_path / "queue_log.2025-11-22-00:00:00").write_text("\n".join(ANSWERED_LINES[:1]) + "\n")
    (tmp_path / "queue_log").write_text("\n".join(ANSWERED_LINES[1:]) + "\n")
    rows, _ends = AsteriskRecords.in_log_dir(tmp_path).read([CALL])
    assert [r.verb for r in rows[CALL]] == [
        "ENTERQUEUE",
        "RINGNOANSWER",
        "CONNECT",
        "COMPLETECALLER",
    ]


def test_a_cdr_moved_by_the_sweeps_rotation_is_still_read(tmp_path: Path) -> None:
    """The sweep renames cdr-csv/Master.csv to Master.csv.<time>; the call's end is there."""
    (tmp_path / "cdr-csv").mkdir()
    rotated = tmp_path / "cdr-csv" / "Master.csv.1763856000"
    rotated.write_text(cdr_line(CALL, CALL, "2025-11-23 10:02:27"))
    _rows, ends = AsteriskRecords.in_log_dir(tmp_path).read([CALL])
    assert ends == {CALL: datetime(2025, 11, 23, 10, 2, 27, tzinfo=UTC)}
    # A newer record in the live file wins, as in one file.
    (tmp_path / "cdr-csv" / "Master.csv").write_text(cdr_line(CALL, CALL, "2025-11-23 10:05:00"))
    _rows, ends = AsteriskRecords.in_log_dir(tmp_path).read([CALL])
    assert ends == {CALL: datetime(2025, 11, 23, 10, 5, tzinfo=UTC)}


def test_an_agi_failure_line_becomes_the_fail_safe_user_event() -> None:
    lines = [
        f"{T0 + 2}|{CALL}|coordinator|NONE|HOTLINEAGIFAILED|FAILURE",
        f"{T0 + 2}|{CALL}|coordinator|NONE|ENTERQUEUE||+74951234567|1",
    ]
    events = missed_events(parse_queue_log(lines, {CALL}), known=[])
    assert [(e["Event"], e.get("UserEvent")) for e in events] == [
        ("UserEvent", "HotlineAgiFailed"),
        ("QueueCallerJoin", None),
    ]
    assert (events[0]["Status"], events[0]["Queue"], events[0]["Linkedid"]) == (
        "FAILURE",
        "coordinator",
        CALL,
    )


def test_a_fail_safe_call_takes_its_caller_from_the_cdr_else_from_its_queue_line() -> None:
    ended, waiting, shifted = "1763892000.20", "1763892000.21", "1763892000.22"
    lines = [
        f"{T0 + 2}|{ended}|coordinator|NONE|HOTLINEAGIFAILED|FAILURE|500100",
        f"{T0 + 2}|{ended}|coordinator|NONE|ENTERQUEUE||+74950000001|1",
        f"{T0 + 3}|{waiting}|coordinator|NONE|HOTLINEAGIFAILED|HANGUP|",
        f"{T0 + 3}|{waiting}|coordinator|NONE|ENTERQUEUE||+74950000002|2",
        # A caller ID with a "|" shifts the fields: no number rather than a wrong one.
        f"{T0 + 4}|{shifted}|coordinator|NONE|HOTLINEAGIFAILED|FAILURE|500100",
        f"{T0 + 4}|{shifted}|coordinator|NONE|ENTERQUEUE||+7495|0000003|3",
        # A call that never met the fail-safe is not one of them.
        f"{T0 + 5}|{CALL}|plumbing|NONE|ENTERQUEUE||+74951234567|1",
    ]
    rows = parse_queue_log(lines, None)
    cdr = cdr_line(ended, ended, "2025-11-23 10:01:00", clid='"Ivan "the" Caller" <+7495>')
    # The operator leg's record (another uniqueid) says nothing about the caller.
    cdr += cdr_line(ended, "1763892000.30", "2025-11-23 10:01:00", clid='"Op" <1006>')
    calls = {call.linkedid: call for call in failsafe_calls(rows, cdr)}
    assert set(calls) == {ended, waiting, shifted}
    first = calls[ended]
    assert (first.caller_number, first.caller_name, first.channel, first.dialed_number) == (
        "+74951234567",
        'Ivan "the" Caller',
        "PJSIP/pstn-00000001",
        "500100",
    )
    assert first.started_at == datetime(2025, 11, 23, 10, 0, 0, tzinfo=UTC)  # the CDR's
    assert (calls[waiting].caller_number, calls[waiting].dialed_number) == ("+74950000002", None)
    assert calls[waiting].started_at == at(3)  # no CDR yet: when it met the fail-safe
    assert calls[shifted].caller_number is None


def test_the_records_list_fail_safe_calls_from_a_moment_on(tmp_path: Path) -> None:
    records = AsteriskRecords(tmp_path / "queue_log", tmp_path / "Master.csv")
    records.queue_log.write_text(
        f"{T0}|1763892000.40|coordinator|NONE|HOTLINEAGIFAILED|FAILURE|500100\n"
        f"{T0 + 60}|1763892060.41|coordinator|NONE|HOTLINEAGIFAILED|FAILURE|500100\n"
    )
    assert [c.linkedid for c in records.failsafe_calls_since(at(30))] == ["1763892060.41"]
    assert records.failsafe_calls_since(at(61)) == []
