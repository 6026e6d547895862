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

import hashlib
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Insert, Table, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from call_router import callbacks, outcomes, tenants
from call_router.db import Database
from call_router.models import Call, CallEvent, UTCDateTime, utcnow
from call_router.numbers import ANONYMOUS, clean_caller_name, normalize_number
from call_router.reconcile import KnownEvent
from call_router.settings import Settings

# Timeline kinds other writers (AGI server, dialplan hooks) may record and outcomes rely on.
# A voicemail message was left (VMSTATUS=SUCCESS); "offered" is only the greeting played.
EVENT_VOICEMAIL = "voicemail"
EVENT_VOICEMAIL_OFFERED = "voicemail_offered"
EVENT_AFTER_HOURS = "after_hours"
# data {"status": QUEUESTATUS}: why Queue() returned without an operator.
EVENT_QUEUE_STATUS = "queue_status"
EVENT_QUEUE_JOIN = "queue_join"
EVENT_QUEUE_LEAVE = "queue_leave"
EVENT_ABANDON = "abandon"
EVENT_RING = "ring"
EVENT_RING_NO_ANSWER = "ring_no_answer"
EVENT_CONNECT = "agent_connect"
EVENT_COMPLETE = "agent_complete"
EVENT_HANGUP = "hangup"
EVENT_RECONCILED = "reconciled"
# The router closed the call because Asterisk went away (restart, crash) while it was open.
EVENT_DROPPED = "dropped"
# Supervisors' call control (call_router/call_control.py): who ended or moved the call.
EVENT_ENDED_BY_SUPERVISOR = "ended_by_supervisor"
EVENT_MOVED = "moved"
EVENT_MENU_RESULT = "menu_result"
# What the speech menu heard, with the audio kept (the flow's own "speech" step has no file).
EVENT_UTTERANCE = "utterance"
EVENT_CALLBACK = "callback"
EVENT_CALLBACK_SKIPPED = "callback_skipped"
# Virtual hold: the caller pressed 1 in a queue (call_router/virtual_hold.py).
EVENT_CALLBACK_REQUESTED = "callback_requested"
# The FastAGI server failed (died, refused, broke) and the dialplan sent the caller to the
# coordinator; data {"status": AGISTATUS, "queue"}.
EVENT_AGI_FAILED = "agi_failed"

# Outcomes that put the caller on the callback list.
CALLBACK_OUTCOMES = outcomes.MISSED_OUTCOMES | {outcomes.VOICEMAIL}

_MAX_KEY = 160
# A transcript longer than this is not a housing problem any more; keep the row small.
_MAX_TRANSCRIPT = 2000
_MAX_KIND = 32

log = structlog.get_logger(__name__)


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


class CallLog:
    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> CallLog:
        """The call log as the router and the FastAGI processes write it."""
        return cls(
            db,
            country=settings.country_code,
            callback_min_wait=settings.callback_min_wait,
            node=settings.node,
        )

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
    ) -> int:
        """The call's id, creating the row if needed. Raw caller ID is cleaned here."""
        with self._session() as session:
            return self._ensure(
                session,
                linkedid,
                caller_number=caller_number,
                caller_name=caller_name,
                channel=channel,
                dialed_number=dialed_number,
                started_at=started_at or self._clock(),
            ).id

    def find_call_id(self, linkedid: str) -> int | None:
        with self._session() as session:
            return session.scalar(select(Call.id).where(Call.linkedid == linkedid))

    def get_call(self, linkedid: str) -> CallView | None:
        with self._session() as session:
            call = _call_by_linkedid(session, linkedid)
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
                KnownEvent(kind, str(data.get("queue") or "") or None, _utc(at))
                for kind, data, at in rows
            ]

    # --- timeline ---------------------------------------------------------------

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
            call = _call_by_linkedid(session, linkedid)
            if call is None:
                return False
            return self._insert_event(session, call.id, kind, key, at, data)

    def ensure_calls(self, arrivals: list[CallArrival]) -> dict[str, int]:
        """`ensure_call` for many calls at once (the FastAGI writer's bursts): their ids.

        Core statements of a fixed shape (compiled once, cached): one SELECT of the rows
        already there, one many-row INSERT .. ON CONFLICT DO NOTHING of the new ones.
        """
        if not arrivals:
            return {}
        with self._session() as session:
            fresh: dict[str, dict[str, Any]] = {}
            tenant_of = tenants.tenants_for_numbers(
                session, {_cap(_dialable(a.dialed_number), 32) for a in arrivals}
            )
            for arrival in arrivals:
                values = self._call_values(arrival, arrival.started_at or self._clock())
                values["tenant_id"] = tenant_of.get(values["dialed_number"])
                earlier = fresh.get(values["linkedid"])
                if earlier is None:
                    fresh[values["linkedid"]] = values
                else:
                    earlier["started_at"] = min(earlier["started_at"], values["started_at"])
            linkedids = list(fresh)
            known = _call_ids(session, linkedids)
            if known:
                # Created before (the router, an earlier pass): merge as ensure_call would.
                for row in session.scalars(select(Call).where(Call.linkedid.in_(list(known)))):
                    _merge_call(row, fresh[row.linkedid])
            new = [values for linkedid, values in fresh.items() if linkedid not in known]
            if new:
                table: Table = Call.__table__  # type: ignore[assignment]
                # One multi-row INSERT (insertmanyvalues) that names the ids it created.
                inserted = {
                    linkedid: call_id
                    for linkedid, call_id in session.execute(
                        _insert_ignore(session, table, ["linkedid"]).returning(
                            table.c.linkedid, table.c.id
                        ),
                        new,
                    )
                }
                known.update(inserted)
                # Created meanwhile by the router: merge as ensure_call would.
                for values in new:
                    if values["linkedid"] not in inserted:
                        meanwhile = _call_by_linkedid(session, values["linkedid"])
                        if meanwhile is not None:
                            _merge_call(meanwhile, values)
                            session.flush()
                            known[meanwhile.linkedid] = meanwhile.id
            session.flush()
            return known

    def apply_menu_results(
        self, results: list[MenuResult], call_ids: Mapping[str, int] | None = None
    ) -> None:
        """The call columns of many `record_menu_result`s, in order (the latest pass wins).

        The timeline entries (`menu_result_entry`) go in with `record_events`, in the order
        the caller's steps happened. One cached UPDATE, executed for every result in turn.
        `call_ids`: calls known to have a row (linkedid -> id); only the others are looked up.
        """
        if not results:
            return
        with self._session() as session:
            given = call_ids or {}
            unknown = list({r.linkedid: None for r in results if r.linkedid not in given})
            known = set(_call_ids(session, unknown)) if unknown else set()
            known.update(r.linkedid for r in results if r.linkedid in given)
            for result in results:
                if result.linkedid not in known:
                    # No arrival written for it (should not happen): create the row first.
                    self._ensure(
                        session,
                        result.linkedid,
                        caller_number=None,
                        caller_name=None,
                        started_at=result.at or self._clock(),
                    )
                    known.add(result.linkedid)
            session.flush()
            session.execute(
                _MENU_RESULT,
                [
                    {
                        "m_lid": _cap(result.linkedid, 64),
                        "m_choice": _cap(result.choice, 32),
                        "m_intent": _cap(result.intent, 32),
                        "m_language": _cap(result.language, 8),
                        "m_at": result.at or self._clock(),
                        "m_queue": _cap(result.queue, 32),
                    }
                    for result in results
                ],
            )
            # ORM rows loaded earlier in this transaction must not hide these columns.
            session.expire_all()

    @staticmethod
    def menu_result_entry(result: MenuResult) -> TimelineEntry:
        data = {
            "choice": result.choice,
            "intent": result.intent,
            "queue": result.queue,
            "language": result.language,
        }
        return TimelineEntry(result.linkedid, EVENT_MENU_RESULT, EVENT_MENU_RESULT, result.at, data)

    def record_events(
        self, events: list[TimelineEntry], call_ids: Mapping[str, int] | None = None
    ) -> int:
        """Many timeline entries in one statement (the FastAGI writer's bursts).

        Same rules as `record_event`: an unknown call's entries and a (call, key) already there
        are skipped. Returns how many entries were known calls' (inserted or already there).
        `call_ids`: calls known to have a row (linkedid -> id); only the others are looked up.
        """
        if not events:
            return 0
        with self._session() as session:
            ids = dict(call_ids or {})
            unknown = list({e.linkedid: None for e in events if e.linkedid not in ids})
            if unknown:
                ids.update(_call_ids(session, unknown))
            # Tuples in the table's column order (call_id, kind, key, at, data): a burst has
            # ~10 of them per call, so no dict per row.
            rows = [
                (
                    ids[event.linkedid],
                    event.kind[:_MAX_KIND],
                    event.key[:_MAX_KEY],
                    event.at or self._clock(),
                    event.data or {},
                )
                for event in events
                if event.linkedid in ids
            ]
            if rows:
                _insert_events(session, rows)
            return len(rows)

    def record_menu_result(
        self,
        linkedid: str,
        *,
        choice: str | None,
        intent: str | None,
        queue: str,
        language: str | None,
        at: datetime | None = None,
    ) -> None:
        at = at or self._clock()
        with self._session() as session:
            call = _call_by_linkedid(session, linkedid) or self._ensure(
                session, linkedid, caller_number=None, caller_name=None, started_at=at
            )
            entry = self.menu_result_entry(MenuResult(linkedid, choice, intent, queue, language))
            self._insert_event(session, call.id, entry.kind, entry.key, at, entry.data)
            _apply_menu_result(call, choice, intent, queue, language, at)

    def record_tenant(
        self,
        linkedid: str,
        *,
        tenant_id: int | None,
        source: str,
        building_id: int | None = None,
        at: datetime | None = None,
    ) -> None:
        """The menu's decision of the call's company (call_router/tenant_routing.py): it
        overrides the dialled number's (a centre number's caller placed with a tenant). Once
        per source (idempotent: the timeline key)."""
        at = at or self._clock()
        with self._session() as session:
            call = _call_by_linkedid(session, linkedid) or self._ensure(
                session, linkedid, caller_number=None, caller_name=None, started_at=at
            )
            data = {"tenant_id": tenant_id, "source": source, "building_id": building_id}
            if not self._insert_event(session, call.id, "tenant", f"tenant:{source}", at, data):
                return
            call.tenant_id = tenant_id
            call.tenant_source = _cap(source, 16)
            if building_id is not None:
                call.building_id = building_id

    def record_speech(
        self,
        linkedid: str,
        *,
        transcript: str | None,
        intent: str | None,
        confidence: float | None,
        utterance_path: str | None,
        at: datetime | None = None,
    ) -> bool:
        """Store what the caller said on the call; False if the call is unknown or already stored.

        The transcript is the caller's words: kept as text (non-printables dropped), never
        interpreted. Keyed by the utterance file, so a retried write changes nothing; the latest
        utterance of the call wins the columns, as the latest menu pass does.
        """
        text = _cap(_printable(transcript), _MAX_TRANSCRIPT)
        if confidence is not None and not math.isfinite(confidence):
            confidence = None  # NaN is no confidence, and not valid JSON for the timeline
        path = _cap(utterance_path, 255)
        ident = path or f"{text}|{intent}|{confidence}"
        key = "utterance:" + hashlib.sha1(ident.encode("utf-8", "replace")).hexdigest()[:20]
        data = {
            "transcript": text,
            "intent": _cap(intent, 32),
            "confidence": confidence,
            "utterance_path": path,
        }
        with self._session() as session:
            call = _call_by_linkedid(session, linkedid)
            if call is None or not self._insert_event(
                session, call.id, EVENT_UTTERANCE, key, at, data
            ):
                return False
            call.transcript = text
            call.intent_confidence = confidence
            call.utterance_path = path
            return True

    # --- what the AMI listener reports -------------------------------------------

    def queue_joined(
        self,
        linkedid: str,
        *,
        queue: str,
        key: str,
        at: datetime | None = None,
        data: dict[str, Any] | None = None,
    ) -> CallView | None:
        def apply(session: Session, call: Call, at: datetime) -> None:
            call.queue = _cap(queue, 32)
            if call.queue_joined_at is None:
                call.queue_joined_at = at

        return self._change(
            linkedid, EVENT_QUEUE_JOIN, key, at, {"queue": queue, **(data or {})}, apply
        )

    def queue_planned(self, linkedid: str, *, queue: str) -> bool:
        """The dialplan chose this queue; kept only until the caller really joins one."""
        with self._session() as session:
            result = session.execute(
                update(Call)
                .where(Call.linkedid == linkedid, Call.queue_joined_at.is_(None))
                .values(queue=_cap(queue, 32))
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def agent_ringing(
        self,
        linkedid: str,
        *,
        queue: str,
        member: str,
        key: str,
        at: datetime | None = None,
    ) -> bool:
        """One ring of one operator; ring-all produces several. Never a missed call by itself."""
        return self.record_event(
            linkedid, EVENT_RING, key=key, at=at, data={"queue": queue, "operator": member}
        )

    def agent_no_answer(
        self,
        linkedid: str,
        *,
        queue: str,
        member: str,
        key: str,
        at: datetime | None = None,
        ring_time: int | None = None,
    ) -> bool:
        data = {"queue": queue, "operator": member, "ring_time": ring_time}
        return self.record_event(linkedid, EVENT_RING_NO_ANSWER, key=key, at=at, data=data)

    def agent_connected(
        self,
        linkedid: str,
        *,
        queue: str,
        operator: str,
        key: str,
        at: datetime | None = None,
        hold_time: int | None = None,
        interface: str | None = None,
    ) -> CallView | None:
        def apply(session: Session, call: Call, at: datetime) -> None:
            # A transfer connects a second operator: the call was answered by the first.
            if call.answered_at is None:
                call.answered_at = at
                if call.queue_joined_at is None:
                    # Queue join missed (router started mid-call): HoldTime gives it back.
                    call.queue_joined_at = _before(at, hold_time)
            call.operator = _cap(operator, 64)
            call.queue = _cap(queue, 32)
            callbacks.close_for_number(
                session, call.caller_number, "reached_operator", at, tenant_id=call.tenant_id
            )

        data = {
            "queue": queue,
            "operator": operator,
            "interface": interface,
            "hold_time": hold_time,
        }
        return self._change(linkedid, EVENT_CONNECT, key, at, data, apply)

    def agent_completed(
        self,
        linkedid: str,
        *,
        queue: str,
        operator: str,
        key: str,
        at: datetime | None = None,
        reason: str | None = None,
        talk_time: int | None = None,
    ) -> CallView | None:
        data = {"queue": queue, "operator": operator, "reason": reason, "talk_time": talk_time}
        return self._change(linkedid, EVENT_COMPLETE, key, at, data, None)

    def queue_abandoned(
        self,
        linkedid: str,
        *,
        queue: str,
        key: str,
        at: datetime | None = None,
        hold_time: int | None = None,
    ) -> CallView | None:
        data = {"queue": queue, "hold_time": hold_time}
        return self._change(linkedid, EVENT_ABANDON, key, at, data, None)

    def queue_left(
        self,
        linkedid: str,
        *,
        queue: str,
        key: str,
        at: datetime | None = None,
    ) -> CallView | None:
        return self._change(linkedid, EVENT_QUEUE_LEAVE, key, at, {"queue": queue}, None)

    def call_ended(
        self,
        linkedid: str,
        *,
        cause: str | None,
        at: datetime | None = None,
        reconciled: bool = False,
        known_end: bool = False,
        dropped: bool = False,
    ) -> CallView | None:
        """Close the call and settle its outcome (and callback). None if unknown or already done.

        `reconciled`: the router closes a call whose channel is gone. `known_end`: Asterisk's
        records gave the real end, so who hung up follows from the facts, not "system".
        `dropped`: the channel is gone because Asterisk itself went away (outcome "dropped").
        """
        kind = EVENT_DROPPED if dropped else EVENT_RECONCILED if reconciled else EVENT_HANGUP

        def apply(session: Session, call: Call, at: datetime) -> None:
            if call.ended_at is not None:  # a hang-up after reconcile, or the reverse
                return
            call.ended_at = at
            call.hangup_cause = _cap(cause, 64)
            self._finalize(session, call, reconciled=reconciled and not known_end)

        return self._change(linkedid, kind, kind, at, {"cause": cause}, apply)

    # --- internals ----------------------------------------------------------------

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
            call = _call_by_linkedid(session, linkedid)
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
    ) -> Call:
        values = self._call_values(
            CallArrival(linkedid, caller_number, caller_name, channel, dialed_number, started_at),
            started_at,
        )
        # The tenant whose number was dialled (call_router/tenants.py); else the centre's.
        values["tenant_id"] = tenants.tenant_for_number(session, values["dialed_number"])
        session.execute(
            _insert_ignore(session, Call.__table__, ["linkedid"]).values(**values)  # type: ignore[arg-type]
        )
        call = _call_by_linkedid(session, linkedid)
        assert call is not None  # inserted above or by a concurrent writer
        _merge_call(call, values)
        return call

    def _call_values(self, arrival: CallArrival, started_at: datetime) -> dict[str, Any]:
        """A new call row's columns, raw caller ID cleaned."""
        return {
            "linkedid": _cap(arrival.linkedid, 64),
            "caller_number": normalize_number(arrival.caller_number, self._country),
            "caller_number_raw": _cap(_printable(arrival.caller_number), 128),
            "caller_name": clean_caller_name(arrival.caller_name),
            "channel": _cap(_printable(arrival.channel), 128),
            "dialed_number": _cap(_dialable(arrival.dialed_number), 32),
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
        statement = _insert_ignore(session, table, ["call_id", "key"]).values(
            call_id=call_id,
            kind=kind[:_MAX_KIND],
            key=key[:_MAX_KEY],
            at=at or self._clock(),
            data=data or {},
        )
        # RETURNING, not rowcount: psycopg reports -1 for ON CONFLICT DO NOTHING here.
        return session.execute(statement.returning(CallEvent.__table__.c.id)).first() is not None

    def _finalize(self, session: Session, call: Call, *, reconciled: bool) -> None:
        assert call.ended_at is not None
        events = session.scalars(
            select(CallEvent)
            .where(CallEvent.call_id == call.id)
            .order_by(CallEvent.at, CallEvent.id)
        ).all()
        if callbacks.is_outbound_call(events):
            # Our own click-to-call to a resident: it settles its callback entry, never opens one.
            callbacks.finish_outbound_call(session, call, events)
            return
        summary = outcomes.summarize(_facts(call, events, reconciled=reconciled))
        call.outcome = summary.outcome
        call.wait_seconds = summary.wait_seconds
        call.talk_seconds = summary.talk_seconds
        call.hangup_by = summary.hangup_by
        if not _wants_callback(summary.outcome, call):
            return
        if (
            summary.outcome == outcomes.ABANDONED_IN_QUEUE
            and (summary.wait_seconds or 0) < self._callback_min_wait
        ):
            return
        entry = callbacks.open_or_attach(
            session,
            caller_number=call.caller_number,
            reason=summary.outcome,
            queue=call.queue,
            call_id=call.id,
            now=call.ended_at,
        )
        kind = EVENT_CALLBACK if entry is not None else EVENT_CALLBACK_SKIPPED
        data = (
            {"callback_id": entry.id, "attempts": entry.attempts} if entry else {"why": "anonymous"}
        )
        self._insert_event(session, call.id, kind, kind, call.ended_at, data)


def _wants_callback(outcome: str, call: Call) -> bool:
    """Missed, voicemail and after-hours calls go on the callback list; a hang-up in the menu
    only once the caller chose a problem (hanging up on the greeting asks for nothing)."""
    if outcome in CALLBACK_OUTCOMES or outcome == outcomes.AFTER_HOURS:
        return True
    if outcome == outcomes.DROPPED:
        # Cut off before reaching a person (waiting or in the menu): they are called back.
        return call.answered_at is None
    return outcome == outcomes.ABANDONED_IN_MENU and bool(call.intent or call.menu_choice)


def _facts(call: Call, events: list[CallEvent] | Any, *, reconciled: bool) -> outcomes.CallFacts:
    assert call.ended_at is not None
    kinds = {event.kind for event in events}
    queue_status = None
    queue_left_at = None
    complete_reason = None
    talk_time = None
    for event in events:
        if event.kind == EVENT_QUEUE_STATUS:
            queue_status = str(event.data.get("status") or "") or None
        elif event.kind in (EVENT_QUEUE_LEAVE, EVENT_ABANDON):
            queue_left_at = event.at
        elif event.kind == EVENT_COMPLETE:
            complete_reason = event.data.get("reason")
            talk_time = event.data.get("talk_time")
    return outcomes.CallFacts(
        started_at=call.started_at,
        ended_at=call.ended_at,
        queue_joined_at=call.queue_joined_at,
        queue_left_at=queue_left_at,
        answered_at=call.answered_at,
        abandoned_in_queue=EVENT_ABANDON in kinds,
        queue_status=queue_status,
        voicemail=EVENT_VOICEMAIL in kinds,
        after_hours=EVENT_AFTER_HOURS in kinds,
        callback_requested=EVENT_CALLBACK_REQUESTED in kinds,
        complete_reason=complete_reason,
        talk_time=talk_time if isinstance(talk_time, int) else None,
        reconciled=reconciled,
        dropped=EVENT_DROPPED in kinds,
        ended_by_supervisor=EVENT_ENDED_BY_SUPERVISOR in kinds,
    )


def _apply_menu_result(
    call: Call,
    choice: str | None,
    intent: str | None,
    queue: str,
    language: str | None,
    at: datetime,
) -> None:
    # The latest menu pass wins (a caller may go through the menu again).
    call.menu_choice = _cap(choice, 32)
    call.intent = _cap(intent, 32)
    call.language = _cap(language, 8)
    call.menu_ended_at = at
    if call.queue_joined_at is None:
        call.queue = _cap(queue, 32)


def _merge_call(call: Call, values: dict[str, Any]) -> None:
    """Another writer created the row: merge in what it did not know."""
    if values["started_at"] < call.started_at:
        call.started_at = values["started_at"]
    if call.caller_number == ANONYMOUS and values["caller_number"] != ANONYMOUS:
        call.caller_number = values["caller_number"]
        call.caller_number_raw = values["caller_number_raw"]
    for field in ("caller_name", "channel", "dialed_number", "tenant_id", "node"):
        if getattr(call, field) is None and values[field] is not None:
            setattr(call, field, values[field])


# Fixed-shape statements of the writer's bursts: compiled once, then taken from the cache.
_CALL_IDS = select(Call.linkedid, Call.id).where(
    Call.linkedid.in_(bindparam("linkedids", expanding=True))
)
# _apply_menu_result as one UPDATE: the latest menu pass wins; the queue column only while
# the caller has not joined a queue yet (then the queue path owns it).
_MENU_RESULT = (
    update(Call.__table__)  # type: ignore[arg-type]
    .where(Call.__table__.c.linkedid == bindparam("m_lid"))
    .values(
        menu_choice=bindparam("m_choice"),
        intent=bindparam("m_intent"),
        language=bindparam("m_language"),
        menu_ended_at=bindparam("m_at", type_=UTCDateTime()),
        queue=case(
            (Call.__table__.c.queue_joined_at.is_(None), bindparam("m_queue")),
            else_=Call.__table__.c.queue,
        ),
    )
)


# The writer's timeline bursts, straight to the driver: SQLAlchemy's per-row parameter
# building cost more CPU than the database's own work (BENCHMARKS.md, "FastAGI server").
# SQLite: one prepared statement run for every row (sqlite3's executemany, in C).
_EVENTS_SQLITE = (
    "INSERT INTO call_events (call_id, kind, key, at, data) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (call_id, key) DO NOTHING"
)
# PostgreSQL: one statement of fixed text for the whole burst, its rows as one JSON array
# (one C-encoded parameter; psycopg's array parameters are escaped element by element in
# Python). Taken in array order, so the ids follow the submission order.
_EVENTS_POSTGRESQL = (
    "INSERT INTO call_events (call_id, kind, key, at, data) "
    "SELECT e.c, e.k, e.y, e.a, e.d FROM ROWS FROM (json_to_recordset(%(rows)s::json) "
    "AS (c integer, k varchar, y varchar, a timestamp, d json)) WITH ORDINALITY AS e "
    "ORDER BY e.ordinality ON CONFLICT (call_id, key) DO NOTHING"
)


EventRow = tuple[int, str, str, datetime, dict[str, Any]]
_EVENT_COLUMNS = ("call_id", "kind", "key", "at", "data")


def _insert_events(session: Session, rows: list[EventRow]) -> None:
    """INSERT .. ON CONFLICT DO NOTHING of many timeline rows (call_id, kind, key, at, data),
    stored exactly as the ORM stores them (the columns' own bind processors: naive UTC times,
    JSON text as the dialect's serializer writes it)."""
    table: Table = CallEvent.__table__  # type: ignore[assignment]
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name not in ("sqlite", "postgresql"):
        session.execute(
            _insert_ignore(session, table, ["call_id", "key"]),
            [dict(zip(_EVENT_COLUMNS, row, strict=True)) for row in rows],
        )
        return
    at_bind = table.c.at.type.bind_processor(dialect)
    if dialect.name == "sqlite":
        # What the JSON column's bind processor does for a dict (the data is never None
        # here): the dialect's serializer, called directly.
        dumps = getattr(dialect, "_json_serializer", None) or json.dumps
        connection.exec_driver_sql(
            _EVENTS_SQLITE,
            [
                (call_id, kind, key, at_bind(at) if at_bind else at, dumps(data))
                for call_id, kind, key, at, data in rows
            ],
        )
        return
    document = [
        {"c": call_id, "k": kind, "y": key, "a": _iso(at_bind(at) if at_bind else at), "d": data}
        for call_id, kind, key, at, data in rows
    ]
    connection.exec_driver_sql(_EVENTS_POSTGRESQL, {"rows": json.dumps(document)})


def _iso(value: Any) -> Any:
    """A naive UTC datetime (the `at` column, bound) as PostgreSQL reads it from JSON."""
    return value.isoformat(sep=" ") if isinstance(value, datetime) else value


def _call_ids(session: Session, linkedids: list[str]) -> dict[str, int]:
    """The ids of those calls that have a row."""
    return {lid: cid for lid, cid in session.execute(_CALL_IDS, {"linkedids": linkedids})}


def _call_by_linkedid(session: Session, linkedid: str) -> Call | None:
    return session.scalars(select(Call).where(Call.linkedid == linkedid)).first()


def _insert_ignore(session: Session, table: Table, conflict_columns: list[str]) -> Insert:
    """INSERT .. ON CONFLICT DO NOTHING on PostgreSQL and SQLite alike."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    raise NotImplementedError(f"call log needs PostgreSQL or SQLite, not {dialect}")


def _utc(at: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _before(at: datetime, seconds: int | None) -> datetime | None:
    if seconds is None or seconds < 0:
        return None
    try:
        return at - timedelta(seconds=seconds)
    except OverflowError:  # before year 1: a broken clock or counter, not a time
        return None


def _cap(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


def _printable(value: str | None) -> str | None:
    if value is None:
        return None
    if value.isprintable():  # the usual case: nothing to drop (no loop over the characters)
        return value.strip() or None
    return "".join(ch for ch in value if ch.isprintable()).strip() or None


def _dialable(value: str | None) -> str | None:
    if value is None:
        return None
    return "".join(ch for ch in value if ch.isascii() and (ch.isdigit() or ch in "+*#")) or None
