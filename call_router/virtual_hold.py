"""Virtual hold: a caller who pressed 1 in a queue leaves it and is called back in turn.

The dialplan ([hotline-vhold] in extensions.conf) sends a `HotlineCallbackRequest` user event;
the router calls `request_callback`, which marks the call (outcome "callback_requested") and
opens the number's callback entry with reason "virtual_hold" and the caller's place in the
queue (`placed_at` = when they joined it), in one transaction. Replays are harmless: the event
key and open_or_attach's per-call check make a second delivery a no-op.

The router's dispatcher (virtual_hold_dispatch.py) dials the held caller when their
place comes; once the resident answers that automatic call-back, `close_answered` closes the
entry (outcome "reached"): the promise is kept, and nothing dials them again for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from call_router import callback_claims, callback_dialing, callback_intake, callbacks
from call_router import callback_policy as policy
from call_router.call_event_kinds import EVENT_CALLBACK, EVENT_CALLBACK_REQUESTED
from call_router.db import Database
from call_router.models import CALLBACK_OPEN, Call, Callback, CallEvent

REASON_VIRTUAL_HOLD = "virtual_hold"
# Written on an automatic call-back's call just before the Originate goes to Asterisk.
EVENT_ORIGINATING = "callback_originating"
# An automatic call-back prepared this long ago and never handed to Asterisk was orphaned by a
# router that stopped in between (its Originate waits at most for the operator's wrap-up).
ORPHAN_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class CallbackRequest:
    call_id: int
    callback_id: int | None  # None: anonymous caller, nobody to call back


def request_callback(
    db: Database, linkedid: str, *, queue: str | None, at: datetime
) -> CallbackRequest | None:
    """None when the call is unknown (the router never saw it)."""
    with db.session() as session:
        return request_callback_in(session, linkedid, queue=queue, at=at)


def request_callback_in(
    session: Session, linkedid: str, *, queue: str | None, at: datetime
) -> CallbackRequest | None:
    """`request_callback` inside the caller's transaction (the router's batch)."""
    call = session.scalars(select(Call).where(Call.linkedid == linkedid)).first()
    if call is None:
        return None
    queue = queue or call.queue
    _event(session, call.id, EVENT_CALLBACK_REQUESTED, at, {"queue": queue})
    entry = callback_intake.open_or_attach(
        session,
        caller_number=call.caller_number,
        reason=REASON_VIRTUAL_HOLD,
        queue=queue,
        call_id=call.id,
        now=at,
        placed_at=call.queue_joined_at or at,
    )
    if entry is not None:
        _event(
            session,
            call.id,
            EVENT_CALLBACK,
            at,
            {"callback_id": entry.id, "attempts": entry.attempts, "reason": "virtual_hold"},
        )
    return CallbackRequest(call.id, entry.id if entry is not None else None)


def dialling_operators(session: Session) -> set[str]:
    """Operators holding a virtual-hold entry that is being dialled now (not free for another)."""
    return {
        login
        for login in session.scalars(
            select(Callback.claimed_by).where(
                Callback.status == CALLBACK_OPEN,
                Callback.reason == REASON_VIRTUAL_HOLD,
                Callback.active_call_id.is_not(None),
            )
        )
        if login is not None
    }


def orphaned_calls(session: Session, now: datetime) -> list[str]:
    """Linkedids of automatic call-backs that hold their entry as "being dialled" but never
    reached Asterisk (no `EVENT_ORIGINATING`) and were prepared before `now - ORPHAN_AFTER`:
    nobody was dialled, so ending them gives the held caller their place back."""
    originating = select(CallEvent.call_id).where(CallEvent.kind == EVENT_ORIGINATING)
    return list(
        session.scalars(
            select(Call.linkedid)
            .join(Callback, Callback.active_call_id == Call.id)
            .where(
                Callback.status == CALLBACK_OPEN,
                Callback.reason == REASON_VIRTUAL_HOLD,
                Call.ended_at.is_(None),
                Call.started_at < now - ORPHAN_AFTER,
                Call.id.not_in(originating),
            )
        )
    )


def close_answered(
    session: Session, linkedid: str, at: datetime, *, rules: callbacks.CallbackRules | None = None
) -> bool:
    """The resident answered the call-back `linkedid`: if the dispatcher placed it, close its
    entry as reached (True). An operator's own click-to-call waits for their outcome."""
    call = session.scalars(select(Call).where(Call.linkedid == linkedid)).first()
    if call is None:
        return False
    started = session.scalars(
        select(CallEvent).where(
            CallEvent.call_id == call.id, CallEvent.kind == callback_dialing.EVENT_OUTBOUND
        )
    ).first()
    if started is None or not started.data.get("automatic"):
        return False
    entry = session.get(Callback, int(started.data.get("callback_id") or 0))
    if entry is None or entry.status != CALLBACK_OPEN:
        return False
    operator = started.data.get("operator")
    callback_claims.record_outcome(
        session,
        entry.id,
        policy.Outcome.REACHED,
        at,
        rules=rules or callbacks.default_rules(),
        operator=str(operator) if operator else None,
        note="virtual hold: answered",
        call_id=call.id,
    )
    return True


def _event(session: Session, call_id: int, kind: str, at: datetime, data: dict[str, Any]) -> None:
    exists = session.scalar(
        select(CallEvent.id).where(CallEvent.call_id == call_id, CallEvent.key == kind)
    )
    if exists is not None:
        return
    try:
        with session.begin_nested():
            session.add(CallEvent(call_id=call_id, at=at, kind=kind, key=kind, data=data))
    except IntegrityError:  # a concurrent replay won the race
        pass
