"""The durable spool (call_router/durable_spool.py) on a real file: append, replay in order,
empty once written, survive a restart and a torn last line."""

from __future__ import annotations

import os
from pathlib import Path

from call_router.durable_spool import DurableSpool


def numbered(start: int, stop: int) -> list[dict[str, object]]:
    return [{"n": n, "text": f"record {n} \u2013 \u00e9\n"} for n in range(start, stop)]


def drain(spool: DurableSpool, limit: int = 3) -> list[object]:
    seen: list[object] = []
    while spool.pending:
        batch = spool.read(limit)
        seen += [record["n"] for record in batch.records]
        spool.consume(batch)
    return seen


def test_records_come_back_in_order_and_the_file_empties_once_written(tmp_path: Path) -> None:
    spool = DurableSpool(tmp_path / "deep" / "spool.jsonl")
    assert spool.empty and spool.pending == 0 and spool.read(10).records == []
    assert spool.append(numbered(0, 5), sync=True) == 5
    assert spool.append(numbered(5, 7)) == 2
    assert spool.pending == 7
    # read without consume: the same records again
    assert [r["n"] for r in spool.read(2).records] == [0, 1]
    assert spool.read(2).records == numbered(0, 2)
    assert drain(spool) == list(range(7))
    # consumed but kept until the writer says they are written: a crash now replays them
    assert spool.pending == 0 and not spool.empty
    assert spool.path.read_bytes().count(b"\n") == 7
    spool.clear()
    assert spool.empty and spool.path.read_bytes() == b""
    spool.append(numbered(7, 9))
    assert drain(spool) == [7, 8]


def test_a_restart_replays_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    first = DurableSpool(path)
    first.append(numbered(0, 4))
    first.consume(first.read(2))  # read, but the process dies before clear()
    first.close()
    second = DurableSpool(path)
    assert second.pending == 4
    assert drain(second) == [0, 1, 2, 3]


def test_a_torn_last_line_is_cut_off_and_the_next_append_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    first = DurableSpool(path)
    first.append(numbered(0, 2), sync=True)
    first.close()
    with path.open("ab") as torn:  # a crash in the middle of the next append
        torn.write(b'{"n": 2, "text": "cut sh')
    spool = DurableSpool(path)
    assert spool.pending == 2
    assert path.read_bytes().endswith(b"\n")
    spool.append(numbered(3, 4))
    assert drain(spool) == [0, 1, 3]
    assert DurableSpool(path).pending == 3


def test_only_a_torn_line_left_the_next_record_is_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    path.write_bytes(b'{"n": 0, "te')
    spool = DurableSpool(path)
    assert spool.pending == 0
    spool.append(numbered(1, 2))
    assert drain(spool) == [1]


def test_a_whole_line_that_is_not_a_record_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    path.write_bytes(b'{"n": 0}\nnot json\n[1, 2]\n{"n": 3}\n')
    spool = DurableSpool(path)
    assert spool.pending == 4
    batch = spool.read(10)
    assert [r["n"] for r in batch.records] == [0, 3] and batch.lines == 4
    spool.consume(batch)
    assert spool.pending == 0


def test_prepend_puts_records_before_the_unconsumed_ones(tmp_path: Path) -> None:
    spool = DurableSpool(tmp_path / "spool.jsonl")
    spool.append(numbered(0, 6))
    spool.consume(spool.read(2))  # 0, 1 taken (in the writer's memory now)
    spool.prepend(numbered(10, 12))  # older than what is still on disk
    assert spool.pending == 6
    assert drain(spool) == [10, 11, 2, 3, 4, 5]
    # nothing unconsumed: prepend is an append after the kept lines
    spool.prepend(numbered(20, 21))
    assert drain(spool) == [20]
    assert not list(spool.path.parent.glob("*.tmp"))
    # and it survives a restart in that order
    spool.close()
    assert drain(DurableSpool(spool.path), limit=100) == [10, 11, 2, 3, 4, 5, 20]


def test_appends_are_in_the_file_before_append_returns(tmp_path: Path) -> None:
    spool = DurableSpool(tmp_path / "spool.jsonl")
    spool.append(numbered(0, 1))
    # another reader (a process started after a kill) sees it without close() or sync()
    fd = os.open(spool.path, os.O_RDONLY)
    try:
        assert os.read(fd, 1 << 16).count(b"\n") == 1
    finally:
        os.close(fd)
    spool.sync()
    spool.close()
