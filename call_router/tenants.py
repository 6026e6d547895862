"""Tenants: many management companies behind one contact centre, and the wall between them.

A *tenant* is a management company (or homeowners' association) the centre serves by contract.
Each call and callback belongs to one tenant, or (tenant_id NULL) to the centre itself. A
tenant's accounts and API tokens see only their tenant's rows; the centre's (no tenant) see all.

**The wall is here, in one place.** A `Scope` is put on a SQLAlchemy session
(`set_scope(session, scope)`; the dashboard does it for every request from its principal,
dashboard/deps.py). Every ORM SELECT, UPDATE and DELETE run in that session - `select(Call)`,
`session.get(Callback, id)`, a relationship load, an aggregate over `Call.queue` - gets
`tenant_id = <the scope's tenant>` added for each tenant-owned entity (`OWNED`: calls,
callbacks, the operators' roster), and the same wall through their owner for rows that belong
to a call (`OF_A_CALL`: dispositions and their history; meter readings, also by payer
account) or to an operator (`OF_AN_OPERATOR`: queue states, pauses and their log), by the
`do_orm_execute` hook below.
So a route cannot forget it: another tenant's row is simply not there (a guessed id is a 404,
never a 403 that would confirm it exists). A session without a scope (the router, the FastAGI
server, the CLI) sees everything. Redis's live state is not ORM either: a walled wallboard takes
from it only the calls and operators its ORM rows show (dashboard/routes/wallboard.py). Raw
SQL text is not ORM and is not filtered: keep tenant-visible reads in ORM statements.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import and_, event, false, or_, select
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from call_router.agent_models import (
    AgentState,
    AgentStateLog,
    CallDisposition,
    CallDispositionChange,
)
from call_router.control_models import ControlAction
from call_router.meter_models import MeterReading, PayerAccount, PayerMeter
from call_router.models import Call, Callback, Operator, utcnow
from call_router.request_models import (
    Crew,
    Open311Key,
    RequestAttachment,
    RequestCall,
    RequestEvent,
    ServiceRequest,
)
from call_router.tenant_models import Building, DialledNumber, ResidentPhone, Tenant, TenantQueue
from call_router.tenant_routing import SERVICES, tenant_queue_name

# The entities whose rows belong to a tenant (or, NULL, to the centre). Each has `tenant_id`.
OWNED: Final = (
    Call,
    Callback,
    Operator,
    Building,
    ResidentPhone,
    TenantQueue,
    ServiceRequest,
    RequestEvent,
    RequestCall,
    RequestAttachment,
    Crew,
    Open311Key,
    ControlAction,
    PayerAccount,
    PayerMeter,
)
# Rows that belong to a call: they are behind the wall of the call they belong to (its
# disposition, the disposition's history).
OF_A_CALL: Final = (CallDisposition, CallDispositionChange)
# Meter readings: the tenant's when phoned in during its call or given for its payer account
# (a resident of its building may phone the centre's number); one entered with no call (the
# CLI) for no tenant's account is the centre's.
OF_A_CALL_OR_ACCOUNT: Final = (MeterReading,)
# Rows keyed by an operator's SIP login: behind the wall of that operator (their queue state
# and pauses, and its log: the shift report's source).
OF_AN_OPERATOR: Final = (AgentState, AgentStateLog)

# `?tenant=centre`: the centre's own rows (tenant_id NULL). Never a tenant's slug.
CENTRE: Final = "centre"
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_SCOPE_KEY = "hotline_tenant_scope"


class TenantError(ValueError):
    """Bad input for a tenant operation; the message is safe to show."""


@dataclass(frozen=True)
class Scope:
    """Which rows a session may see.

    `tenant`: that tenant's id only; None with `centre_only` False: every row (the centre's
    staff); None with `centre_only` True: only the centre's own rows (tenant_id NULL).
    `nothing`: no tenant-owned row at all (a filter that names an unknown tenant).
    """

    tenant: int | None = None
    centre_only: bool = False
    nothing: bool = False

    @property
    def everything(self) -> bool:
        return self.tenant is None and not self.centre_only and not self.nothing

    def narrowed(self, other: Scope) -> Scope:
        """What both scopes allow: a filter (`?tenant=`) can only narrow the wall."""
        if self.nothing or other.nothing:
            return NOTHING
        if self.everything:
            return other
        if other.everything:
            return self
        if self == other:
            return self
        return NOTHING


EVERYTHING: Final = Scope()
CENTRE_ONLY: Final = Scope(centre_only=True)
NOTHING: Final = Scope(nothing=True)


def tenant_scope(tenant_id: int | None) -> Scope:
    """The wall of an account or token: its tenant's rows, or (None) all of them."""
    return EVERYTHING if tenant_id is None else Scope(tenant=tenant_id)


# The scope of the work in progress (the dashboard sets it per request, from the principal):
# every session opened while it is set is walled, so a route that opens its own session
# (a CSV stream, an SSE feed, a click-to-call) is behind the same wall as `SessionDep`.
_current: ContextVar[Scope] = ContextVar("hotline_tenant_scope", default=EVERYTHING)


def enter(scope: Scope) -> None:
    """Wall every ORM statement of the current context (asyncio task, and the threads it
    hands work to: they copy the context) to `scope`."""
    _current.set(scope)


def current() -> Scope:
    return _current.get()


def set_scope(session: Session, scope: Scope) -> None:
    """Every later ORM statement in `session` sees only what `scope` allows (overrides the
    context's scope for this session: use `narrow` to only ever narrow it)."""
    session.info[_SCOPE_KEY] = scope


def scope_of(session: Session) -> Scope:
    scope: Scope = session.info.get(_SCOPE_KEY) or _current.get()
    return scope


def _criteria(scope: Scope) -> Any:
    if scope.nothing:
        return lambda cls: false()
    if scope.centre_only:
        return lambda cls: cls.tenant_id.is_(None)
    tenant = scope.tenant
    return lambda cls: cls.tenant_id == tenant


def _call_criteria(scope: Scope) -> Any:
    """For rows of a call: the call is behind the wall."""
    if scope.nothing:
        return lambda cls: false()
    if scope.centre_only:
        return lambda cls: cls.call_id.in_(select(Call.id).where(Call.tenant_id.is_(None)))
    tenant = scope.tenant
    return lambda cls: cls.call_id.in_(select(Call.id).where(Call.tenant_id == tenant))


def _reading_criteria(scope: Scope) -> Any:
    # The accounts' table, not the entity: the wall must not narrow its own subquery (under
    # "centre only" it would hide exactly the tenants' accounts this rule has to see).
    accounts = PayerAccount.__table__.c
    if scope.nothing:
        return lambda cls: false()
    if scope.centre_only:
        return lambda cls: or_(
            cls.call_id.in_(select(Call.id).where(Call.tenant_id.is_(None))),
            and_(
                cls.call_id.is_(None),
                cls.payer_code.not_in(select(accounts.code).where(accounts.tenant_id.is_not(None))),
            ),
        )
    tenant = scope.tenant
    return lambda cls: or_(
        cls.call_id.in_(select(Call.id).where(Call.tenant_id == tenant)),
        cls.payer_code.in_(select(accounts.code).where(accounts.tenant_id == tenant)),
    )


def _operator_criteria(scope: Scope) -> Any:
    """For rows keyed by an operator's SIP login: the roster entry is behind the wall."""
    if scope.nothing:
        return lambda cls: false()
    if scope.centre_only:
        return lambda cls: cls.sip_login.in_(
            select(Operator.sip_login).where(Operator.tenant_id.is_(None))
        )
    tenant = scope.tenant
    return lambda cls: cls.sip_login.in_(
        select(Operator.sip_login).where(Operator.tenant_id == tenant)
    )


@event.listens_for(Session, "do_orm_execute")
def _apply_wall(state: ORMExecuteState) -> None:
    """The wall: every ORM statement of a scoped session is narrowed to the scope's rows."""
    scope = scope_of(state.session)
    if scope.everything:
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    options = [
        with_loader_criteria(entity, criteria, include_aliases=True)
        for entities, criteria in (
            (OWNED, _criteria(scope)),
            (OF_A_CALL, _call_criteria(scope)),
            (OF_A_CALL_OR_ACCOUNT, _reading_criteria(scope)),
            (OF_AN_OPERATOR, _operator_criteria(scope)),
        )
        for entity in entities
    ]
    state.statement = state.statement.options(*options)


# --- tenants ----------------------------------------------------------------------------------


def check_slug(slug: str) -> str:
    if not SLUG_RE.match(slug) or slug == CENTRE:
        raise TenantError(
            "slug: 1-32 of lowercase letters, digits and '-', starting with a letter or digit"
            f" (and not {CENTRE!r})"
        )
    return slug


def slug_from_name(name: str) -> str:
    """A slug made from a Latin-letter name (`Dom Service` -> `dom-service`); '' if none."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:32].strip("-")


def add_tenant(
    session: Session, name: str, *, slug: str | None = None, now: datetime | None = None
) -> Tenant:
    name = name.strip()
    if not name or len(name) > 128:
        raise TenantError("name: 1-128 characters")
    chosen = check_slug(slug if slug is not None else slug_from_name(name) or "x")
    if slug is None and not slug_from_name(name):
        raise TenantError("the name has no Latin letters or digits: give --slug")
    if get_tenant(session, chosen) is not None:
        raise TenantError(f"tenant {chosen!r} already exists")
    tenant = Tenant(slug=chosen, name=name, created_at=now or utcnow())
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, slug: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.slug == slug))


def require_tenant(session: Session, slug: str) -> Tenant:
    tenant = get_tenant(session, slug)
    if tenant is None:
        raise TenantError(f"no tenant {slug!r}")
    return tenant


def list_tenants(session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.slug)))


def slugs(session: Session) -> dict[int, str]:
    # Not dict(result): a Result has .keys(), so dict() would read it as a mapping.
    return {tenant_id: slug for tenant_id, slug in session.execute(select(Tenant.id, Tenant.slug))}


def filter_scope(session: Session, value: str | None) -> Scope:
    """The scope a `?tenant=` filter asks for: a slug, `centre`, or nothing (everything)."""
    if value is None or value == "":
        return EVERYTHING
    if value == CENTRE:
        return CENTRE_ONLY
    tenant = get_tenant(session, value)
    # An unknown slug matches nothing (no error: that would tell which slugs exist).
    return NOTHING if tenant is None else Scope(tenant=tenant.id)


def narrow(session: Session, value: str | None) -> None:
    """Narrow `session`'s wall by a `?tenant=` filter (never widens it)."""
    set_scope(session, scope_of(session).narrowed(filter_scope(session, value)))


# --- dialled numbers ----------------------------------------------------------------------


def clean_number(value: str) -> str:
    """A dialled number as the call log keeps it (call_log_sql.dialable: digits, + * #)."""
    number = "".join(ch for ch in value if ch.isascii() and (ch.isdigit() or ch in "+*#"))
    if not number or len(number) > 32:
        raise TenantError("number: 1-32 digits (+, * and # allowed)")
    return number


def add_number(
    session: Session, number: str, tenant_slug: str | None, *, now: datetime | None = None
) -> DialledNumber:
    """Point `number` at a tenant (or, `tenant_slug` None, at the centre); re-pointing an
    existing number moves it (calls already logged keep their tenant)."""
    clean = clean_number(number)
    tenant = require_tenant(session, tenant_slug) if tenant_slug is not None else None
    row = session.get(DialledNumber, clean)
    if row is None:
        row = DialledNumber(number=clean, created_at=now or utcnow())
        session.add(row)
    row.tenant_id = tenant.id if tenant is not None else None
    session.flush()
    return row


def list_numbers(session: Session) -> list[DialledNumber]:
    return list(session.scalars(select(DialledNumber).order_by(DialledNumber.number)))


def tenant_for_number(session: Session, dialled: str | None) -> int | None:
    """The tenant a call to `dialled` is for; None: the centre's (or an unknown number)."""
    if not dialled:
        return None
    return session.scalar(select(DialledNumber.tenant_id).where(DialledNumber.number == dialled))


def tenants_for_numbers(session: Session, dialled: set[str | None]) -> dict[str | None, int]:
    """`tenant_for_number` for many numbers in one query: the tenants' numbers only."""
    wanted = {number for number in dialled if number}
    if not wanted:
        return {}
    rows = session.execute(
        select(DialledNumber.number, DialledNumber.tenant_id).where(
            DialledNumber.number.in_(wanted), DialledNumber.tenant_id.is_not(None)
        )
    )
    return {number: tenant for number, tenant in rows.tuples() if tenant is not None}


def number_owners(session: Session) -> dict[str, int | None]:
    """Every registered number: its tenant's id, or None for the centre's."""
    rows = session.execute(select(DialledNumber.number, DialledNumber.tenant_id))
    return {number: tenant for number, tenant in rows}


# --- tenants' own queues -------------------------------------------------------------------


def parse_services(spec: str) -> list[str]:
    """`plumbing,heating` → the services; '' → none."""
    services: list[str] = []
    for item in (part.strip().lower() for part in spec.split(",")):
        if not item:
            continue
        if item not in SERVICES:
            raise TenantError(
                f"no service {item!r}; a tenant may have its own: {', '.join(SERVICES)}"
                " (coordinator and duty are the centre's)"
            )
        if item not in services:
            services.append(item)
    return services


def set_tenant_queues(session: Session, slug: str, services: list[str]) -> list[str]:
    """The tenant's own queues become exactly `services`; returns their queue names."""
    tenant = require_tenant(session, slug)
    current = {
        row.service: row
        for row in session.scalars(select(TenantQueue).where(TenantQueue.tenant_id == tenant.id))
    }
    for service, row in current.items():
        if service not in services:
            session.delete(row)
    for service in services:
        if service not in current:
            session.add(TenantQueue(tenant_id=tenant.id, service=service))
    session.flush()
    return [tenant_queue_name(tenant.id, service) for service in services]


def own_services(session: Session) -> dict[int, frozenset[str]]:
    """Tenant id → the services it has its own queues for."""
    found: dict[int, set[str]] = {}
    for tenant_id, service in session.execute(select(TenantQueue.tenant_id, TenantQueue.service)):
        found.setdefault(tenant_id, set()).add(service)
    return {tenant_id: frozenset(services) for tenant_id, services in found.items()}


def tenant_queue_names(session: Session) -> list[str]:
    """Every tenant's own queue, for queues.conf and the dialplan."""
    rows = session.execute(
        select(TenantQueue.tenant_id, TenantQueue.service).order_by(
            TenantQueue.tenant_id, TenantQueue.service
        )
    )
    return [tenant_queue_name(tenant_id, service) for tenant_id, service in rows]
