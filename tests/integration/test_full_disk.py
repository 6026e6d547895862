"""The spools on a full disk (found by a fault review, 2026-12-06; all three failed before).

The disk PostgreSQL lives on fills (PostgreSQL goes away) and the spools on the same disk refuse
appends too; then space is freed, PostgreSQL returns. The full disk is the kernel's own refusal:
RLIMIT_FSIZE at the spool's current size makes every append fail (EFBIG, as ENOSPC would) in a
child process; raising it again frees the "disk"."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PRELUDE = textwrap.dedent(
    """
    import asyncio, resource, signal
    from pathlib import Path
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    HARD = resource.getrlimit(resource.RLIMIT_FSIZE)[1]

    def disk_full(path):
        size = path.stat().st_size if path.exists() else 0
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, HARD))

    def disk_freed():
        resource.setrlimit(resource.RLIMIT_FSIZE, (HARD, HARD))

    def event(i):
        return {"Event": "Hangup", "Linkedid": f"call-{i}", "Uniqueid": f"call-{i}"}
    """
)


def run(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = PRELUDE + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "TMP_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_router_backlog_spill_refused_by_full_disk_loses_no_event(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        from call_router.event_backlog import EventBacklog
        path = Path("router-events.jsonl")
        backlog = EventBacklog(path, memory_limit=1)
        backlog.append([event(1), event(2)])        # past the bound: spilled to disk
        disk_full(path)
        try:
            backlog.append([event(3), event(4)])    # spill refused: kept in memory
        except OSError:
            pass
        disk_freed()
        backlog.append([event(5), event(6)])        # spilled
        replayed = []
        while len(backlog):
            replayed += [e["Linkedid"] for e in backlog.peek(2)]
            backlog.commit()
        print("REPLAYED", sorted(set(replayed)))
        """,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"REPLAYED {[f'call-{i}' for i in range(1, 7)]}" in result.stdout, result.stdout[-3000:]


def test_router_backlog_replays_after_full_disk_and_outage(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        from sqlalchemy.exc import OperationalError
        from call_router import router_writer
        from call_router.event_backlog import EventBacklog
        from call_router.router_writer import EventWriter
        router_writer.REPLAY_BACKOFF_FIRST = router_writer.REPLAY_BACKOFF_MAX = 0.05
        written, db_up = [], False

        async def write_batch(events):
            if not db_up:
                raise OperationalError("INSERT", {}, ConnectionRefusedError("refused"))
            written.extend(e["Linkedid"] for e in events)

        async def main():
            global db_up
            path = Path("router-events.jsonl")
            backlog = EventBacklog(path, memory_limit=1000)
            writer = EventWriter(None, write_batch, backlog, lanes=1, batch_size=10,
                                 on_change=lambda: None)
            lanes = asyncio.create_task(writer.run_lanes())
            replayer = asyncio.create_task(writer.replay_forever())
            writer.lanes[0].put_nowait(event(1))
            while backlog.spool_depth < 1:          # held, spilled at a retry
                await asyncio.sleep(0.01)
            disk_full(path)                         # the disk fills: PostgreSQL's too
            writer.lanes[0].put_nowait(event(2))
            await asyncio.sleep(1.0)                # retries against a full disk
            disk_freed()                            # space freed, PostgreSQL back
            db_up = True
            writer.lanes[0].put_nowait(event(3))
            for _ in range(100):
                if writer.idle.is_set():
                    break
                await asyncio.sleep(0.05)
            print("REPLAYER_DIED", replayer.done() and repr(replayer.exception()))
            print("IDLE", writer.idle.is_set())
            print("WRITTEN", sorted(set(written)))
            lanes.cancel(); replayer.cancel()

        asyncio.run(main())
        """,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "REPLAYER_DIED False" in out, out[-3000:]
    assert "IDLE True" in out, out[-3000:]
    assert "WRITTEN ['call-1', 'call-2', 'call-3']" in out, out[-3000:]


def test_agi_writer_full_disk_during_outage_loses_no_write(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        from sqlalchemy import select
        from sqlalchemy.exc import OperationalError
        from agi_scripts.call_writer import CallWriter
        from call_router.call_log import CallLog
        from call_router.db import Database
        from call_router.models import Call, CallEvent

        class FlakyCallLog(CallLog):
            down = False
            def ensure_calls(self, arrivals):
                if self.down:
                    raise OperationalError("INSERT", {}, ConnectionRefusedError("away"))
                return super().ensure_calls(arrivals)

        async def main():
            db = Database(f"sqlite:///{Path('calls.db').resolve()}")
            db.upgrade()
            call_log = FlakyCallLog(db)
            spool = Path("spool/agi.jsonl")
            spool.parent.mkdir()
            writer = CallWriter(call_log, spool, retry_max=0.2)
            await writer.start()
            call_log.down = True
            disk_full(spool)
            writer.submit("ensure_call", "full.1", caller_number="+74951234567", caller_name=None)
            writer.submit("record_event", "full.1", kind="flow_step", key="flow:0", data={})
            writer.submit("record_menu_result", "full.1", choice="3", intent="heating",
                          queue="heating", language="ru")
            await writer.idle(timeout=1.0)          # retries: database away, disk full
            disk_freed()
            call_log.down = False
            writer.submit("record_event", "full.1", kind="flow_step", key="flow:1", data={})
            print("IDLE", await writer.idle(timeout=5))
            with db.session() as s:
                keys = list(s.scalars(select(CallEvent.key).join(Call)
                                      .where(Call.linkedid == "full.1").order_by(CallEvent.id)))
            print("TIMELINE", keys)

        asyncio.run(main())
        """,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "IDLE True" in out, out[-3000:]
    assert "TIMELINE ['flow:0', 'menu_result', 'flow:1']" in out, out[-3000:]
