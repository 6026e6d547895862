"""The operator's answer after a call: category, note, whether a callout request was created.

One disposition per call; saving again replaces the current one (the operator corrects a typo)
and keeps the creation time, and every save is also kept in `call_disposition_changes`: who
changed what, when; nothing is overwritten without a trace. Categories are a closed list
(settings.disposition_categories) so reports can count them; the note is free text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router.agent_models import CallDisposition, CallDispositionChange
from call_router.models import Call
from call_router.screen_pop import OperatorIdentity, connected_interface, operator_identity

MAX_NOTE = 4000


class DispositionError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # stable id for the API: "call_not_found", "bad_category"


@dataclass(frozen=True)
class DispositionInput:
    category: str
    note: str | None
    callout_created: bool
    operator: str | None = None
    # Who saves it: a dashboard user or `token:<name>` (a supervisor saving for `operator`).
    changed_by: str | None = None


def save_disposition(
    session: Session,
    call_id: int,
    data: DispositionInput,
    *,
    categories: tuple[str, ...] | list[str],
    now: datetime,
    only_own: bool = False,
) -> CallDisposition:
    """Save (or correct) the call's disposition and add the save to its history.

    `only_own`: the saver is an operator, who may neither replace a disposition another
    operator saved nor file the first one on a call another operator answered (a supervisor
    may; the history shows both).
    """
    call = session.get(Call, call_id)
    if call is None:
        raise DispositionError("call_not_found", f"no call {call_id}")
    category = data.category.strip().lower()
    if category not in categories:
        raise DispositionError(
            "bad_category", f"unknown category {data.category!r}; one of: {', '.join(categories)}"
        )
    note = (data.note or "").strip()[:MAX_NOTE] or None
    # Default: the operator who answered the call (a supervisor saving without naming one).
    operator = (data.operator or "").strip()[:64] or call.operator
    if only_own and call.operator is not None and not _answered_by(session, call, operator or ""):
        raise DispositionError(
            "not_yours", f"call {call_id} was answered by operator {call.operator}"
        )
    row = session.scalar(
        select(CallDisposition).where(CallDisposition.call_id == call_id).with_for_update()
    )
    if row is None:
        row = CallDisposition(call_id=call_id, created_at=now)
        session.add(row)
    elif only_own and row.operator not in (None, operator):
        raise DispositionError(
            "not_yours", f"call {call_id}'s disposition was saved by operator {row.operator}"
        )
    row.category = category
    row.note = note
    row.callout_created = data.callout_created
    row.operator = operator
    row.changed_by = data.changed_by
    row.updated_at = now
    session.add(
        CallDispositionChange(
            call_id=call_id,
            at=now,
            category=category,
            note=note,
            callout_created=data.callout_created,
            operator=operator,
            changed_by=data.changed_by,
        )
    )
    session.flush()
    return row


def _answered_by(session: Session, call: Call, login: str) -> bool:
    """Whether `login` answered the call: the phone of its AgentConnect when there is one (it
    tells apart two operators with one roster name, and survives a renamed operator), else
    the call log's operator (the roster name, as the queue names members, or the login)."""
    who = operator_identity(session, login) or OperatorIdentity(login, login)
    interface = connected_interface(call)
    if interface is not None:
        return interface == who.interface
    return call.operator in who.names


def get_disposition(session: Session, call_id: int) -> CallDisposition | None:
    return session.scalar(select(CallDisposition).where(CallDisposition.call_id == call_id))


def disposition_history(session: Session, call_id: int) -> list[CallDispositionChange]:
    """Every save of the call's disposition, oldest first."""
    return list(
        session.scalars(
            select(CallDispositionChange)
            .where(CallDispositionChange.call_id == call_id)
            .order_by(CallDispositionChange.at, CallDispositionChange.id)
        )
    )
