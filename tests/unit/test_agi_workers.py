"""`hotline agi --workers N` (agi_scripts/workers.py, worker_spools.py): the pure rules - how
many workers, which AudioSocket port and spool each one gets, how spools of workers that no
longer exist are handed over - and a handed-over spool replayed by a real CallWriter into a
real SQLite log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from agi_scripts.call_writer import CallWriter
from agi_scripts.worker_spools import adopt_spools, spools_on_disk, worker_spool
from agi_scripts.workers import audiosocket_port, restart_pause, worker_count
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.models import Call, CallEvent
from call_router.settings import Settings


def test_worker_count_is_a_number_or_one_per_cpu() -> None:
    assert worker_count(1) == 1
    assert worker_count("3") == 3
    assert worker_count("auto", cpus=6) == 6
    assert worker_count(" AUTO ", cpus=2) == 2
    assert worker_count("auto") >= 1
    for bad in (0, "0", -1, "257", "many", ""):
        with pytest.raises(ValueError):
            worker_count(bad)


def test_the_setting_takes_a_number_or_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_AGI_WORKERS", "auto")
    assert Settings().agi_workers == "auto"
    monkeypatch.setenv("HOTLINE_AGI_WORKERS", "4")
    assert Settings().agi_workers == 4
    monkeypatch.setenv("HOTLINE_AGI_WORKERS", "0")
    with pytest.raises(ValueError):
        Settings()
    monkeypatch.delenv("HOTLINE_AGI_WORKERS")
    assert Settings().agi_workers == 1


def test_each_worker_has_its_own_audiosocket_port() -> None:
    assert [audiosocket_port(4574, i) for i in range(3)] == [4574, 4575, 4576]
    assert audiosocket_port(0, 5) == 0  # any free port: each worker binds its own
    with pytest.raises(ValueError):
        audiosocket_port(65535, 1)


def test_worker_zero_keeps_the_single_process_spool(tmp_path: Path) -> None:
    spool = tmp_path / "agi-call-log.jsonl"
    assert worker_spool(spool, 0) == spool
    assert worker_spool(spool, 1) == tmp_path / "agi-call-log.1.jsonl"
    assert worker_spool(spool, 12) == tmp_path / "agi-call-log.12.jsonl"


def test_only_spool_files_count_as_spools(tmp_path: Path) -> None:
    spool = tmp_path / "agi-call-log.jsonl"
    for name in (
        "agi-call-log.jsonl",
        "agi-call-log.2.jsonl",
        "agi-call-log.2.rejected",  # set aside for a person, never replayed
        "agi-call-log.tmp",
        "agi-call-log.3.jsonl.adopting",
        "agi-call-log.x.jsonl",
        "agi-call-log.0.jsonl",
        "router-events.jsonl",
    ):
        (tmp_path / name).write_text("x\n")
    assert spools_on_disk(spool) == {0: spool, 2: tmp_path / "agi-call-log.2.jsonl"}
    assert spools_on_disk(tmp_path / "missing" / "agi-call-log.jsonl") == {}


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_spools_of_workers_that_are_gone_go_in_front_of_a_current_one(tmp_path: Path) -> None:
    spool = tmp_path / "agi-call-log.jsonl"
    spool.write_text("w0-a\nw0-b\n")
    worker_spool(spool, 1).write_text("w1-a\n")
    worker_spool(spool, 2).write_text("w2-a\nw2-b\nw2-cut-by-a-cra")  # killed mid-line
    worker_spool(spool, 3).write_text("w3-a\n")

    adopted = adopt_spools(spool, 2)  # 4 workers before, 2 now

    # Worker 2's spool goes to worker 0, worker 3's to worker 1; each in front (older).
    assert _lines(spool) == ["w2-a", "w2-b", "w0-a", "w0-b"]
    assert _lines(worker_spool(spool, 1)) == ["w3-a", "w1-a"]
    assert sorted(spools_on_disk(spool)) == [0, 1]
    assert {(a.orphan.name, a.into.name, a.writes) for a in adopted} == {
        ("agi-call-log.2.jsonl", "agi-call-log.jsonl", 2),
        ("agi-call-log.3.jsonl", "agi-call-log.1.jsonl", 1),
    }
    assert not list(tmp_path.glob("*.adopting"))
    assert adopt_spools(spool, 2) == []  # nothing left to hand over


def test_back_to_one_process_every_worker_spool_goes_to_its_spool(tmp_path: Path) -> None:
    spool = tmp_path / "spool" / "agi-call-log.jsonl"
    spool.parent.mkdir()
    worker_spool(spool, 1).write_text("w1\n")
    worker_spool(spool, 2).write_text("w2\n")
    adopt_spools(spool, 1)
    assert _lines(spool) == ["w1", "w2"]  # no spool of its own yet: created
    assert spools_on_disk(spool) == {0: spool}


def test_more_workers_than_before_leave_every_spool_where_it_is(tmp_path: Path) -> None:
    spool = tmp_path / "agi-call-log.jsonl"
    spool.write_text("single\n")
    assert adopt_spools(spool, 4) == []
    assert _lines(spool) == ["single"]  # worker 0 replays it


def test_a_restart_after_healthy_work_is_immediate_and_a_crash_loop_slows_down() -> None:
    assert restart_pause(lived=3600, quick_deaths=0) == 0
    assert [restart_pause(lived=1, quick_deaths=n) for n in range(1, 7)] == [
        0.5,
        1,
        2,
        4,
        8,
        10,
    ]


class AwayCallLog(CallLog):
    """The database is away: every write fails as SQLAlchemy fails then."""

    def ensure_calls(self, arrivals: Any) -> dict[str, int]:
        raise OperationalError("INSERT", {}, ConnectionRefusedError("database is away"))


async def test_an_adopted_spool_is_replayed_by_its_new_worker(tmp_path: Path) -> None:
    """Worker 1 stops with its writes spooled (the database was away), then the box runs one
    process: that call still reaches the call log, in its order, through worker 0's writer."""
    db = Database(f"sqlite:///{tmp_path / 'calls.db'}")
    db.upgrade()
    spool = tmp_path / "spool" / "agi-call-log.jsonl"
    gone = CallWriter(AwayCallLog(db), worker_spool(spool, 1), retry_max=0.2)
    await gone.start()
    gone.submit("ensure_call", "gone.1", caller_number="+74950000001", caller_name=None)
    for n in range(3):
        gone.submit("record_event", "gone.1", kind="flow_step", key=f"flow:{n}", data={"n": n})
    await gone.stop(timeout=0.5)
    assert gone.spooled == 4 and spools_on_disk(spool) == {1: worker_spool(spool, 1)}

    adopt_spools(spool, 1)
    writer = CallWriter(CallLog(db), spool, retry_max=0.2)
    await writer.start()
    try:
        assert await writer.idle(timeout=10)
    finally:
        await writer.stop()
    with db.session() as session:
        keys = list(
            session.scalars(
                select(CallEvent.key)
                .join(Call)
                .where(Call.linkedid == "gone.1")
                .order_by(CallEvent.id)
            )
        )
    db.dispose()
    assert keys == ["flow:0", "flow:1", "flow:2"]
    assert spool.read_bytes() == b""  # written, so emptied


def test_health_names_the_workers_that_serve(tmp_path: Path) -> None:
    import json
    import socket

    from call_router.health import check_fastagi

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        settings = Settings(state_dir=tmp_path, agi_host="127.0.0.1", agi_port=port)
        assert check_fastagi(settings).detail == f"accepts connections on 127.0.0.1:{port}"
        settings.agi_workers_file.parent.mkdir(parents=True)
        settings.agi_workers_file.write_text(
            json.dumps(
                {
                    "parent": 10,
                    "port": port,
                    "workers": [
                        {"index": 0, "pid": 11, "ready": True, "restarts": 0},
                        {"index": 1, "pid": None, "ready": False, "restarts": 2},
                    ],
                }
            )
        )
        check = check_fastagi(settings)
    assert check.ok
    assert check.detail.endswith("; 1 of 2 workers ready (pids 11), 2 restarted"), check.detail


def test_a_spool_still_held_by_a_live_worker_is_left_for_the_next_start(tmp_path: Path) -> None:
    """A killed parent's worker drains its calls for a while and still appends to its spool:
    moving that file now would lose what it appends. Its lock says it is alive."""
    import os

    from agi_scripts.worker_spools import hold_spool, try_lock_spool

    spool = tmp_path / "agi-call-log.jsonl"
    worker_spool(spool, 1).write_text("w1\n")
    draining = try_lock_spool(worker_spool(spool, 1))  # as the old worker holds it
    assert draining is not None
    assert try_lock_spool(worker_spool(spool, 1)) is None
    assert hold_spool(worker_spool(spool, 1), wait=0.3) is None  # gave up waiting, goes on
    assert adopt_spools(spool, 1) == []
    assert worker_spool(spool, 1).read_text() == "w1\n"
    os.close(draining)  # the old worker exits
    assert [a.writes for a in adopt_spools(spool, 1)] == [1]
    assert _lines(spool) == ["w1"]
    held = hold_spool(spool, wait=0.3)
    assert held is not None  # free: the new process holds it from now on
    os.close(held)
