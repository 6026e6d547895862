# The call's lifecycle as the AMI listener reports it (queue, operators, hang-up), and the
# settling of its outcome and callback entry when it ends.

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from call_router import callback_dialing, callback_intake, feedback_calls, outcomes
from call_router.call_event_kinds import (
    EVENT_ABANDON,
    EVENT_AFTER_HOURS,
    EVENT_CALLBACK,
    EVENT_CALLBACK_REQUESTED,
    EVENT_CALLBACK_SKIPPED,
    EVENT_COMPLETE,
    EVENT_CONNECT,
    EVENT_DROPPED,
    EVENT_ENDED_BY_SUPERVISOR,
    EVENT_HANGUP,
    EVENT_QUEUE_JOIN,
    EVENT_QUEUE_LEAVE,
    EVENT_QUEUE_STATUS,
    EVENT_RECONCILED,
    EVENT_RING,
    EVENT_RING_NO_ANSWER,
    EVENT_VOICEMAIL,
)
from call_router.call_log_core import CallLogCore, CallView
from call_router.call_log_sql import cap, seconds_before
from call_router.models import DIRECTION_FEEDBACK, Call, CallEvent

# Outcomes that put the caller on the callback list.
CALLBACK_OUTCOMES = outcomes.MISSED_OUTCOMES | {outcomes.VOICEMAIL}


class CallLifecycle(CallLogCore):
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
            call.queue = cap(queue, 32)
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
                .values(queue=cap(queue, 32))
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
        queue: str | None,
        operator: str,
        key: str,
        at: datetime | None = None,
        hold_time: int | None = None,
        interface: str | None = None,
    ) -> CallView | None:
        """An operator answered: from a queue (AgentConnect), or the operator a supervisor moved
        the caller to (`queue` None: the call keeps the queue it was in)."""

        def apply(session: Session, call: Call, at: datetime) -> None:
            # A transfer connects a second operator: the call was answered by the first.
            if call.answered_at is None:
                call.answered_at = at
                if call.queue_joined_at is None:
                    # Queue join missed (router started mid-call): HoldTime gives it back.
                    call.queue_joined_at = seconds_before(at, hold_time)
            call.operator = cap(operator, 64)
            if queue is not None:
                call.queue = cap(queue, 32)
            callback_intake.close_for_number(
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
            call.hangup_cause = cap(cause, 64)
            self._finalize(session, call, reconciled=reconciled and not known_end)

        return self._change(linkedid, kind, kind, at, {"cause": cause}, apply)

    def _finalize(self, session: Session, call: Call, *, reconciled: bool) -> None:
        assert call.ended_at is not None
        events = session.scalars(
            select(CallEvent)
            .where(CallEvent.call_id == call.id)
            .order_by(CallEvent.at, CallEvent.id)
        ).all()
        if call.direction == DIRECTION_FEEDBACK:
            # The "is it fixed?" call to a resident: its outcome is their answer; never a
            # callback entry, whatever became of it.
            feedback_calls.finish(call, events)
            return
        if callback_dialing.is_outbound_call(events):
            # Our own click-to-call to a resident: it settles its callback entry, never opens one.
            callback_dialing.finish_outbound_call(session, call, events)
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
        entry = callback_intake.open_or_attach(
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
