"""The call-control audit (`control_actions`): one row per action a supervisor asked for -
hang up, move, monitor, an operator's pause/unpause/logout/queues - whatever happened, and the
rows read back behind the tenant wall."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router.control_models import ControlAction
from call_router.db import Database
from call_router.models import Operator, utcnow

log = structlog.get_logger(__name__)


def write_audit(
    db: Database,
    by: str,
    action: str,
    *,
    call_id: int | None,
    tenant: int | None,
    operator: str | None,
    target: str | None,
    result: str,
    detail: str | None,
) -> None:
    """One audit row; `by` is who acted (dashboard.deps.Actor.by, `cli:<user>`)."""
    row = ControlAction(
        at=utcnow(),
        by=by[:80],
        action=action,
        call_id=call_id,
        operator=operator,
        target=target,
        result=result,
        detail=(detail or None) and detail[:255],
        tenant_id=tenant,
    )
    with db.session() as session:
        session.add(row)
    log.info(
        "call_control",
        action=action,
        by=by[:80],
        call_id=call_id,
        operator=operator,
        target=target,
        result=result,
    )


def audit_agent(
    db: Database, by: str, action: str, login: str, *, target: str | None, error: str | None
) -> None:
    """The audit row of a supervisor's pause/unpause/logout/queues of an operator (the changes
    themselves are call_router/agents.py)."""
    with db.session() as session:
        tenant = session.scalar(select(Operator.tenant_id).where(Operator.sip_login == login))
    write_audit(
        db,
        by,
        action,
        call_id=None,
        tenant=tenant,
        operator=login[:64],
        target=(target or None) and str(target)[:64],
        result="ok" if error is None else "refused",
        detail=error,
    )


def audit_rows(
    session: Session, *, limit: int = 200, before: datetime | None = None
) -> list[ControlAction]:
    """The newest audit rows this session may see (behind its tenant wall)."""
    statement = select(ControlAction).order_by(ControlAction.id.desc()).limit(limit)
    if before is not None:
        statement = statement.where(ControlAction.at < before)
    return list(session.scalars(statement))
