"""The automatic "is it fixed?" call once a request is done (issue 14, the phone side).

Marking a request done (service_requests.change_state) sets `feedback_due_at`. The router's
dialer (call_router/request_feedback_dialer.py) picks due requests outside quiet hours, checks
the number against the dial-out plan (the call-backs' rules: callback_policy.py, dial_plan.py),
and takes one try with `start_attempt` BEFORE it asks Asterisk: the next try is already
scheduled then (bounded by the call-backs' retry delays and attempt limit), so a call that is
never answered, or a dialer that dies, still retries and never calls forever.

The resident's answer (FastAGI route `request_feedback`) is `record_answer`: 1 confirms it
(closed), 2 reopens it (back to new; the history says: by the resident, by phone). Either way
the score is kept and no more tries are made.

Each try is also a row of the call log, written with the try (call_router/feedback_calls.py):
an outbound call to the resident (direction `feedback`) with their answer on its timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router import callback_policy as policy
from call_router import feedback_calls
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.callbacks import CallbackRules
from call_router.models import utcnow
from call_router.request_models import RequestEvent, ServiceRequest

SOLVED = "1"
NOT_SOLVED = "2"
SCORES = {SOLVED: 1, NOT_SOLVED: 2}
ACTOR = "resident (by phone)"
DIALER = "feedback call"
# How many due requests one dialer round takes at most.
BATCH = 20


@dataclass(frozen=True)
class Attempt:
    """One try of the feedback call, recorded before Asterisk is asked."""

    number: str  # the request number (what the resident hears)
    phone: str  # E.164, checked against the dial-out plan
    attempt: int
    last: bool  # no further try after this one
    # The try's row in the call log (feedback_calls.py): its linkedid, the Originate's ChannelId.
    linkedid: str | None = None

    @property
    def action_id(self) -> str:
        return f"hotline-feedback-{self.number}-{self.attempt}"


def _event(request: ServiceRequest, action: str, now: datetime, note: str | None) -> None:
    request.events.append(
        RequestEvent(tenant_id=request.tenant_id, at=now, action=action, actor=DIALER, note=note)
    )


def due(session: Session, now: datetime, rules: CallbackRules) -> list[ServiceRequest]:
    """Requests whose feedback call may be placed now (none during quiet hours)."""
    if rules.quiet.is_quiet(now):
        return []
    stmt = (
        select(ServiceRequest)
        .where(
            ServiceRequest.state == life.DONE,
            ServiceRequest.feedback_due_at.is_not(None),
            ServiceRequest.feedback_due_at <= now,
        )
        .order_by(ServiceRequest.feedback_due_at, ServiceRequest.id)
        .limit(BATCH)
    )
    return list(session.scalars(stmt).unique())


def start_attempt(
    session: Session, request: ServiceRequest, now: datetime, rules: CallbackRules
) -> Attempt | None:
    """Take one try (the next one scheduled, or none after the last); None when the number
    may not be dialled at all (noted in the history, no more tries)."""
    if rules.quiet.is_quiet(now):
        return None
    phone = policy.caller_key(request.caller_number, rules.country)
    refused = rules.plan.refusal(phone) if phone else "no_number"
    if phone is None or refused is not None:
        request.feedback_due_at = None
        _event(request, "feedback_skipped", now, f"number not dialled: {refused}")
        store.flush(session)
        return None
    request.feedback_attempts += 1
    retry = policy.retry_after_failure(
        request.feedback_attempts,
        now,
        delays=rules.retry_delays,
        max_attempts=rules.max_attempts,
    )
    # A retry never falls into quiet hours.
    request.feedback_due_at = None if retry.give_up else rules.quiet.next_allowed(retry.at or now)
    _event(request, "feedback_call", now, f"try {request.feedback_attempts}")
    linkedid = feedback_calls.new_linkedid()
    feedback_calls.open_call(
        session,
        linkedid=linkedid,
        phone=phone,
        request_number=request.number,
        attempt=request.feedback_attempts,
        tenant_id=request.tenant_id,
        at=now,
    )
    store.flush(session)
    return Attempt(request.number, phone, request.feedback_attempts, retry.give_up, linkedid)


def not_reached(
    session: Session, number: str, attempt: Attempt, reason: str, now: datetime | None = None
) -> None:
    """The try was not answered (Asterisk's Originate reason); the next one is scheduled.
    The call log's row notes it too (the dialer then ends the row)."""
    now = now or utcnow()
    request = store.get_request(session, number)
    note = f"try {attempt.attempt} not answered ({reason[:32]})"
    if attempt.last:
        note += ": no more tries"
    _event(request, "feedback_no_answer", now, note)
    if attempt.linkedid:
        feedback_calls.note_answer(
            session,
            attempt.linkedid,
            feedback_calls.NO_ANSWER,
            now,
            request_number=number,
            reason=reason[:32],
        )
    store.flush(session)


def record_answer(
    session: Session,
    number: str,
    key: str,
    *,
    now: datetime | None = None,
    linkedid: str | None = None,
) -> ServiceRequest:
    """The resident's key: 1 solved (closed), 2 not solved (reopened). Raises RequestError
    (code `invalid`) for any other key, `state` when the request is no longer done.
    `linkedid`: the feedback call's, whose row in the call log gets the answer (same
    transaction: the call log and the request never disagree)."""
    now = now or utcnow()
    if key not in SCORES:
        raise store.RequestError("feedback: press 1 or 2", "invalid")
    request = store.get_request(session, number)
    if request.state != life.DONE:
        raise store.RequestError(f"request {number} is {request.state}, not done", "state")
    if key == SOLVED:
        request = store.change_state(
            session, number, life.CLOSED, actor=ACTOR, note="confirmed: solved", now=now
        )
    else:
        request = store.change_state(
            session, number, life.NEW, actor=ACTOR, note="not solved: reopened", now=now
        )
    request.feedback_score = SCORES[key]
    request.feedback_at = now
    request.feedback_due_at = None
    if linkedid:
        answer = feedback_calls.SOLVED if key == SOLVED else feedback_calls.NOT_SOLVED
        feedback_calls.note_answer(session, linkedid, answer, now, request_number=number, key=key)
    store.flush(session)
    return request
