# Calling a resident back (click-to-call): the entry's dial bookkeeping, the outbound call's
# timeline kinds, and settling both when that call ends.

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from call_router import callback_policy as policy
from call_router.callback_claims import record_outcome
from call_router.callback_models import (
    ACTION_CALL_ENDED,
    ACTION_CALL_STARTED,
)
from call_router.callbacks import (
    CallbackError,
    CallbackRules,
    checked_operator,
    claim_live,
    default_rules,
    get_entry,
    record_history,
)
from call_router.models import CALLBACK_OPEN, Call, Callback, CallEvent

# Timeline kinds of an outbound (click-to-call) call in the call log.
EVENT_OUTBOUND = "callback_call"  # written when the call is placed: data {callback_id, operator}
# The linkedid of a call an operator places to a resident (click-to-call): not an arrival.
OUTBOUND_LINKEDID_PREFIX: Final = "cb-"
EVENT_DIAL_BEGIN = "callback_dial"  # the operator answered; the resident's leg rings
EVENT_DIAL_END = "callback_dial_end"  # data {status: DIALSTATUS}
# Call-log outcomes of outbound calls (the inbound vocabulary is in call_router/outcomes.py).
OUT_ANSWERED = "callback_answered"
OUT_NO_ANSWER = "callback_no_answer"
OUT_BUSY = "callback_busy"
OUT_FAILED = "callback_failed"
OUT_OPERATOR_MISSED = "callback_operator_no_answer"
# Asterisk DIALSTATUS → the outcome the dialler reports by itself (the resident never spoke).
_DIALSTATUS_OUTCOME = {
    "NOANSWER": policy.Outcome.NO_ANSWER,
    "BUSY": policy.Outcome.BUSY,
    "CONGESTION": policy.Outcome.NO_ANSWER,
    "CHANUNAVAIL": policy.Outcome.NO_ANSWER,
}
# A click-to-call that never reported its end (router down) stops blocking the entry after this.
ACTIVE_CALL_STALE = timedelta(minutes=15)


def check_dialable(entry: Callback, rules: CallbackRules) -> None:
    """Raise CallbackError("number_refused") for a number outside the dial-out plan (checked
    again at each dial: the plan in force now decides, not the one at creation)."""
    refusal = rules.plan.refusal(entry.caller_number)
    if refusal is not None:
        raise CallbackError(
            "number_refused",
            f"callback {entry.id}: {entry.caller_number} is outside the dial-out plan ({refusal})",
        )


def start_call(
    session: Session,
    callback_id: int,
    operator: str,
    now: datetime,
    *,
    call_id: int,
    rules: CallbackRules,
    by: str | None = None,
) -> Callback:
    """Mark the entry as being dialled by `operator` (who must hold the claim) on `call_id`.

    Refused at night (quiet hours), before the retry time, and while another call-back of the
    same entry is in progress: a resident is never called twice at once.
    """
    operator = checked_operator(operator)
    entry = get_entry(session, callback_id)
    if entry.status != CALLBACK_OPEN:
        raise CallbackError("not_open", f"callback {callback_id} is {entry.status}")
    check_dialable(entry, rules)
    if entry.claimed_by != operator or not claim_live(entry, now):
        raise CallbackError("not_claimed", f"claim callback {callback_id} before calling")
    allowed, why = policy.may_call_now(now, rules.quiet, entry.next_attempt_at)
    if not allowed:
        assert why is not None
        when = entry.next_attempt_at if why == "retry_not_due" else rules.quiet.next_allowed(now)
        raise CallbackError(why, f"not now: {why.replace('_', ' ')}; next at {when}")
    stale = now - ACTIVE_CALL_STALE
    result = session.execute(
        update(Callback)
        .where(
            Callback.id == callback_id,
            or_(
                Callback.active_call_id.is_(None),
                # The previous call-back ended, or never reported its end (router down).
                Callback.active_call_id.in_(
                    select(Call.id).where(or_(Call.ended_at.is_not(None), Call.started_at < stale))
                ),
            ),
        )
        .values(
            active_call_id=call_id,
            updated_at=now,
            # The call may take a while: keep the claim at least as long as it can ring.
            claimed_until=max(
                entry.claimed_until or now, now + timedelta(seconds=rules.claim_timeout)
            ),
        )
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise CallbackError("call_in_progress", f"callback {callback_id} is being dialled")
    session.refresh(entry)
    record_history(
        session, callback_id, ACTION_CALL_STARTED, now, operator=operator, call_id=call_id, by=by
    )
    return entry


def is_outbound_call(events: Sequence[CallEvent]) -> bool:
    return any(event.kind == EVENT_OUTBOUND for event in events)


def finish_outbound_call(
    session: Session, call: Call, events: Sequence[CallEvent], *, rules: CallbackRules | None = None
) -> None:
    """A click-to-call ended (the call log's finalize step): settle the call row and the entry.

    The resident not answering (or busy) is recorded on the entry by itself, as the operator
    would; an answered call waits for the operator's outcome (only they know if it is solved).
    """
    assert call.ended_at is not None
    rules = rules or default_rules()
    started = next(e for e in events if e.kind == EVENT_OUTBOUND)
    callback_id = int(started.data.get("callback_id") or 0)
    operator = started.data.get("operator")
    dial_begin = next((e for e in events if e.kind == EVENT_DIAL_BEGIN), None)
    dial_end = next((e for e in reversed(events) if e.kind == EVENT_DIAL_END), None)
    status = str(dial_end.data.get("status") or "") if dial_end is not None else ""
    call.operator = call.operator or (str(operator) if operator else None)
    if dial_begin is None:
        call.outcome = OUT_OPERATOR_MISSED
    elif status == "ANSWER":
        call.outcome = OUT_ANSWERED
        assert dial_end is not None
        call.answered_at = call.answered_at or dial_end.at
        call.talk_seconds = max(0, int((call.ended_at - call.answered_at).total_seconds()))
    elif status == "BUSY":
        call.outcome = OUT_BUSY
    elif status in _DIALSTATUS_OUTCOME:
        call.outcome = OUT_NO_ANSWER
    else:
        call.outcome = OUT_FAILED
    call.hangup_by = None
    entry = session.get(Callback, callback_id)
    if entry is None:
        return
    if entry.active_call_id == call.id:
        entry.active_call_id = None
    record_history(
        session,
        entry.id,
        ACTION_CALL_ENDED,
        call.ended_at,
        operator=call.operator,
        call_id=call.id,
        data={"call_outcome": call.outcome, "dial_status": status or None},
    )
    if started.data.get("automatic") and entry.status == CALLBACK_OPEN and dial_begin is None:
        # The operator's phone never took the virtual-hold call-back: the dispatcher's claim
        # goes, so the held caller keeps their place for the next free operator.
        entry.claimed_by = None
        entry.claimed_until = None
    automatic = _DIALSTATUS_OUTCOME.get(status)
    if automatic is not None and entry.status == CALLBACK_OPEN:
        record_outcome(
            session,
            entry.id,
            automatic,
            call.ended_at,
            rules=rules,
            operator=None,
            note=f"dialler: {status}",
            call_id=call.id,
        )
