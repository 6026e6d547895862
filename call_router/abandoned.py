"""The list of callers who were not answered: who, when, how long they waited, whether and when
they were called back.

Supervisors are asked "why did people wait?", and a percentage of abandoned calls does not
answer it: the list does. A caller counts here when they reached a queue and left it
unanswered (`outcomes.MISSED_OUTCOMES`: hung up while waiting, timed out, queue full, no
operator). "Called back" is the first call an operator placed to that number afterwards
(click-to-call rows: `Call.direction` callback), and the callback entry the call
went to is the one for that number that was open when the caller left.

Every read is an ORM statement: the tenant wall (call_router/tenant_wall.py) applies, so a tenant
sees its own callers only.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from call_router import service_figures
from call_router.models import DIRECTION_CALLBACK, DIRECTION_INBOUND, Call, Callback
from call_router.outcomes import MISSED_OUTCOMES
from call_router.service_figures import PLAIN

MAX_ROWS: Final = 5000
# A callback entry is written when the caller leaves; allow for the router writing it a little
# after the call's end time.
ENTRY_SLACK: Final = timedelta(minutes=2)


@dataclass(frozen=True)
class AbandonedCall:
    call_id: int
    started_at: datetime
    caller_number: str
    caller_name: str | None
    queue: str | None
    outcome: str | None
    waited_seconds: int | None
    callback_id: int | None
    callback_status: str | None
    called_back_at: datetime | None
    called_back_by: str | None
    callback_answered: bool | None
    tenant: str | None


def _waited(call: Call) -> int | None:
    if call.wait_seconds is not None:
        return call.wait_seconds
    # Not answered: from joining the queue to hanging up (unknown while either is missing).
    wait = service_figures.queue_wait(PLAIN, None, call.queue_joined_at, None, call.ended_at, None)
    return None if wait is None else max(0, int(wait))


def abandoned_calls(
    session: Session,
    since: datetime,
    until: datetime,
    *,
    queue: str | None = None,
    limit: int = MAX_ROWS,
) -> list[AbandonedCall]:
    """Unanswered queue callers who called in [since, until), newest first."""
    stmt = (
        select(Call)
        .options(selectinload(Call.tenant))
        .where(
            Call.started_at >= since,
            Call.started_at < until,
            Call.outcome.in_(sorted(MISSED_OUTCOMES)),
            Call.answered_at.is_(None),
            Call.direction == DIRECTION_INBOUND,
        )
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(limit)
    )
    if queue:
        stmt = stmt.where(Call.queue == queue)
    calls = list(session.scalars(stmt))
    if not calls:
        return []
    numbers = sorted({c.caller_number for c in calls})
    # Operators' calls to these numbers after the first abandon, oldest first.
    outbound: dict[str, list[Call]] = defaultdict(list)
    placed = (
        select(Call)
        .where(
            Call.direction == DIRECTION_CALLBACK,
            Call.caller_number.in_(numbers),
            Call.started_at >= since,
        )
        .order_by(Call.started_at, Call.id)
    )
    for call in session.scalars(placed):
        outbound[call.caller_number].append(call)
    entries: dict[str, list[Callback]] = defaultdict(list)
    listed = (
        select(Callback)
        .where(Callback.caller_number.in_(numbers), Callback.created_at < until + ENTRY_SLACK)
        .where((Callback.closed_at.is_(None)) | (Callback.closed_at >= since))
        .order_by(Callback.created_at, Callback.id)
    )
    for listed_entry in session.scalars(listed):
        entries[listed_entry.caller_number].append(listed_entry)
    rows = []
    for call in calls:
        left = call.ended_at or call.started_at
        later = outbound.get(call.caller_number, [])
        index = bisect_right([c.started_at for c in later], call.started_at)
        back = later[index] if index < len(later) else None
        entry = next(
            (
                e
                for e in entries.get(call.caller_number, [])
                if e.created_at <= left + ENTRY_SLACK
                and (e.closed_at is None or e.closed_at >= call.started_at)
            ),
            None,
        )
        rows.append(
            AbandonedCall(
                call_id=call.id,
                started_at=call.started_at,
                caller_number=call.caller_number,
                caller_name=call.caller_name,
                queue=call.queue,
                outcome=call.outcome,
                waited_seconds=_waited(call),
                callback_id=entry.id if entry is not None else None,
                callback_status=entry.status if entry is not None else None,
                called_back_at=back.started_at if back is not None else None,
                called_back_by=back.operator if back is not None else None,
                callback_answered=(back.answered_at is not None) if back is not None else None,
                tenant=call.tenant_slug,
            )
        )
    return rows
