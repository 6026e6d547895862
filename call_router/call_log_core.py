# The call log's base: its value types, its transactions (`batch`), and the idempotent row and
# event writes every state change goes through (`_ensure`, `_insert_event`, `_change`).

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from call_router import tenants
from call_router.call_log_sql import (
    MAX_KEY,
    MAX_KIND,
    call_by_linkedid,
    cap,
    dialable,
    insert_ignore,
    printable,
)
from call_router.db import Database
from call_router.models import Call, CallEvent, utcnow
from call_router.numbers import ANONYMOUS, clean_caller_name, normalize_number

# A normalised caller number given with an arrival is cut to the column (it never is longer).
CALLER_KEY_LENGTH: int = Call.__table__.c.caller_number.type.length  # type: ignore[attr-defined]


@dataclass(frozen=True)
class CallView:
    """A detached snapshot of a call row, safe to hand to other tasks and to LiveState."""

    id: int
    linkedid: str
    caller_number: str
    caller_name: str | None
    queue: str | None
    operator: str | None
    started_at: datetime
    queue_joined_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    wait_seconds: int | None
    talk_seconds: int | None
    hangup_by: str | None

    @classmethod
    def of(cls, call: Call) -> CallView:
        return cls(
            id=call.id,
            linkedid=call.linkedid,
            caller_number=call.caller_number,
            caller_name=call.caller_name,
            queue=call.queue,
            operator=call.operator,
            started_at=call.started_at,
            queue_joined_at=call.queue_joined_at,
            answered_at=call.answered_at,
            ended_at=call.ended_at,
            outcome=call.outcome,
            wait_seconds=call.wait_seconds,
            talk_seconds=call.talk_seconds,
            hangup_by=call.hangup_by,
        )


@dataclass(frozen=True)
class CallArrival:
    """One `ensure_call`, for `ensure_calls`."""

    linkedid: str
    caller_number: str | None
    caller_name: str | None
    channel: str | None = None
    dialed_number: str | None = None
    started_at: datetime | None = None
    # `caller_number` already in its one spelling (numbers.normalize_number, this call log's
    # country): the FastAGI process normalises it for its own lookups, so the writer does
    # not parse it a second time (phonenumbers' parse is most of a call row's CPU).
    caller_key: str | None = None


@dataclass(frozen=True)
class MenuResult:
    """One `record_menu_result`, for `record_menu_results`."""

    linkedid: str
    choice: str | None
    intent: str | None
    queue: str
    language: str | None
    at: datetime | None = None


@dataclass(frozen=True)
class TimelineEntry:
    """One `record_event`, for `record_events`."""

    linkedid: str
    kind: str
    key: str
    at: datetime | None = None
    data: dict[str, Any] | None = None


class CallLogCore:
    """What every part of the call log shares: the database, the clock, the batch session."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime] = utcnow,
        country: str = "RU",
        *,
        callback_min_wait: int = 0,
        node: str | None = None,
    ) -> None:
        self._db = db
        # The cluster node this writer serves (settings.node): set on the calls it creates,
        # and the only calls it reconciles with its Asterisk. None: one box, every call.
        self._node = node
        self._clock = clock
        self._country = country
        self._callback_min_wait = callback_min_wait
        # The batch session of the thread inside `batch()`, if any.
        self._local = threading.local()

    # --- transactions -----------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every CallLog call this thread makes inside the block shares one transaction.

        Call `checkpoint()` between independent writes; an exception rolls the whole block back
        (the caller may then replay the writes one by one: they are idempotent).
        """
        if getattr(self._local, "session", None) is not None:
            raise RuntimeError("CallLog.batch() does not nest")
        with self._db.session() as session:
            self._local.session = session
            try:
                yield
            finally:
                self._local.session = None

    def checkpoint(self) -> None:
        """Inside `batch()`: flush, and forget loaded rows so the next write reads them afresh,
        exactly as if it ran in a transaction of its own."""
        session: Session | None = getattr(self._local, "session", None)
        if session is not None:
            session.flush()
            session.expire_all()

    def run(self, work: Callable[[Session], Any]) -> Any:
        """`work(session)` in this call log's transaction (the batch's, or a new one)."""
        with self._session() as session:
            return work(session)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        session: Session | None = getattr(self._local, "session", None)
        if session is not None:
            yield session
            return
        with self._db.session() as session:
            yield session

    def record_event(
        self,
        linkedid: str,
        kind: str,
        *,
        key: str,
        at: datetime | None = None,
        data: dict[str, Any] | None = None,
    ) -> bool:
        """Add a timeline entry; False if the call is unknown or (call, key) is already there."""
        with self._session() as session:
            call = call_by_linkedid(session, linkedid)
            if call is None:
                return False
            return self._insert_event(session, call.id, kind, key, at, data)

    def _change(
        self,
        linkedid: str,
        kind: str,
        key: str,
        at: datetime | None,
        data: dict[str, Any],
        apply: Callable[[Session, Call, datetime], None] | None,
    ) -> CallView | None:
        """Insert the event; only if it is new, apply its change. Returns the updated call."""
        at = at or self._clock()
        with self._session() as session:
            call = call_by_linkedid(session, linkedid)
            if call is None or not self._insert_event(session, call.id, kind, key, at, data):
                return None
            if apply is not None:
                apply(session, call, at)
            session.flush()
            return CallView.of(call)

    def _ensure(
        self,
        session: Session,
        linkedid: str,
        *,
        caller_number: str | None,
        caller_name: str | None,
        started_at: datetime,
        channel: str | None = None,
        dialed_number: str | None = None,
        caller_key: str | None = None,
    ) -> Call:
        values = self._call_values(
            CallArrival(
                linkedid, caller_number, caller_name, channel, dialed_number, started_at, caller_key
            ),
            started_at,
        )
        # The tenant whose number was dialled (call_router/tenant_wall.py); else the centre's.
        values["tenant_id"] = tenants.tenant_for_number(session, values["dialed_number"])
        session.execute(
            insert_ignore(session, Call.__table__, ["linkedid"]).values(**values)  # type: ignore[arg-type]
        )
        call = call_by_linkedid(session, linkedid)
        assert call is not None  # inserted above or by a concurrent writer
        merge_call(call, values)
        return call

    def _call_values(self, arrival: CallArrival, started_at: datetime) -> dict[str, Any]:
        """A new call row's columns, raw caller ID cleaned."""
        return {
            "linkedid": cap(arrival.linkedid, 64),
            "caller_number": cap(arrival.caller_key, CALLER_KEY_LENGTH)
            or normalize_number(arrival.caller_number, self._country),
            "caller_number_raw": cap(printable(arrival.caller_number), 128),
            "caller_name": clean_caller_name(arrival.caller_name),
            "channel": cap(printable(arrival.channel), 128),
            "dialed_number": cap(dialable(arrival.dialed_number), 32),
            "started_at": started_at,
            "node": self._node,
        }

    def _insert_event(
        self,
        session: Session,
        call_id: int,
        kind: str,
        key: str,
        at: datetime | None,
        data: dict[str, Any] | None,
    ) -> bool:
        table: Table = CallEvent.__table__  # type: ignore[assignment]
        statement = insert_ignore(session, table, ["call_id", "key"]).values(
            call_id=call_id,
            kind=kind[:MAX_KIND],
            key=key[:MAX_KEY],
            at=at or self._clock(),
            data=data or {},
        )
        # RETURNING, not rowcount: psycopg reports -1 for ON CONFLICT DO NOTHING here.
        return session.execute(statement.returning(CallEvent.__table__.c.id)).first() is not None


def merge_call(call: Call, values: dict[str, Any]) -> None:
    """Another writer created the row: merge in what it did not know."""
    if values["started_at"] < call.started_at:
        call.started_at = values["started_at"]
    if call.caller_number == ANONYMOUS and values["caller_number"] != ANONYMOUS:
        call.caller_number = values["caller_number"]
        call.caller_number_raw = values["caller_number_raw"]
    for field in ("caller_name", "channel", "dialed_number", "tenant_id", "node"):
        if getattr(call, field) is None and values[field] is not None:
            setattr(call, field, values[field])
