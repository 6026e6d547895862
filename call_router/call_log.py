"""The call log: one row per resident's call plus its timeline, written by the FastAGI server
(menu results) and the AMI listener (queue, operators, hang-up).

Both writers may see the same call at the same moment, and Asterisk events are replayed after a
reconnect, so every write is idempotent: rows are created with INSERT .. ON CONFLICT DO NOTHING,
and each state change is tied to a timeline event whose (call, key) is unique — a change is
applied only by the transaction that inserted its event.

Methods are synchronous (SQLAlchemy sessions); async callers use asyncio.to_thread. Each call is
its own transaction, except inside `batch()`: there every call made by that thread shares one
transaction (the AMI listener writes a burst of events with one commit).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from call_router.call_lifecycle import CallLifecycle
from call_router.call_log_core import CallView
from call_router.call_log_sql import call_by_linkedid
from call_router.call_timeline import CallTimeline
from call_router.db import Database
from call_router.models import DIRECTION_INTERNAL, Call, CallEvent, as_utc
from call_router.reconcile import KnownEvent
from call_router.settings import Settings


class CallLog(CallTimeline, CallLifecycle):
    """The whole call log: rows and reads here, timeline writes in call_timeline.py, the AMI
    lifecycle and outcome settling in call_lifecycle.py, the shared base in call_log_core.py."""

    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> CallLog:
        """The call log as the router and the FastAGI processes write it."""
        return cls(
            db,
            country=settings.country_code,
            callback_min_wait=settings.callback_min_wait,
            node=settings.node,
        )

    # --- rows -------------------------------------------------------------------

    def ensure_call(
        self,
        linkedid: str,
        *,
        caller_number: str | None,
        caller_name: str | None,
        channel: str | None = None,
        dialed_number: str | None = None,
        started_at: datetime | None = None,
        caller_key: str | None = None,
    ) -> int:
        """The call's id, creating the row if needed. Raw caller ID is cleaned here
        (`caller_key`: see CallArrival)."""
        with self._session() as session:
            return self._ensure(
                session,
                linkedid,
                caller_number=caller_number,
                caller_name=caller_name,
                channel=channel,
                dialed_number=dialed_number,
                started_at=started_at or self._clock(),
                caller_key=caller_key,
            ).id

    def mark_internal(
        self,
        linkedid: str,
        *,
        caller_number: str | None,
        caller_name: str | None,
        channel: str | None,
        started_at: datetime,
    ) -> int:
        """An operator's own call into the menu (a test call from their desk phone): its row,
        created if the FastAGI server has not yet, labelled `internal` - not a caller."""
        with self._session() as session:
            call = self._ensure(
                session,
                linkedid,
                caller_number=caller_number,
                caller_name=caller_name,
                channel=channel,
                started_at=started_at,
            )
            call.direction = DIRECTION_INTERNAL
            return call.id

    def find_call_id(self, linkedid: str) -> int | None:
        with self._session() as session:
            return session.scalar(select(Call.id).where(Call.linkedid == linkedid))

    def get_call(self, linkedid: str) -> CallView | None:
        with self._session() as session:
            call = call_by_linkedid(session, linkedid)
            return CallView.of(call) if call is not None else None

    def open_calls(self) -> list[CallView]:
        """Calls without an end: the listener checks them against Asterisk after a reconnect."""
        query = select(Call).where(Call.ended_at.is_(None)).order_by(Call.id)
        if self._node is not None:
            # Another node's calls are its router's: this Asterisk never had their channels.
            query = query.where(Call.node == self._node)
        with self._session() as session:
            rows = session.scalars(query)
            return [CallView.of(call) for call in rows]

    def timeline(self, linkedid: str) -> list[KnownEvent]:
        """The call's timeline as (kind, queue, at): what reconciliation must not add twice."""
        with self._session() as session:
            rows = session.execute(
                select(CallEvent.kind, CallEvent.data, CallEvent.at)
                .join(Call)
                .where(Call.linkedid == linkedid)
            )
            return [
                KnownEvent(kind, str(data.get("queue") or "") or None, as_utc(at))
                for kind, data, at in rows
            ]
