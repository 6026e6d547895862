"""Events the router could not write yet, oldest first: a spool file, then memory.

While the database is unreachable the router parks every event here instead of dropping it.
Memory holds the newest events up to a bound; past it (and at every retry of the router, and at
shutdown), memory is appended to the spool (JSON lines, fsynced per append), so the spool always
holds older events than memory and replaying "spool, then memory" keeps the arrival order.
The spool is read from a cursor and truncated once it has been replayed to the end; after a
crash it is replayed from its start again, which adds nothing twice because every event the
router writes is idempotent (timeline keys).

Not thread-safe: used from the router's event loop only.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

StoredEvent = dict[str, str]


class EventBacklog:
    def __init__(self, spool_path: Path, memory_limit: int) -> None:
        self.spool_path = spool_path
        self._memory_limit = max(1, memory_limit)
        self._memory: deque[StoredEvent] = deque()
        # Byte offset of the first spooled event not yet replayed, and how many remain.
        self._cursor = 0
        self._spooled = self._count_spooled()
        # What peek() handed out: from the spool (count, offset after them) or from memory.
        self._peeked_spool: tuple[int, int] | None = None
        self._peeked_memory = 0

    def __len__(self) -> int:
        return self._spooled + len(self._memory)

    @property
    def spool_depth(self) -> int:
        """Events on disk not yet replayed."""
        return self._spooled

    def append(self, events: Iterable[StoredEvent]) -> None:
        """Park events behind everything already here; spill memory to disk past the bound."""
        self._memory.extend(dict(event) for event in events)
        if len(self._memory) > self._memory_limit:
            self.spill()

    def spill(self) -> None:
        """Move everything in memory to the spool (past the bound, and at orderly shutdown)."""
        if not self._memory:
            return
        lines = b"".join(
            json.dumps(event, separators=(",", ":")).encode() + b"\n" for event in self._memory
        )
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spool_path.open("ab") as spool:
            spool.write(lines)
            spool.flush()
            os.fsync(spool.fileno())
        self._spooled += len(self._memory)
        # Events peeked from memory are on disk now: they will be replayed from there (again,
        # if their write went through - harmless, writes are idempotent).
        self._peeked_memory = 0
        log.info("backlog_spilled", events=len(self._memory), spool_depth=self._spooled)
        self._memory.clear()

    def peek(self, limit: int) -> list[StoredEvent]:
        """The oldest events (up to `limit`), left in place until commit()."""
        self._peeked_spool, self._peeked_memory = None, 0
        if self._spooled:
            events, end = self._read_spool(limit)
            self._peeked_spool = (len(events), end)
            if events:
                return events
            # The count and the file disagree (cannot happen unless edited by hand): resync.
            self._spooled = 0
            self.commit()
        self._peeked_memory = min(limit, len(self._memory))
        return [self._memory[i] for i in range(self._peeked_memory)]

    def commit(self) -> None:
        """The events the last peek() returned are written: drop them."""
        if self._peeked_spool is not None:
            peeked, end = self._peeked_spool
            self._peeked_spool = None
            self._cursor = end
            self._spooled = max(0, self._spooled - peeked)
            if self._spooled == 0:
                # Everything on disk is written: start the spool afresh.
                with self.spool_path.open("wb") as spool:
                    os.fsync(spool.fileno())
                self._cursor = 0
        for _ in range(self._peeked_memory):
            self._memory.popleft()
        self._peeked_memory = 0

    def _read_spool(self, limit: int) -> tuple[list[StoredEvent], int]:
        events: list[StoredEvent] = []
        with self.spool_path.open("rb") as spool:
            spool.seek(self._cursor)
            end = self._cursor
            while len(events) < limit:
                line = spool.readline()
                if not line:
                    break
                end += len(line)
                event = _decode(line)
                if event is not None:
                    events.append(event)
        return events, end

    def _count_spooled(self) -> int:
        if not self.spool_path.exists():
            return 0
        with self.spool_path.open("r+b") as spool:
            data = spool.read()
            whole = data.rfind(b"\n") + 1
            if whole < len(data):
                # A crash cut the last append short; later appends must start on a fresh line.
                log.warning("backlog_spool_torn_tail", bytes=len(data) - whole)
                spool.truncate(whole)
                os.fsync(spool.fileno())
            count = sum(
                1 for line in data[:whole].splitlines(keepends=True) if _decode(line) is not None
            )
        if count:
            log.info("backlog_spool_found", events=count, path=str(self.spool_path))
        return count


def _decode(line: bytes) -> StoredEvent | None:
    """One spooled event; None for a line a crash cut short (it never reached the disk whole)."""
    if not line.endswith(b"\n"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    return {str(key): str(value) for key, value in event.items()}
