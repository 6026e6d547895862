"""A coordinator places a call that arrived unknown with its company (the screen-pop's
"company" choice): the call, and the callbacks opened from it, become that tenant's.

Only a call that is still the centre's can be placed (an UPDATE … WHERE tenant_id IS NULL: of
two coordinators choosing at once, one wins, the other is told). Who may do it is the
dashboard's rule (`auth.CENTRE_STAFF`: the centre's operators and supervisors, never a
tenant's account); this module only checks the facts. The choice is on the call's timeline
(`tenant`, source `coordinator`, who chose).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from call_router.models import CALLBACK_OPEN, Call, Callback, CallEvent
from call_router.tenants import require_tenant

SOURCE = "coordinator"


class CallNotFound(LookupError):
    """No such call behind the reader's wall."""


class AlreadyPlaced(ValueError):
    """The call already belongs to a tenant; the message names whose."""


def place_call(session: Session, call_id: int, slug: str, *, by: str, now: datetime) -> Call:
    """The call becomes `slug`'s. Raises CallNotFound, TenantError (no such tenant) or
    AlreadyPlaced."""
    call = session.get(Call, call_id)
    if call is None:
        raise CallNotFound(call_id)
    tenant = require_tenant(session, slug)
    moved = session.execute(
        update(Call)
        .where(Call.id == call_id, Call.tenant_id.is_(None))
        .values(tenant_id=tenant.id, tenant_source=SOURCE)
        .execution_options(synchronize_session=False)
    )
    if getattr(moved, "rowcount", 0) != 1:
        session.refresh(call)
        raise AlreadyPlaced("the call already belongs to a company")
    session.add(
        CallEvent(
            call_id=call_id,
            at=now,
            kind="tenant",
            key=f"tenant:{SOURCE}",
            data={"tenant_id": tenant.id, "tenant": tenant.slug, "source": SOURCE, "by": by},
        )
    )
    _move_callbacks(session, call_id, tenant.id)
    session.flush()
    session.refresh(call)
    return call


def _move_callbacks(session: Session, call_id: int, tenant_id: int) -> None:
    """Open callbacks opened from this call follow it, unless the tenant already owes that
    number a call back (one open entry per tenant and number): then the centre's stays."""
    entries = session.scalars(
        select(Callback).where(
            Callback.last_call_id == call_id,
            Callback.tenant_id.is_(None),
            Callback.status == CALLBACK_OPEN,
        )
    ).all()
    for entry in entries:
        try:
            with session.begin_nested():
                entry.tenant_id = tenant_id
                session.flush()
        except IntegrityError:
            session.refresh(entry)
