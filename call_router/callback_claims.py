# Claiming a callback entry (one operator at a time, atomically) and recording what a try
# achieved: close it, or schedule the next try outside quiet hours.

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from call_router import callback_policy as policy
from call_router import date_range
from call_router.callback_models import (
    ACTION_CLAIMED,
    ACTION_OUTCOME,
    ACTION_RELEASED,
)
from call_router.callbacks import (
    CallbackError,
    CallbackRules,
    checked_operator,
    claim_live,
    close_entry,
    get_entry,
    record_history,
)
from call_router.models import CALLBACK_OPEN, Callback


def claim(
    session: Session,
    callback_id: int,
    operator: str,
    now: datetime,
    *,
    timeout: int,
    by: str | None = None,
) -> Callback:
    """Take the entry for `timeout` seconds (again, for its holder: extends the claim).

    One conditional UPDATE decides: of two operators claiming at once, the database lets
    exactly one row change, so exactly one wins. Raises CallbackError otherwise.
    """
    operator = checked_operator(operator)
    result = session.execute(
        update(Callback)
        .where(
            Callback.id == callback_id,
            Callback.status == CALLBACK_OPEN,
            or_(
                Callback.claimed_by.is_(None),
                Callback.claimed_by == operator,
                Callback.claimed_until.is_(None),
                Callback.claimed_until <= now,
            ),
        )
        .values(claimed_by=operator, claimed_until=now + timedelta(seconds=timeout), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    entry = session.get(Callback, callback_id)
    if entry is not None:
        session.refresh(entry)
    if not result.rowcount:  # type: ignore[attr-defined]
        if entry is None:
            raise CallbackError("not_found", f"no callback {callback_id}")
        if entry.status != CALLBACK_OPEN:
            raise CallbackError("not_open", f"callback {callback_id} is {entry.status}")
        raise CallbackError("claimed", f"callback {callback_id} is claimed by {entry.claimed_by}")
    assert entry is not None
    record_history(session, callback_id, ACTION_CLAIMED, now, operator=operator, by=by)
    return entry


def release(
    session: Session,
    callback_id: int,
    now: datetime,
    *,
    operator: str | None = None,
    by: str | None = None,
) -> Callback:
    """Give the entry back. With `operator`, only that operator's claim is released."""
    entry = get_entry(session, callback_id)
    mine = operator is None or entry.claimed_by in (None, checked_operator(operator))
    if not mine and claim_live(entry, now):
        raise CallbackError("claimed", f"callback {callback_id} is claimed by {entry.claimed_by}")
    holder = entry.claimed_by
    entry.claimed_by = None
    entry.claimed_until = None
    entry.updated_at = now
    record_history(session, callback_id, ACTION_RELEASED, now, operator=operator or holder, by=by)
    return entry


def record_outcome(
    session: Session,
    callback_id: int,
    outcome: policy.Outcome | str,
    now: datetime,
    *,
    rules: CallbackRules,
    operator: str | None = None,
    retry_at: datetime | None = None,
    note: str | None = None,
    call_id: int | None = None,
    by: str | None = None,
) -> Callback:
    """Apply an outcome: close (reached, wrong number, too many tries) or schedule the next try.

    The next try never falls into quiet hours. An operator other than the claim holder may not
    report while the claim is live.
    """
    outcome = policy.Outcome(outcome)
    entry = get_entry(session, callback_id)
    if entry.status != CALLBACK_OPEN:
        raise CallbackError("not_open", f"callback {callback_id} is {entry.status}")
    if operator is not None:
        operator = checked_operator(operator)
        if entry.claimed_by not in (None, operator) and claim_live(entry, now):
            raise CallbackError(
                "claimed", f"callback {callback_id} is claimed by {entry.claimed_by}"
            )
    data: dict[str, Any] = {}
    entry.last_outcome = outcome.value
    entry.updated_at = now
    if outcome in policy.CLOSING:
        close_entry(
            session, entry.id, now, note=note or outcome.value, outcome=outcome, operator=operator
        )
    elif outcome in policy.FAILED_TRIES:
        entry.tries = (entry.tries or 0) + 1
        decision = policy.retry_after_failure(
            entry.tries, now, delays=rules.retry_delays, max_attempts=rules.max_attempts
        )
        if decision.give_up:
            close_entry(
                session, entry.id, now, note="unreachable", outcome=outcome, operator=operator
            )
            data["gave_up_after"] = entry.tries
        else:
            assert decision.at is not None
            entry.next_attempt_at = rules.quiet.next_allowed(decision.at)
            data["next_attempt_at"] = entry.next_attempt_at.isoformat()
    else:  # RETRY: the resident asked for another time; not a failed try
        wanted = retry_at or now + timedelta(
            seconds=rules.retry_delays[0] if rules.retry_delays else 0
        )
        if wanted.tzinfo is None:
            raise CallbackError("bad_time", "retry time needs a time zone")
        if not date_range.usable(wanted):
            raise CallbackError("bad_time", f"retry time must be {date_range.RANGE_TEXT}")
        entry.next_attempt_at = rules.quiet.next_allowed(wanted)
        data["next_attempt_at"] = entry.next_attempt_at.isoformat()
    if entry.status == CALLBACK_OPEN:
        # The try is over: the entry goes back to the list for whoever is free when it is due.
        entry.claimed_by = None
        entry.claimed_until = None
    session.flush()
    session.refresh(entry)
    record_history(
        session,
        entry.id,
        ACTION_OUTCOME,
        now,
        operator=operator,
        outcome=outcome.value,
        call_id=call_id,
        note=note,
        data=data,
        by=by,
    )
    return entry
