"""The call-log writer in a process of its own: the menu's event loop never shares the GIL with
the database work (BENCHMARKS.md, "FastAGI server": the writer's bursts, in a thread, were what
stalled the loop for 5-20 ms at a time).

The FastAGI process keeps `CallWriter`'s interface (`submit`, `keep_from_thread`, `idle`,
`call_id`, `backlog`, `behind`, `database_ok`) in `WriterProcess`; its writes go, pickled, one
frame per 20 ms, over a private socket pair to a child process
(`python -m agi_scripts.writer_process`) that runs the unchanged `CallWriter` (batches, per-call
order, idempotent keys, spool, retries) and reports back after every burst: how many of the
writes it received are written, how many are safe (written, or in the spool file, which outlives
a killed process), the call ids it learnt, whether the database is up.

Crash semantics:
- the writer process dies (killed, a bug): the FastAGI process starts another and sends it again
  every write not yet reported safe, in order; the new process first replays the spool the dead
  one left. A write may so be written twice: every write is idempotent (CallLog's keys), and the
  resent ones are an in-order suffix, so the result is as if each was written once. Nothing is
  lost.
- the FastAGI process dies: its writer process reads the end of the stream, writes (or spools)
  everything it received and exits. Lost: only the writes of the last `linger` (20 ms) not yet
  handed to the socket; the router rebuilds the call row, its queue,
  answer and end from AMI (ARCHITECTURE.md).
- orderly stop: everything is handed over, the writer process writes it (or spools it) and exits.

The child runs SCHED_BATCH (the kernel lets the menu's loop preempt it when a caller's line
arrives, same CPU share otherwise) and ignores SIGINT/SIGTERM: it stops when its FastAGI process
says so or goes away, never before it has written what it holds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pickle
import signal
import socket
import struct
import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Collection
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from agi_scripts.call_writer import CallWriter
from agi_scripts.writer_common import WriterCommon, stamped
from call_router import live_state
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.models import utcnow
from call_router.settings import Settings

_HEADER = struct.Struct("!I")
_ROOT = Path(__file__).resolve().parent.parent
# Respawn pauses while the writer process keeps dying at once.
_RESTART_MIN, _RESTART_MAX = 0.2, 5.0
STOP_TIMEOUT = 15.0

# Frames (pickled tuples; a private socket pair between two processes of the same program):
#   to the writer:   ("c", {settings} | None)              first: this process's settings
#                    ("w", [(op, linkedid, args), ...])   writes, in order
#                    ("k", token, (op, linkedid, args))   a write to keep (fsynced) at once
#                    ("s",)                                stop: write everything, then exit
#   from the writer: ("p", written, safe, database_ok, backlog, {linkedid: call_id})
#                    ("k", token, ok)                      the keep is on disk (or not)
Item = tuple[str, str, dict[str, Any]]


def frame(message: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next frame, or None at the end of the stream."""
    try:
        head = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(head)
        message: tuple[Any, ...] = pickle.loads(await reader.readexactly(size))
        return message
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class WriterProcess(WriterCommon):
    """`CallWriter`'s interface in the FastAGI process; the writing in a child process."""

    def __init__(
        self,
        spool_path: Path,
        *,
        ops: Collection[str] = (),
        settings: Settings | None = None,
        max_backlog: int = 1_000_000,
        linger: float = 0.02,
        clock: Callable[[], datetime] = utcnow,
        log: Any = None,
        argv: list[str] | None = None,
    ) -> None:
        self.spool_path = spool_path
        # The writes the writer process knows (CallWriter.OPS and `ops`): others are refused here.
        self.ops = frozenset(CallWriter.OPS) | frozenset(ops)
        self.max_backlog = max_backlog
        # Writes gather this long before they go as one frame: the writer process wakes ~50
        # times a second, not once per loop iteration (each wake-up is a context switch on the
        # callers' core: it cost more CPU than the writes themselves).
        self.linger = linger
        # Handed to the writer process as its first frame (else it reads the environment's).
        self.settings = settings
        self.clock = clock
        self.log = log or structlog.get_logger("hotline.call_writer")
        # The child's command line (tests may wrap it); the spool and socket are added.
        self.argv = argv or [sys.executable, "-m", "agi_scripts.writer_process"]
        self.database_ok = True
        self.restarts = 0
        # Writes not yet reported safe by the writer process, oldest first, numbered from 1.
        self._unsafe: deque[tuple[int, bool, Item]] = deque()
        self._seq = 0  # writes submitted
        self._written = 0  # of them, written (in order)
        self._child_backlog = 0  # the writer process's own (its spool replay included)
        self._base = 0  # seq before the first write sent to the current writer process
        self._pending: list[Item] = []  # submitted this loop iteration, not sent yet
        self._flush_scheduled = False
        self._call_ids: OrderedDict[str, int] = OrderedDict()
        self._keeps: dict[int, asyncio.Future[bool]] = {}
        self._tokens = 0
        self._progress = asyncio.Condition()
        self._proc: asyncio.subprocess.Process | None = None
        self._stream: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._connected = asyncio.Event()
        self._ready = asyncio.Event()  # the writer process reported once

    # --- the caller's side: no I/O -------------------------------------------------------

    def submit(self, op: str, linkedid: str, **args: Any) -> None:
        """Queue one write (sent within `linger` s, with the others of that time)."""
        if op not in self.ops:
            raise ValueError(f"unknown call-log write {op!r}")
        item = (op, linkedid, stamped(op, args, self.clock))
        self._seq += 1
        self._unsafe.append((self._seq, False, item))
        self._pending.append(item)
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_later(self.linger, self._flush)

    async def keep(self, op: str, linkedid: str, args: dict[str, Any]) -> bool:
        """On the loop (`keep_from_thread`): the write in the writer process's spool file,
        fsynced, when this returns True."""
        if op not in self.ops:
            raise ValueError(f"unknown call-log write {op!r}")
        self._flush()  # what was submitted before it goes before it
        item = (op, linkedid, stamped(op, args, self.clock))
        self._seq += 1
        self._unsafe.append((self._seq, True, item))
        if self._stream is None or not self._connected.is_set():
            return False  # queued: the next writer process gets it, but it is not on disk yet
        self._tokens += 1
        token = self._tokens
        future = asyncio.get_running_loop().create_future()
        self._keeps[token] = future
        try:
            self._stream.write(frame(("k", token, item)))
            return await future
        finally:
            self._keeps.pop(token, None)

    @property
    def backlog(self) -> int:
        """Writes submitted and not yet in the database."""
        return self._seq - self._written

    @property
    def behind(self) -> bool:
        return self.backlog >= self.max_backlog

    @property
    def spooled(self) -> int:
        return self._child_backlog

    def _idle_target(self) -> int:
        self._flush()
        return self._seq

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self, timeout: float = 60.0) -> None:
        """Start the writer process and wait (up to `timeout`) until it is ready to write:
        callers taken before would pile up in its memory while it imports."""
        if self._supervisor is not None:
            return  # started already (the server starts it early, then again)
        self._loop = asyncio.get_running_loop()
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="call-writer-process")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            self.log.warning("call_writer_process_slow_to_start", timeout=timeout)

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Hand everything over, let the writer process write it (or spool it) and exit."""
        if self._supervisor is None:
            return
        self._stopping = True
        self._flush()
        proc = self._proc
        if self._stream is not None and proc is not None and proc.returncode is None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._stream.write(frame(("s",)))
                await self._stream.drain()
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                self.log.error("call_writer_process_stop_timeout", pid=proc.pid)
                proc.kill()
                await proc.wait()
        self._supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._supervisor
        self._supervisor = None
        await self._disconnect()
        if self.backlog:
            self.log.warning("call_writer_stopped_with_spool", writes=self.backlog)

    async def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        # The child imports this same code, wherever the parent was started from.
        path = [str(_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                "--spool",
                str(self.spool_path),
                "--fd",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
            )
        finally:
            theirs.close()
        reader, self._stream = await asyncio.open_unix_connection(sock=ours)
        given = self.settings.model_dump(mode="json") if self.settings is not None else None
        self._stream.write(frame(("c", given)))
        # Everything not reported safe goes (again) to the new writer process, in order.
        self._base = self._unsafe[0][0] - 1 if self._unsafe else self._seq
        self._pending.clear()
        self._resend()
        self._connected.set()
        self._reader_task = asyncio.create_task(self._read(reader), name="call-writer-replies")

    async def _disconnect(self) -> None:
        self._connected.clear()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
            self._reader_task = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    async def _supervise(self) -> None:
        """A writer process that dies is replaced; unsafe writes are sent to the new one."""
        pause = _RESTART_MIN
        while True:
            assert self._proc is not None
            code = await self._proc.wait()
            if self._stopping:
                return
            self.log.error("call_writer_process_died", code=code, unsafe=len(self._unsafe))
            await self._disconnect()
            for future in self._keeps.values():
                if not future.done():
                    future.set_result(False)
            await asyncio.sleep(pause)
            pause = min(_RESTART_MAX, pause * 2)
            self.restarts += 1
            await self._spawn()

    # --- to and from the writer process ---------------------------------------------------

    def _flush(self) -> None:
        """The writes gathered since the last frame, as one frame."""
        self._flush_scheduled = False
        if not self._pending or self._stream is None or not self._connected.is_set():
            return  # sent by _spawn's resend once connected
        items, self._pending = self._pending, []
        self._stream.write(frame(("w", items)))

    def _resend(self) -> None:
        assert self._stream is not None
        batch: list[Item] = []
        for _, keep, item in self._unsafe:
            if keep:  # keep frames go one by one, as they were first sent
                if batch:
                    self._stream.write(frame(("w", batch)))
                    batch = []
                self._stream.write(frame(("k", 0, item)))
            else:
                batch.append(item)
        if batch:
            self._stream.write(frame(("w", batch)))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while (message := await read_frame(reader)) is not None:
            if message[0] == "p":
                _, written, safe, database_ok, child_backlog, ids = message
                await self._on_progress(written, safe, database_ok, child_backlog, ids)
            elif message[0] == "k":
                future = self._keeps.get(message[1])
                if future is not None and not future.done():
                    future.set_result(bool(message[2]))

    async def _on_progress(
        self, written: int, safe: int, database_ok: bool, child_backlog: int, ids: dict[str, int]
    ) -> None:
        self._ready.set()
        if database_ok != self.database_ok:
            self.database_ok = database_ok
        self._child_backlog = child_backlog
        self._remember_ids(ids)
        safe_seq = self._base + safe
        while self._unsafe and self._unsafe[0][0] <= safe_seq:
            self._unsafe.popleft()
        async with self._progress:
            self._written = max(self._written, self._base + written)
            self._progress.notify_all()


def writer_ops() -> dict[str, Callable[..., Any]]:
    """The FastAGI writer's writes besides the call log's (in either process)."""
    from agi_scripts.flows.actions import DEFERRED_STORE, store_deferred_reading

    return {DEFERRED_STORE: store_deferred_reading}


def open_call_log(settings: Settings) -> tuple[Database, CallLog]:
    """The call log as the FastAGI processes write it (callback changes published live)."""
    db = Database(settings.db_url)
    # Callback requests made in a flow reach the operators' callback pages live.
    live_state.publish_callback_changes(db, settings.redis_url, settings.redis_prefix)
    call_log = CallLog.from_settings(db, settings)
    return db, call_log


# --- the writer process -------------------------------------------------------------------------


async def _serve(
    reader: asyncio.StreamReader, stream: asyncio.StreamWriter, writer: CallWriter
) -> None:
    replayed = writer.submitted  # a spool left behind: written before what we receive

    def report(ids: dict[str, int]) -> None:
        if stream.is_closing():
            return  # the FastAGI process is gone: nobody to tell
        written = max(0, writer.written - replayed)
        safe = max(0, writer.submitted - replayed - writer.unsafe)
        with contextlib.suppress(ConnectionError, RuntimeError):
            stream.write(frame(("p", written, safe, writer.database_ok, writer.backlog, ids)))

    writer.on_progress = report
    report({})  # ready
    while (message := await read_frame(reader)) is not None:
        kind = message[0]
        if kind == "w":
            writer.submit_many(message[1])
        elif kind == "k":
            _, token, (op, linkedid, args) = message
            ok = False
            try:
                ok = await writer.keep(op, linkedid, args)
            except Exception:
                writer.log.exception("call_writer_keep_failed", op=op, linkedid=linkedid)
            report({})
            if token:
                stream.write(frame(("k", token, ok)))
        elif kind == "s":
            break
    await writer.stop()
    with contextlib.suppress(ConnectionError, RuntimeError):
        report({})
        await stream.drain()
    stream.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The FastAGI call-log writer process.")
    parser.add_argument("--spool", type=Path, required=True)
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(argv)
    # Stopped by its FastAGI process (or the end of the stream), never by a signal first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    from agi_scripts.event_loop import run, tune_garbage_collector
    from call_router.log_setup import configure_logging
    from call_router.settings import get_settings

    configure_logging()

    async def serve() -> None:
        reader, stream = await asyncio.open_unix_connection(sock=socket.socket(fileno=args.fd))
        first = await read_frame(reader)
        if first is None or first[0] != "c":
            return
        settings = get_settings() if first[1] is None else Settings.model_validate(first[1])
        configure_logging(settings)
        db, call_log = open_call_log(settings)
        writer = CallWriter(
            call_log,
            args.spool,
            memory_limit=settings.agi_writer_memory_limit,
            max_backlog=settings.agi_writer_max_backlog,
            ops=writer_ops(),
        )
        await writer.start()
        tune_garbage_collector()
        try:
            await _serve(reader, stream, writer)
        finally:
            db.dispose()

    run(serve(), use_uvloop=get_settings().agi_uvloop)


if __name__ == "__main__":
    main()
