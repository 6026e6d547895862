# The callback list as operators and supervisors read it: calling order, history, counters,
# the virtual-hold places, and escalation of entries past their deadline.

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from call_router import callback_policy as policy
from call_router.call_event_kinds import EVENT_CALLBACK_SKIPPED
from call_router.callback_models import (
    ACTION_ESCALATED,
    CallbackAttempt,
)
from call_router.callbacks import (
    CallbackRules,
    claim_live,
    record_history,
)
from call_router.models import CALLBACK_OPEN, Call, Callback, CallEvent


def list_callbacks(
    session: Session, status: str | None = None, *, now: datetime | None = None
) -> Sequence[Callback]:
    """Open entries in calling order (callback_policy.order_key); other statuses newest first."""
    query = select(Callback)
    if status is not None:
        query = query.where(Callback.status == status)
    if status != CALLBACK_OPEN:
        return session.scalars(query.order_by(Callback.updated_at.desc(), Callback.id.desc())).all()
    rows = {row.id: row for row in session.scalars(query)}
    items = [
        policy.ListItem(row.id, row.priority, row.due_at, row.created_at, row.next_attempt_at)
        for row in rows.values()
    ]
    return [rows[item.id] for item in policy.ordered(items, now or datetime.now().astimezone())]


def get_callback(session: Session, callback_id: int) -> Callback | None:
    return session.get(Callback, callback_id)


def history(session: Session, callback_id: int) -> list[CallbackAttempt]:
    return list(
        session.scalars(
            select(CallbackAttempt)
            .where(CallbackAttempt.callback_id == callback_id)
            .order_by(CallbackAttempt.at, CallbackAttempt.id)
        )
    )


def summary(session: Session, now: datetime, since: datetime) -> dict[str, int]:
    """Counters for the supervisor: open, overdue, emergencies, claimed, being dialled, and
    missed calls `since` with a withheld number (no entry possible, but they count)."""
    rows = session.scalars(select(Callback).where(Callback.status == CALLBACK_OPEN)).all()
    anonymous = session.scalar(
        select(func.count())
        .select_from(CallEvent)
        # Through the call: behind a tenant wall, only its own calls count.
        .join(Call, Call.id == CallEvent.call_id)
        .where(CallEvent.kind == EVENT_CALLBACK_SKIPPED, CallEvent.at >= since)
    )
    return {
        "open": len(rows),
        "overdue": sum(1 for row in rows if policy.is_overdue(row.due_at, now)),
        "emergency": sum(1 for row in rows if row.priority == policy.Priority.EMERGENCY),
        "claimed": sum(1 for row in rows if claim_live(row, now)),
        "dialling": sum(1 for row in rows if row.active_call_id is not None),
        "anonymous_missed": int(anonymous or 0),
    }


# --- virtual hold -----------------------------------------------------------------------------


def virtual_hold_waiting(
    session: Session, now: datetime, rules: CallbackRules
) -> tuple[list[policy.HeldCallback], dict[str, int]]:
    """Virtual-hold entries ready to dial (in their places), and per queue how many are being
    dialled right now (they already took a free operator)."""
    if rules.quiet.is_quiet(now):
        return [], {}
    rows = session.scalars(
        select(Callback).where(
            Callback.status == CALLBACK_OPEN,
            Callback.reason == policy.REASON_VIRTUAL_HOLD,
            # Outside the dial-out plan: for an operator to look at, never auto-dialled.
            Callback.refused_reason.is_(None),
        )
    ).all()
    held: list[policy.HeldCallback] = []
    dialling: dict[str, int] = {}
    for row in rows:
        queue = row.queue or "coordinator"
        if row.active_call_id is not None:
            dialling[queue] = dialling.get(queue, 0) + 1
        elif not claim_live(row, now) and (
            row.next_attempt_at is None or row.next_attempt_at <= now
        ):
            held.append(policy.HeldCallback(row.id, queue, row.placed_at or row.created_at))
    return held, dialling


# --- escalation ------------------------------------------------------------------------------


def overdue(session: Session, now: datetime) -> list[Callback]:
    """Open entries past their deadline that nobody has been alerted about yet."""
    return list(
        session.scalars(
            select(Callback)
            .where(
                Callback.status == CALLBACK_OPEN,
                policy.overdue_condition(Callback.due_at, now),
                Callback.escalated_at.is_(None),
            )
            .order_by(Callback.due_at, Callback.id)
        )
    )


def mark_escalated(session: Session, callback_id: int, now: datetime) -> bool:
    """True for the one process that marks it (several routers may run the job)."""
    result = session.execute(
        update(Callback)
        .where(Callback.id == callback_id, Callback.escalated_at.is_(None))
        .values(escalated_at=now)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    record_history(session, callback_id, ACTION_ESCALATED, now)
    return True
