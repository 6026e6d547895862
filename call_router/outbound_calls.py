"""A call we place to a resident (an operator's click-to-call, the automatic "is it fixed?"
call): its call-log row and the timeline entry that says why, written before Asterisk is asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from call_router.models import Call, CallEvent


def open_outbound_call(
    session: Session,
    *,
    linkedid: str,
    phone: str,
    direction: str,
    tenant_id: int | None,
    at: datetime,
    kind: str,
    data: dict[str, Any],
    **columns: Any,
) -> Call:
    """The row (the resident's number as its caller and dialled number) and its first entry,
    `kind` (its key too: one per call)."""
    call = Call(
        linkedid=linkedid,
        caller_number=phone,
        dialed_number=phone[:32],
        started_at=at,
        direction=direction,
        tenant_id=tenant_id,
        **columns,
    )
    session.add(call)
    session.flush()
    session.add(CallEvent(call_id=call.id, at=at, kind=kind, key=kind, data=data))
    session.flush()
    return call
