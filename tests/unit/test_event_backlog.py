"""The router's backlog alone: order across memory and spool, the bound, a restart, a torn
last line. The listener around it: tests/integration/test_router_backlog.py."""

from __future__ import annotations

from pathlib import Path

from call_router.event_backlog import EventBacklog


def numbered(count: int, start: int = 0) -> list[dict[str, str]]:
    return [
        {"Event": "Test", "Linkedid": f"call-{i % 3}", "n": str(i)} for i in range(start, count)
    ]


def drain(backlog: EventBacklog, batch: int = 4) -> list[str]:
    seen: list[str] = []
    while backlog:
        events = backlog.peek(batch)
        seen += [e["n"] for e in events]
        backlog.commit()
    return seen


def test_past_the_bound_older_events_go_to_disk_and_all_come_back_in_order(
    tmp_path: Path,
) -> None:
    backlog = EventBacklog(tmp_path / "spool.jsonl", memory_limit=3)
    for event in numbered(10):
        backlog.append([event])

    assert len(backlog) == 10
    assert backlog.spool_depth > 0
    assert drain(backlog) == [str(i) for i in range(10)]
    assert not backlog and backlog.spool_depth == 0
    assert (tmp_path / "spool.jsonl").read_bytes() == b""  # replayed, then truncated


def test_events_arriving_during_the_replay_stay_behind_it(tmp_path: Path) -> None:
    backlog = EventBacklog(tmp_path / "spool.jsonl", memory_limit=3)
    backlog.append(numbered(5))  # past the bound: all five on disk
    arrivals = numbered(14, start=5)
    seen: list[str] = []
    while backlog:
        events = backlog.peek(2)
        # New arrivals between the read and the write, now and then past the bound again.
        backlog.append(arrivals[:2])
        del arrivals[:2]
        seen += [e["n"] for e in events]
        backlog.commit()
    # A batch taken from memory and spilled before its commit is replayed again from disk:
    # a repeat is harmless (writes are idempotent), a gap or a swap would not be.
    assert list(dict.fromkeys(seen)) == [str(i) for i in range(14)]
    assert not arrivals


def test_the_spool_outlives_the_process_and_a_torn_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    backlog = EventBacklog(path, memory_limit=100)
    backlog.append(numbered(4))
    backlog.spill()
    with path.open("ab") as spool:  # a crash in the middle of the next append
        spool.write(b'{"Event":"Hangup","n":"torn')

    again = EventBacklog(path, memory_limit=100)
    assert (len(again), again.spool_depth) == (4, 4)
    again.append(numbered(6, start=4))
    again.spill()
    assert drain(again) == [str(i) for i in range(6)]
