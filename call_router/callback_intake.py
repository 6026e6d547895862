# The callback list's intake: a missed call opens the number's entry or attaches to it, and
# reaching an operator closes it (one open entry per tenant and number).

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from call_router import callback_policy as policy
from call_router.callback_models import (
    ACTION_ATTACHED,
    ACTION_CLOSED,
    ACTION_CREATED,
)
from call_router.callbacks import (
    CallbackRules,
    close_entry,
    default_rules,
    of_tenant,
    rank_entry,
    record_history,
)
from call_router.models import CALLBACK_OPEN, Call, Callback
from call_router.numbers import is_anonymous, normalize_number

log = structlog.get_logger(__name__)


def open_or_attach(
    session: Session,
    *,
    caller_number: str,
    reason: str,
    queue: str | None,
    call_id: int | None,
    now: datetime,
    intent: str | None = None,
    placed_at: datetime | None = None,
    rules: CallbackRules | None = None,
) -> Callback | None:
    """The number's open entry, created or with this miss attached; None for anonymous callers.

    Replaying the same call (same call_id) does not count a second attempt. `intent` defaults
    to the call's recorded intent; `placed_at` (virtual hold) is the caller's place in the queue.
    """
    rules = rules or default_rules()
    # Writers may pass any spelling (8 495…, +7 495…): one resident, one key (E.164).
    caller_number = normalize_number(caller_number, rules.country)
    if is_anonymous(caller_number):
        log.info("callback_skipped_anonymous", call_id=call_id, reason=reason)
        return None
    # The entry belongs to the call's tenant (call_router/tenant_wall.py); no call: the centre's.
    tenant_id: int | None = None
    if call_id is not None:
        row = session.execute(select(Call.intent, Call.tenant_id).where(Call.id == call_id)).first()
        if row is not None:
            intent = intent if intent is not None else row.intent
            tenant_id = row.tenant_id
    existing = _open_entry(session, caller_number, tenant_id)
    if existing is None:
        created = _try_create(
            session, caller_number, reason, queue, call_id, now, intent, placed_at, rules, tenant_id
        )
        if created is not None:
            return created
        # Another process opened the entry between our read and insert: attach to theirs.
        existing = _open_entry(session, caller_number, tenant_id)
        if existing is None:  # it was closed again in between; nothing sane left to do
            return _try_create(
                session,
                caller_number,
                reason,
                queue,
                call_id,
                now,
                intent,
                placed_at,
                rules,
                tenant_id,
            )
    if call_id is not None and existing.last_call_id == call_id:
        return existing
    if placed_at is not None and existing.placed_at is not None:
        # Pressing 1 again in a later call keeps the place the resident already holds.
        placed_at = min(placed_at, existing.placed_at)
    # A promise to call back in the caller's place (virtual hold) stands, whatever the
    # resident's later calls did (an abandon does not move it to the operators' list).
    kept_reason = existing.reason if existing.reason == policy.REASON_VIRTUAL_HOLD else reason
    # attempts + 1 in SQL, so two concurrent attaches both count.
    session.execute(
        update(Callback)
        .where(Callback.id == existing.id)
        .values(
            attempts=Callback.attempts + 1,
            updated_at=now,
            last_call_id=call_id,
            reason=kept_reason,
            queue=queue if queue is not None else Callback.queue,
            intent=intent if intent is not None else Callback.intent,
            placed_at=placed_at if placed_at is not None else Callback.placed_at,
        )
    )
    session.refresh(existing)
    rank_entry(existing, rules, now)
    record_history(
        session, existing.id, ACTION_ATTACHED, now, call_id=call_id, data={"reason": reason}
    )
    return existing


def close_for_number(
    session: Session,
    number: str,
    reason: str,
    now: datetime,
    *,
    tenant_id: int | None = None,
) -> int:
    """Close the number's open entry with `tenant_id` (None: the centre's), e.g. the resident
    later reached that tenant's operator; the number's entries with other tenants stay open."""
    if is_anonymous(number):
        return 0
    ids = list(
        session.scalars(
            select(Callback.id).where(
                Callback.caller_number == number,
                Callback.status == CALLBACK_OPEN,
                of_tenant(tenant_id),
            )
        )
    )
    closed = 0
    for entry_id in ids:
        closed += close_entry(session, entry_id, now, note=reason, outcome=None, operator=None)
        record_history(session, entry_id, ACTION_CLOSED, now, note=reason)
    return closed


def _open_entry(session: Session, number: str, tenant_id: int | None) -> Callback | None:
    """The open entry of `number` with this tenant (at most one: uq_callbacks_open_number)."""
    return session.scalars(
        select(Callback).where(
            Callback.caller_number == number,
            Callback.status == CALLBACK_OPEN,
            of_tenant(tenant_id),
        )
    ).first()


def _try_create(
    session: Session,
    number: str,
    reason: str,
    queue: str | None,
    call_id: int | None,
    now: datetime,
    intent: str | None,
    placed_at: datetime | None,
    rules: CallbackRules,
    tenant_id: int | None = None,
) -> Callback | None:
    entry = Callback(
        tenant_id=tenant_id,
        caller_number=number,
        status=CALLBACK_OPEN,
        reason=reason,
        queue=queue,
        attempts=1,
        last_call_id=call_id,
        created_at=now,
        updated_at=now,
        intent=intent,
        placed_at=placed_at,
        tries=0,
        # Kept on the list (the operators see who called and why we will not dial them).
        refused_reason=rules.plan.refusal(number),
    )
    rank_entry(entry, rules, now)
    try:
        # A savepoint: losing the race must not roll back the caller's whole transaction.
        with session.begin_nested():
            session.add(entry)
    except IntegrityError:
        return None
    data: dict[str, Any] = {"reason": reason}
    if entry.refused_reason is not None:
        data["refused"] = entry.refused_reason
        log.warning("callback_number_refused", callback_id=entry.id, refused=entry.refused_reason)
    record_history(session, entry.id, ACTION_CREATED, now, call_id=call_id, data=data)
    return entry
