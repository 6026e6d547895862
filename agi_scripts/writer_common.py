"""What both call-log writers share (`CallWriter` here in the process, `WriterProcess` with a
child): the `Write` record, the `Writer` protocol the server and flows use, waiting for the
writes, a kept write from a thread, the call ids learnt."""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from call_router.durable_spool import Record

# Call ids remembered for HOTLINE_CALL_ID (newest kept).
KNOWN_CALL_IDS = 20_000
TIME_FIELDS = ("at", "started_at")


class Write(NamedTuple):
    """One call-log write: a CallLog method name and its arguments (JSON-safe, but for its
    times: datetimes in memory, ISO text in the spool). A tuple: a call submits ~12."""

    op: str
    linkedid: str
    args: dict[str, Any]

    def to_record(self) -> Record:
        """JSON-safe: its times as ISO text."""
        args = {
            name: value.isoformat()
            if name in TIME_FIELDS and isinstance(value, datetime)
            else value
            for name, value in self.args.items()
        }
        return {"op": self.op, "linkedid": self.linkedid, "args": args}

    @classmethod
    def from_record(cls, raw: Record) -> Write:
        return cls(str(raw["op"]), str(raw["linkedid"]), dict(raw["args"]))

    def to_line(self) -> str:
        return json.dumps(self.to_record()) + "\n"

    @classmethod
    def from_line(cls, line: str) -> Write:
        return cls.from_record(json.loads(line))


class Writer(Protocol):
    """What the FastAGI server and its flows use of a call-log writer: `CallWriter` (in this
    process) or `WriterProcess` (agi_scripts/writer_process.py, the database work in a child)."""

    database_ok: bool

    def submit(self, op: str, linkedid: str, **args: Any) -> None: ...

    def keep_from_thread(
        self, op: str, linkedid: str, timeout: float = 5.0, **args: Any
    ) -> bool: ...

    @property
    def backlog(self) -> int: ...

    @property
    def behind(self) -> bool: ...

    def call_id(self, linkedid: str) -> int | None: ...

    async def idle(self, timeout: float | None = None) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self, timeout: float = 10.0) -> None: ...


def stamped(op: str, args: dict[str, Any], clock: Callable[[], datetime]) -> dict[str, Any]:
    """The write's time stamped now if it has none (a datetime in memory; ISO text in the
    spool, see `Write.to_record`)."""
    field = "started_at" if op == "ensure_call" else "at"
    if args.get(field) is None:
        args[field] = clock()
    return args


class WriterCommon:
    """What `CallWriter` and `WriterProcess` (agi_scripts/writer_process.py) share: waiting
    for the writes, a kept write from a thread, the call ids learnt."""

    log: Any
    _loop: asyncio.AbstractEventLoop | None
    _progress: asyncio.Condition
    _written: int
    _call_ids: OrderedDict[str, int]

    def _idle_target(self) -> int:
        """The count of written writes `idle` waits for (everything submitted so far)."""
        raise NotImplementedError

    async def keep(self, op: str, linkedid: str, args: dict[str, Any]) -> bool:
        raise NotImplementedError

    def keep_from_thread(self, op: str, linkedid: str, timeout: float = 5.0, **args: Any) -> bool:
        """From a worker thread: a write that must survive anything once acknowledged (a meter
        reading the caller is told is saved). It goes to the spool file, fsynced, before this
        returns True; it is written to the database with the rest."""
        if self._loop is None:
            return False
        done = asyncio.run_coroutine_threadsafe(self.keep(op, linkedid, args), self._loop)
        try:
            return done.result(timeout)
        except Exception:
            self.log.exception("call_writer_keep_failed", op=op, linkedid=linkedid)
            return False

    def call_id(self, linkedid: str) -> int | None:
        """The call row's id, once its `ensure_call` is written."""
        return self._call_ids.get(linkedid)

    async def idle(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is written; False on timeout."""
        target = self._idle_target()

        async def reached() -> None:
            async with self._progress:
                await self._progress.wait_for(lambda: self._written >= target)

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            return False
        return True

    def _remember_ids(self, ids: dict[str, int]) -> None:
        for linkedid, call_id in ids.items():
            self._call_ids[linkedid] = call_id
            self._call_ids.move_to_end(linkedid)
        while len(self._call_ids) > KNOWN_CALL_IDS:
            self._call_ids.popitem(last=False)
