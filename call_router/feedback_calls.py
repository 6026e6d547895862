"""The "is it fixed?" call in the call log: one row per try, an outbound call to the resident.

The router's dialer (call_router/request_feedback_dialer.py) writes the row when it takes the
try, before Asterisk is asked, in the same transaction as the try itself: linkedid ours
(`fb-…`, given to the Originate as ChannelId, so every leg Asterisk creates carries it), the
resident's number, the request's tenant, direction `feedback` (models.DIRECTION_FEEDBACK) and
a `feedback_call` entry naming the request and the try. Answered, the dialer notes the answer
time; the FastAGI route `request_feedback` notes the resident's answer (`feedback_answer`:
solved, not_solved or no_answer), the key's in the same transaction as the request's change
(call_router/request_feedback.py record_answer). Not answered, the dialer notes no_answer and
ends the row itself (the router may have ended it from the Hangup already: idempotent).
Otherwise the router's AMI listener ends it on the Hangup of the channel whose Uniqueid is that
linkedid, and the call log's finalize step settles it here (`finish`): the outcome is the
answer (`feedback_solved`, `feedback_not_solved`, `feedback_no_answer`), never a callback entry.

Not a caller and not an operator's work: the reports' figures, the staffing forecast and the
abandoned calls count inbound calls only, agent sessions and the abandoned calls' "called
back" callback ones (an operator's click-to-call); the direction table counts it apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from call_router.models import DIRECTION_FEEDBACK, Call, CallEvent
from call_router.outbound_calls import open_outbound_call

LINKEDID_PREFIX: Final = "fb-"
EVENT_CALL: Final = "feedback_call"  # the try was placed: data {request, attempt}
EVENT_ANSWER: Final = "feedback_answer"  # the resident's answer: data {request, answer, ...}
SOLVED: Final = "solved"
NOT_SOLVED: Final = "not_solved"
NO_ANSWER: Final = "no_answer"  # not answered, or answered without a key
ANSWERS: Final = (SOLVED, NOT_SOLVED, NO_ANSWER)
OUTCOME_PREFIX: Final = "feedback_"


def new_linkedid() -> str:
    return f"{LINKEDID_PREFIX}{uuid.uuid4().hex}"


def is_feedback_linkedid(linkedid: str | None) -> bool:
    return bool(linkedid) and str(linkedid).startswith(LINKEDID_PREFIX)


def open_call(
    session: Session,
    *,
    linkedid: str,
    phone: str,
    request_number: str,
    attempt: int,
    tenant_id: int | None,
    at: datetime,
    node: str | None = None,
) -> Call:
    """The try's row (ended later by `end`/the router's Hangup), with its `feedback_call` entry."""
    return open_outbound_call(
        session,
        linkedid=linkedid,
        phone=phone,
        direction=DIRECTION_FEEDBACK,
        tenant_id=tenant_id,
        at=at,
        kind=EVENT_CALL,
        data={"request": request_number, "attempt": attempt, "direction": "outbound"},
        node=node,
    )


def _call(session: Session, linkedid: str) -> Call | None:
    if not is_feedback_linkedid(linkedid):
        return None
    return session.scalar(
        select(Call).where(Call.linkedid == linkedid, Call.direction == DIRECTION_FEEDBACK)
    )


def assign_node(session: Session, linkedid: str, node: str | None) -> None:
    """The node whose Asterisk took the Originate (None: one box); set once."""
    if node is not None:
        session.execute(
            update(Call).where(Call.linkedid == linkedid, Call.node.is_(None)).values(node=node)
        )


def answered(session: Session, linkedid: str, at: datetime) -> None:
    """The resident picked up (the Originate's answer)."""
    call = _call(session, linkedid)
    if call is not None and call.answered_at is None:
        call.answered_at = at
        if call.ended_at is not None:  # the Hangup was settled first
            finish(call, _events(session, call))


def note_answer(
    session: Session,
    linkedid: str,
    answer: str,
    at: datetime,
    *,
    request_number: str | None = None,
    **data: str | int | bool | None,
) -> bool:
    """The try's answer on its timeline (the first one noted stays); False when the call is
    not a feedback call's or its answer is noted already."""
    if answer not in ANSWERS:
        raise ValueError(f"feedback answer {answer!r}")
    call = _call(session, linkedid)
    if call is None:
        return False
    events = _events(session, call)
    if any(event.key == EVENT_ANSWER for event in events):
        return False
    event = CallEvent(
        call_id=call.id,
        at=at,
        kind=EVENT_ANSWER,
        key=EVENT_ANSWER,
        data={"request": request_number, "answer": answer, **data},
    )
    session.add(event)
    session.flush()
    if call.ended_at is not None:  # noted after the Hangup was settled
        finish(call, [*events, event])
    return True


def _events(session: Session, call: Call) -> list[CallEvent]:
    stmt = select(CallEvent).where(CallEvent.call_id == call.id).order_by(CallEvent.at)
    return list(session.scalars(stmt))


def answer_of(events: Sequence[CallEvent]) -> str:
    noted = next((e for e in events if e.kind == EVENT_ANSWER), None)
    answer = str(noted.data.get("answer") or "") if noted is not None else ""
    return answer if answer in ANSWERS else NO_ANSWER


def finish(call: Call, events: Sequence[CallEvent]) -> None:
    """Settle an ended feedback call (the call log's finalize step): its outcome is the
    resident's answer; no wait, no operator, no callback entry."""
    assert call.ended_at is not None
    call.outcome = OUTCOME_PREFIX + answer_of(events)
    call.wait_seconds = None
    call.hangup_by = None
    if call.answered_at is not None:
        call.talk_seconds = max(0, int((call.ended_at - call.answered_at).total_seconds()))
