"""The operator's answer after a call: category, note, whether a callout request was created.

One disposition per call; saving again replaces it (the operator corrects a typo) and keeps the
creation time. Categories are a closed list (settings.disposition_categories) so reports can
count them; the note is free text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router.agent_models import CallDisposition
from call_router.models import Call

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


def save_disposition(
    session: Session,
    call_id: int,
    data: DispositionInput,
    *,
    categories: tuple[str, ...] | list[str],
    now: datetime,
) -> CallDisposition:
    call = session.get(Call, call_id)
    if call is None:
        raise DispositionError("call_not_found", f"no call {call_id}")
    category = data.category.strip().lower()
    if category not in categories:
        raise DispositionError(
            "bad_category", f"unknown category {data.category!r}; one of: {', '.join(categories)}"
        )
    note = (data.note or "").strip()[:MAX_NOTE] or None
    row = session.scalar(select(CallDisposition).where(CallDisposition.call_id == call_id))
    if row is None:
        row = CallDisposition(call_id=call_id, created_at=now)
        session.add(row)
    row.category = category
    row.note = note
    row.callout_created = data.callout_created
    # Default: the operator who answered the call (the API has no accounts yet).
    row.operator = (data.operator or "").strip()[:64] or call.operator
    row.updated_at = now
    session.flush()
    return row


def get_disposition(session: Session, call_id: int) -> CallDisposition | None:
    return session.scalar(select(CallDisposition).where(CallDisposition.call_id == call_id))
