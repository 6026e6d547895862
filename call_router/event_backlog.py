"""Events the router could not write yet, oldest first: a spool file, then memory.

While the database is unreachable the router parks every event here instead of dropping it.
Memory holds the newest events up to a bound; past it (and at every retry of the router, and at
shutdown), memory is appended to the spool (call_router/durable_spool.py: JSON lines, fsynced
per append), so the spool always holds older events than memory and replaying "spool, then
memory" keeps the arrival order. The spool is read from a cursor and emptied once it has been
replayed to the end; after a crash it is replayed from its start again, which adds nothing
twice because every event the router writes is idempotent (timeline keys).

Not thread-safe: used from the router's event loop only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from pathlib import Path

import structlog

from call_router.durable_spool import Batch, DurableSpool

log = structlog.get_logger(__name__)

StoredEvent = dict[str, str]


class EventBacklog:
    def __init__(self, spool_path: Path, memory_limit: int) -> None:
        self.spool_path = spool_path
        self._memory_limit = max(1, memory_limit)
        self._memory: deque[StoredEvent] = deque()
        self._spool = DurableSpool(spool_path)
        # What peek() handed out: from the spool (a batch) or from memory (a count).
        self._peeked_spool: Batch | None = None
        self._peeked_memory = 0

    def __len__(self) -> int:
        return self._spool.pending + len(self._memory)

    @property
    def spool_depth(self) -> int:
        """Events on disk not yet replayed."""
        return self._spool.pending

    def append(self, events: Iterable[StoredEvent]) -> None:
        """Park events behind everything already here; spill memory to disk past the bound."""
        self._memory.extend(dict(event) for event in events)
        if len(self._memory) > self._memory_limit:
            self.spill()

    def spill(self) -> None:
        """Move everything in memory to the spool (past the bound, and at orderly shutdown)."""
        if not self._memory:
            return
        self._spool.append(self._memory, sync=True)
        # Events peeked from memory are on disk now: they will be replayed from there (again,
        # if their write went through - harmless, writes are idempotent).
        self._peeked_memory = 0
        log.info("backlog_spilled", events=len(self._memory), spool_depth=self._spool.pending)
        self._memory.clear()

    def peek(self, limit: int) -> list[StoredEvent]:
        """The oldest events (up to `limit`), left in place until commit()."""
        self._peeked_spool, self._peeked_memory = None, 0
        while self._spool.pending:
            batch = self._spool.read(limit)
            if batch.records:
                self._peeked_spool = batch
                return [_stored(record) for record in batch.records]
            # Only lines that are no event (or none at all): skip them.
            self._spool.consume(batch)
            self._spool_written()
        self._peeked_memory = min(limit, len(self._memory))
        return [self._memory[i] for i in range(self._peeked_memory)]

    def commit(self) -> None:
        """The events the last peek() returned are written: drop them."""
        if self._peeked_spool is not None:
            self._spool.consume(self._peeked_spool)
            self._peeked_spool = None
            self._spool_written()
        for _ in range(self._peeked_memory):
            self._memory.popleft()
        self._peeked_memory = 0

    def close(self) -> None:
        self._spool.close()

    def _spool_written(self) -> None:
        if not self._spool.pending:
            # Everything on disk is written: start the spool afresh.
            self._spool.clear()


def _stored(record: dict[str, object]) -> StoredEvent:
    return {str(key): str(value) for key, value in record.items()}
