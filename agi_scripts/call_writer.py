"""The FastAGI server's call-log writer: a caller's menu never waits for the database.

Flow steps, menu results and speech results are queued here (`submit`, no I/O) and written
by one task, in submission order (so each call's order is kept), many calls' writes in one
transaction per burst. Every write is idempotent (keyed as in CallLog), so a batch that fails
is simply written again.

While the database is unreachable (or the queue passes `memory_limit`), writes go to a spool
file in the state dir, appended in order and replayed in order when the database returns; a
spool left by a killed process is replayed at the next start. Orderly shutdown writes
everything (or leaves it in the spool). What a SIGKILL can lose: only the writes still in
memory, i.e. those of the last moments (normally well under a second) while the database was
up; the router rebuilds the call row, its queue, answer and end from AMI and queue_log/CDR.

A write that fails for another reason than the database being away (a bug, bad data) is
tried alone; if it fails alone too it is set aside in `<spool>.rejected` with the error, so
one bad write never blocks the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError, OperationalError

from agi_scripts.writer_common import TIME_FIELDS, Write, WriterCommon, stamped
from call_router.call_log import CallLog
from call_router.call_log_core import CallArrival, MenuResult, TimelineEntry
from call_router.durable_spool import DurableSpool
from call_router.models import utcnow

_GROUPED = frozenset({"ensure_call", "record_menu_result", "record_event"})


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _transient(exc: BaseException) -> bool:
    """The database is away or busy (retry later), as opposed to a write that is wrong."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class CallWriter(WriterCommon):
    """See the module docstring. Start it inside the event loop; `stop` flushes."""

    OPS: dict[str, Callable[..., Any]] = {
        "ensure_call": CallLog.ensure_call,
        "record_event": CallLog.record_event,
        "record_menu_result": CallLog.record_menu_result,
        "record_speech": CallLog.record_speech,
        "record_tenant": CallLog.record_tenant,
    }

    def __init__(
        self,
        call_log: CallLog,
        spool_path: Path,
        *,
        memory_limit: int = 20_000,
        max_backlog: int = 500_000,
        batch_size: int = 1000,
        retry_max: float = 5.0,
        linger: float = 0.02,
        clock: Callable[[], datetime] = utcnow,
        log: Any = None,
        ops: dict[str, Callable[..., Any]] | None = None,
        on_progress: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        # More kinds of write besides the call log's: op name -> fn(call_log, linkedid, **args).
        self.ops = {**self.OPS, **(ops or {})}
        self.call_log = call_log
        self.spool_path = spool_path
        self.memory_limit = memory_limit
        self.max_backlog = max_backlog
        self.batch_size = batch_size
        self.retry_max = retry_max
        self.linger = linger
        self.clock = clock
        self.log = log or structlog.get_logger("hotline.call_writer")
        # After every burst: the call ids it learnt (agi_scripts/writer_process.py reports them).
        self.on_progress = on_progress
        self._memory: deque[Write] = deque()
        # The newest writes in memory that are nowhere on disk (a kill would lose them).
        self._fresh = 0
        # Writes on disk (older than memory's once memory was spilled, else newer).
        self._spool = DurableSpool(spool_path)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._submitted = 0
        self._written = 0  # submitted writes now in the database (or set aside)
        self._progress = asyncio.Condition()
        self._call_ids: OrderedDict[str, int] = OrderedDict()
        self._learnt: dict[str, int] = {}  # call ids learnt by the last burst
        self.database_ok = True
        self.batches = 0
        self.rejected = 0

    # --- the caller's side: no I/O ------------------------------------------------------

    def submit(self, op: str, linkedid: str, **args: Any) -> None:
        """Queue one write; the time it happened is stamped now if the write has one."""
        self._queue([self._write(op, linkedid, args)])

    def submit_many(self, items: list[tuple[str, str, dict[str, Any]]]) -> None:
        """`submit` for many (op, linkedid, args) at once, in order: a frame from the FastAGI
        process (agi_scripts/writer_process.py). While the spool is in use, one append."""
        self._queue([self._write(op, linkedid, args) for op, linkedid, args in items])

    def _write(self, op: str, linkedid: str, args: dict[str, Any]) -> Write:
        if op not in self.ops:
            raise ValueError(f"unknown call-log write {op!r}")
        return Write(op, linkedid, stamped(op, args, self.clock))

    def _queue(self, writes: list[Write]) -> None:
        """Into memory while it has room and nothing older waits in the spool; the rest at
        the end of the spool (so the order of submission is the order of writing)."""
        self._submitted += len(writes)
        room = 0 if self._spool.pending else max(0, self.memory_limit - len(self._memory))
        if room:
            self._memory.extend(writes[:room])
            self._fresh += min(room, len(writes))
        if len(writes) > room:
            self._append_to_spool(writes[room:])
        self._wake.set()

    async def keep(self, op: str, linkedid: str, args: dict[str, Any]) -> bool:
        """On the loop: `keep_from_thread`'s write, in the spool file (fsynced) on return."""
        write = self._write(op, linkedid, args)
        # After whatever is queued in memory (the call's row among it): the spool is always
        # written after the memory queue.
        self._append_to_spool([write], sync=True)
        self._submitted += 1
        self._wake.set()
        return True

    @property
    def backlog(self) -> int:
        """Writes submitted and not yet in the database."""
        return len(self._memory) + self._spool.pending

    @property
    def submitted(self) -> int:
        """Writes submitted so far (with those replayed from a spool left at start)."""
        return self._submitted

    @property
    def written(self) -> int:
        """Of `submitted`, those in the database (or set aside), in submission order."""
        return self._written

    @property
    def unsafe(self) -> int:
        """The newest submitted writes that only memory holds: everything older is in the
        database or in the spool file (which outlives a killed process)."""
        return self._fresh

    @property
    def spooled(self) -> int:
        """Writes waiting in the spool file."""
        return self._spool.pending

    @property
    def behind(self) -> bool:
        """Too much unwritten to take new callers safely (the server answers them overloaded)."""
        return self.backlog >= self.max_backlog

    def _idle_target(self) -> int:
        return self._submitted

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return  # started already (the server starts it early, then again)
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        left = self._spool.pending  # what a killed process left (a torn last line cut off)
        if left:
            self.log.warning("call_writer_spool_replay", writes=left, spool=str(self.spool_path))
            self._submitted += left
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="call-writer")

    async def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued (up to `timeout`); whatever is left goes to the spool."""
        if self._task is None:
            return
        await self.idle(timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._memory:
            self._spill_memory()
        self._spool.close()
        if self.backlog:
            self.log.warning("call_writer_stopped_with_spool", writes=self.backlog)

    # --- the writer task ---------------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.0
        while True:
            if not self._memory and self._spool.pending:
                # On the loop, like submit(): the spool's bookkeeping has one owner.
                self._load_from_spool()
            if not self._memory:
                self._wake.clear()
                await self._wake.wait()
                # Let the burst gather: one transaction for many calls' writes costs far less
                # CPU than one each (a caller never waits for this).
                await asyncio.sleep(self.linger)
                continue
            batch = [self._memory[i] for i in range(min(self.batch_size, len(self._memory)))]
            try:
                done = await asyncio.to_thread(self._write_batch, batch)
            except Exception as exc:  # transient: the database is away or busy
                if self.database_ok:
                    self.log.warning("call_writer_database_away", error=str(exc)[:200])
                self.database_ok = False
                # Keep the queue on disk while the database is away: a kill loses nothing.
                if self._memory:
                    try:
                        self._spill_memory()
                    except OSError as spill_exc:  # a full disk: keep them in memory
                        self.log.warning("call_writer_spool_failed", error=str(spill_exc))
                if self.on_progress is not None:
                    self.on_progress({})
                delay = min(self.retry_max, max(0.2, delay * 2))
                await asyncio.sleep(delay)
                continue
            if not self.database_ok:
                self.log.info("call_writer_database_back", backlog=self.backlog)
            self.database_ok, delay = True, 0.0
            self.batches += 1
            for _ in range(done):
                self._memory.popleft()
            # Fresh writes are the newest, at the end: those left are still in memory.
            self._fresh = min(self._fresh, len(self._memory))
            if not self._memory:
                self._spool_written()
            await self._advance(done)
            if self.on_progress is not None:
                self.on_progress(self._learnt)
            self._learnt = {}

    async def _advance(self, count: int) -> None:
        async with self._progress:
            self._written += count
            self._progress.notify_all()

    def _write_batch(self, batch: list[Write]) -> int:
        """In a worker thread: all of `batch` in one transaction; else one by one.

        Returns how many writes from the front of `batch` are done. Raises when the database
        is away (nothing counted as done then).
        """
        try:
            with self.call_log.batch():
                # A statement per kind: new calls first (every other write needs its call's
                # row), the call columns of menu results, any other write one by one, then
                # all timeline entries in one INSERT, in the order they were submitted.
                arrivals = [self._arrival(w) for w in batch if w.op == "ensure_call"]
                ids = self.call_log.ensure_calls(arrivals)
                self.call_log.checkpoint()
                events: list[TimelineEntry] = []
                results: list[MenuResult] = []
                for write in batch:
                    if write.op == "record_event":
                        events.append(self._entry(write))
                    elif write.op == "record_menu_result":
                        results.append(self._menu_result(write))
                        events.append(self.call_log.menu_result_entry(results[-1]))
                # Rows written in this transaction or an earlier batch: not looked up again.
                known = self._known_ids(batch, ids)
                self.call_log.apply_menu_results(results, known)
                self.call_log.checkpoint()
                for write in batch:
                    if write.op not in _GROUPED:
                        self._apply(write)
                        self.call_log.checkpoint()
                self.call_log.record_events(events, known)
        except Exception as exc:
            if _transient(exc):
                raise
            return self._write_one_by_one(batch)
        self._remember_ids(ids)
        return len(batch)

    def _known_ids(self, batch: list[Write], ids: dict[str, int]) -> dict[str, int]:
        """The call ids of the batch's calls known without a query (this batch's arrivals,
        or an earlier batch's)."""
        known = dict(ids)
        remembered = self._call_ids
        for write in batch:
            linkedid = write.linkedid
            if linkedid not in known and linkedid in remembered:
                known[linkedid] = remembered[linkedid]
        return known

    @staticmethod
    def _arrival(write: Write) -> CallArrival:
        args = write.args
        return CallArrival(
            linkedid=write.linkedid,
            caller_number=args.get("caller_number"),
            caller_name=args.get("caller_name"),
            channel=args.get("channel"),
            dialed_number=args.get("dialed_number"),
            started_at=_time(args.get("started_at")),
            caller_key=args.get("caller_key"),
        )

    @staticmethod
    def _menu_result(write: Write) -> MenuResult:
        args = write.args
        return MenuResult(
            linkedid=write.linkedid,
            choice=args.get("choice"),
            intent=args.get("intent"),
            queue=str(args["queue"]),
            language=args.get("language"),
            at=_time(args.get("at")),
        )

    @staticmethod
    def _entry(write: Write) -> TimelineEntry:
        return TimelineEntry(
            linkedid=write.linkedid,
            kind=str(write.args["kind"]),
            key=str(write.args["key"]),
            at=_time(write.args.get("at")),
            data=write.args.get("data"),
        )

    def _write_one_by_one(self, batch: list[Write]) -> int:
        for n, write in enumerate(batch):
            try:
                with self.call_log.batch():
                    result = self._apply(write)
            except Exception as exc:
                if _transient(exc):
                    if n:
                        return n  # the ones before are in; retry the rest later
                    raise
                self._reject(write, exc)
                continue
            self._remember([write], [result])
        return len(batch)

    def _apply(self, write: Write) -> Any:
        args = dict(write.args)
        for name in TIME_FIELDS:
            if isinstance(args.get(name), str):
                args[name] = datetime.fromisoformat(args[name])
        return self.ops[write.op](self.call_log, write.linkedid, **args)

    def _remember(self, batch: list[Write], results: list[Any]) -> None:
        self._remember_ids(
            {
                w.linkedid: r
                for w, r in zip(batch, results, strict=True)
                if w.op == "ensure_call" and isinstance(r, int)
            }
        )

    def _remember_ids(self, ids: dict[str, int]) -> None:
        if self.on_progress is not None:
            self._learnt.update(ids)
        super()._remember_ids(ids)

    def _reject(self, write: Write, exc: Exception) -> None:
        self.rejected += 1
        self.log.error(
            "call_writer_rejected", op=write.op, linkedid=write.linkedid, error=repr(exc)[:300]
        )
        with self.spool_path.with_suffix(".rejected").open("a", encoding="utf-8") as out:
            out.write(
                json.dumps({"write": json.loads(write.to_line()), "error": repr(exc)[:300]}) + "\n"
            )

    # --- the spool (call_router/durable_spool.py) --------------------------------------------

    def _spill_memory(self) -> None:
        """Move the in-memory queue to the front of the spool (kept in order)."""
        writes = list(self._memory)
        if not self._spool.pending:
            # What was read from the spool is written or among `writes`: start it afresh.
            self._spool.clear()
        self._spool.prepend(w.to_record() for w in writes)
        self._memory.clear()  # only once they are on disk
        self._fresh = 0

    def _spool_written(self) -> None:
        """Everything read from the spool is in the database: empty the file. (Until then a
        killed process replays it at its next start; the writes are idempotent.)"""
        if not self._spool.pending:
            self._spool.clear()

    def _append_to_spool(self, writes: list[Write], *, sync: bool = False) -> None:
        if not self._spool.pending and not self._memory:
            self._spool_written()  # what it held is written: start it afresh
        if self._spool.empty:
            self.log.warning("call_writer_spooling", spool=str(self.spool_path))
        # Into the kernel at once: a killed process loses nothing (fsync on stop).
        self._spool.append((w.to_record() for w in writes), sync=sync)

    def _load_from_spool(self) -> None:
        """Move the oldest spooled writes back into memory for the writer."""
        batch = self._spool.read(self.batch_size * 4)
        # Consumed, but the file is emptied only once they are written (`_spool_written`).
        self._spool.consume(batch)
        for record in batch.records:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self._memory.append(Write.from_record(record))
