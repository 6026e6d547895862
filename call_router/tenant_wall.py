"""The wall between tenants (management companies behind one contact centre).

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

from contextvars import ContextVar
from dataclasses import dataclass
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
from call_router.models import Call, Callback, Operator
from call_router.request_models import (
    Crew,
    Open311Key,
    RequestAttachment,
    RequestCall,
    RequestEvent,
    ServiceRequest,
)
from call_router.tenant_models import Building, ResidentPhone, Tenant, TenantQueue

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
_SCOPE_KEY = "hotline_tenant_scope"


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


# --- `?tenant=` filters ------------------------------------------------------------------------


def filter_scope(session: Session, value: str | None) -> Scope:
    """The scope a `?tenant=` filter asks for: a slug, `centre`, or nothing (everything)."""
    if value is None or value == "":
        return EVERYTHING
    if value == CENTRE:
        return CENTRE_ONLY
    tenant = session.scalar(select(Tenant.id).where(Tenant.slug == value))
    # An unknown slug matches nothing (no error: that would tell which slugs exist).
    return NOTHING if tenant is None else Scope(tenant=tenant)


def narrow(session: Session, value: str | None) -> None:
    """Narrow `session`'s wall by a `?tenant=` filter (never widens it)."""
    set_scope(session, scope_of(session).narrowed(filter_scope(session, value)))
