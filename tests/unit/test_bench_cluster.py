"""The cluster benchmark's pure parts (bench/cluster): the compressed Monday's arrivals, the
failover judgement from SIPp's per-call lines, and the CPU grouped by kind of part."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.callstack import CallerPlan
from bench.cluster.day import MONDAY, segments
from bench.cluster.run import judge_failover, parts, service


def test_the_day_peaks_at_nine_and_keeps_its_shape_when_squeezed() -> None:
    assert len(MONDAY) == 24 and max(MONDAY) == MONDAY[9] == 1.0
    hours = segments(peak_rate=2.0, day_s=240)
    assert [h.start_s for h in hours] == [h.hour * 10 for h in hours]
    assert max(hours, key=lambda h: h.calls).hour == 9
    assert next(h for h in hours if h.hour == 9).calls == 20  # 2 calls/s for a 10 s hour
    # A night hour whose share rounds to no call is left out rather than placed at 0/s.
    assert all(h.calls >= 1 for h in hours)
    assert 3 not in {h.hour for h in segments(peak_rate=1.0, day_s=240)}


def plan(calls: int) -> CallerPlan:
    return CallerPlan(
        calls=calls, rate=1.0, concurrent=50, patience=30, dtmf_delay=1.5, audio=0.5, digit="2"
    )


def test_failover_counts_calls_cut_on_the_dead_node_apart_from_new_calls() -> None:
    p = plan(8)
    n = p.numbers
    t0, killed = 1000.0, 1004.0
    seen = [
        # Calls 0-3 sent before the kill: 0 and 2 on the live node, 1 and 3 on the dead one.
        *[(t0 + i + 0.1, ["ANSWERED", n[i]]) for i in range(4)],
        (t0 + 10, ["REMOTE_BYE", n[0]]),
        (t0 + 12, ["REMOTE_BYE", n[2]]),
        # Call 4 went to the dead node, waited for Kamailio's 2 s timer, then the live node.
        (t0 + 4 + 2.1, ["ANSWERED", n[4]]),
        (t0 + 16, ["REMOTE_BYE", n[4]]),
        # Call 5 was refused, calls 6 and 7 are good.
        (t0 + 5.1, ["REJECTED", n[5], "x", "503"]),
        *[(t0 + i + 0.1, ["ANSWERED", n[i]]) for i in (6, 7)],
        *[(t0 + 20, ["LOCAL_BYE", n[i]]) for i in (6, 7)],
    ]
    result = judge_failover(p, seen, t0, killed, out_at=killed + 2.5)
    assert result["node1_out_of_rotation_after_s"] == 2.5
    assert result["cut_in_progress"] == 2
    assert result["new_calls_failed"] == 1
    assert [f["fate"] for f in result["failed"]] == [
        "in progress on the dead node: cut",
        "in progress on the dead node: cut",
        "refused 503",
    ]
    # Call i leaves at t0 + offset + i: offset 0.1 s from the quickest answer before the kill.
    assert result["sipp_start_offset_s"] == 0.1
    assert result["last_failed_new_call_sent_s"] == 1.1
    assert result["first_good_call_after_it_s"] == 2.1
    assert result["failover_s"] == 2.1
    assert result["answer_wait_s_first_10s_after_kill"]["max"] == 2.0


def test_no_failed_new_call_is_a_failover_of_zero() -> None:
    p = plan(2)
    n = p.numbers
    seen = [
        (100.1, ["ANSWERED", n[0]]),
        (101.1, ["ANSWERED", n[1]]),
        (110.0, ["REMOTE_BYE", n[0]]),
        (111.0, ["REMOTE_BYE", n[1]]),
    ]
    result = judge_failover(p, seen, 100.0, 100.5, out_at=None)
    assert result["failover_s"] == 0.0 and result["good"] == 2
    assert result["node1_out_of_rotation_after_s"] is None


def test_cpu_is_summed_by_kind_of_part() -> None:
    cpu = {
        "asterisk/node1": 10.0,
        "asterisk/node2": 12.0,
        "agi/node1": 2.0,
        "router/node1": 5.0,
        "dashboard": 1.0,
        "kamailio": 0.5,
        "postgres": 3.0,
        "sipp_callers": 1.5,
        "sipp_operators": 1.0,
    }
    assert parts(cpu) == {
        "asterisk": 22.0,
        "kamailio": 0.5,
        "postgres": 3.0,
        "python": 8.0,
        "sipp": 2.5,
    }


def test_service_level_counts_abandoned_callers_against_it() -> None:
    joined = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

    def row(wait: float | None, outcome: str) -> dict[str, object]:
        answered = None if wait is None else joined + timedelta(seconds=wait)
        return {"queue_joined_at": joined, "answered_at": answered, "outcome": outcome}

    rows = [row(2, "answered"), row(15, "answered"), row(None, "abandoned_in_queue")]
    rows.append({"queue_joined_at": None, "answered_at": None, "outcome": "abandoned_in_menu"})
    result = service(rows, sla_s=10)
    assert (result["logged"], result["queued"], result["answered"]) == (4, 3, 2)
    assert result["sla_pct"] == 33.3
    assert result["abandoned_pct"] == 33.3
