"""A durable spool: records waiting for a database, in a JSON-lines file, oldest first.

Used by the router's event backlog (call_router/event_backlog.py) and the FastAGI server's
call-log writer (agi_scripts/call_writer.py) for what they cannot write while the database is
away. One record is one JSON object on one line:

- `append` adds records at the end (flushed to the kernel at once: a killed process loses
  nothing; `sync=True`, or `sync()` later, also fsyncs them: a power cut loses nothing);
- `read` returns the oldest unconsumed records from a cursor without consuming them;
  `consume` moves the cursor past what a `read` returned, once its caller has written it;
- `clear` empties the file once everything in it is written; until then a process that dies
  replays the whole file at its next start (so the writes replayed must be idempotent);
- `prepend` puts records in front of the unconsumed ones (atomically: a new file replaces
  the old), for a writer whose in-memory queue is older than what it already spooled.

A crash in the middle of an append leaves a torn last line: opening the spool cuts it off
(nothing was acknowledged for it), so the next append starts on a line of its own. A whole
line that is not a JSON object is skipped (and counted as consumed).

Not thread-safe: each user calls it from its event loop only.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import structlog

log = structlog.get_logger(__name__)

Record = dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """What one `read` returned: the records, and where the file is once they are consumed."""

    records: list[Record]
    lines: int  # whole lines read (records plus skipped bad lines)
    end: int  # byte offset after them


def encode(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> Record | None:
    """One record; None for a line cut short by a crash or not a JSON object."""
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


class DurableSpool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._cursor = 0  # byte offset of the first unconsumed line
        self._file: IO[bytes] | None = None
        self._pending = self._recover()

    @property
    def pending(self) -> int:
        """Whole lines in the file past the cursor (records not consumed yet)."""
        return self._pending

    @property
    def empty(self) -> bool:
        """Nothing in the file at all (neither pending nor consumed-but-kept lines)."""
        return self._pending == 0 and self._cursor == 0

    def append(self, records: Iterable[Mapping[str, Any]], *, sync: bool = False) -> int:
        """Add records at the end; returns how many."""
        data = b"".join(encode(record) for record in records)
        return self._append_raw(data, data.count(b"\n"), sync=sync)

    def sync(self) -> None:
        """fsync what was appended (a no-op when nothing is open)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def read(self, limit: int) -> Batch:
        """The oldest unconsumed records (up to `limit`), left in place until `consume`."""
        records: list[Record] = []
        lines, end = 0, self._cursor
        if not self._pending:
            return Batch(records, lines, end)
        if self._file is not None:
            self._file.flush()
        with self.path.open("rb") as spool:
            spool.seek(self._cursor)
            while len(records) < limit and lines < self._pending:
                line = spool.readline()
                if not line.endswith(b"\n"):
                    break  # cannot happen after _recover, unless edited by hand
                lines += 1
                end += len(line)
                record = decode(line)
                if record is not None:
                    records.append(record)
        return Batch(records, lines, end)

    def consume(self, batch: Batch) -> None:
        """The records of `batch` (the last `read`) are taken care of: move past them."""
        self._cursor = batch.end
        self._pending = max(0, self._pending - batch.lines)
        if batch.lines == 0 and self._pending:
            # The count and the file disagree (edited by hand): trust the file.
            log.warning("spool_count_resync", path=str(self.path), pending=self._pending)
            self._pending = 0

    def clear(self) -> None:
        """Everything in the file is written: start it afresh (fsynced)."""
        if self.empty:
            return
        self.close()
        with self.path.open("wb") as spool:
            os.fsync(spool.fileno())
        self._cursor, self._pending = 0, 0

    def prepend(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Put records in front of the unconsumed ones (consumed lines are dropped)."""
        data = b"".join(encode(record) for record in records)
        count = data.count(b"\n")
        if not count:
            return 0
        if not self._pending:
            return self._append_raw(data, count)  # nothing unconsumed: the end is the front
        self.close()
        with self.path.open("rb") as old:
            old.seek(self._cursor)
            rest = old.read()
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        try:
            with tmp.open("wb") as out:
                out.write(data)
                out.write(rest)
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            # A full disk: the spool is as it was, and the half-written copy frees its space.
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, self.path)
        self._cursor = 0
        self._pending += count
        return count

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def _append_raw(self, data: bytes, count: int, *, sync: bool = True) -> int:
        if not count:
            return 0
        spool = self._open()
        spool.flush()
        start = os.lseek(spool.fileno(), 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(spool.fileno(), view) :]
            if sync:
                os.fsync(spool.fileno())
        except OSError:
            # A full disk: nothing of this append stays (no torn line, nothing uncounted).
            with contextlib.suppress(OSError):
                os.ftruncate(spool.fileno(), start)
            raise
        self._pending += count
        return count

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        return self._file

    def _recover(self) -> int:
        """Lines a previous process left (all to replay); a torn last line is cut off."""
        try:
            spool = self.path.open("r+b")
        except FileNotFoundError:
            return 0
        with spool:
            data = spool.read()
            whole = data.rfind(b"\n") + 1
            if whole < len(data):
                log.warning("spool_torn_tail", path=str(self.path), bytes=len(data) - whole)
                spool.truncate(whole)
                spool.flush()
                os.fsync(spool.fileno())
        count = data.count(b"\n", 0, whole)
        if count:
            log.info("spool_found", path=str(self.path), records=count)
        return count
