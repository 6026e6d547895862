"""The operator's screen-pop: the call they are talking to, who is calling and what about,
the caller's earlier calls and open callback entries; and their last call for the disposition.

Which call an operator is on: the call log's row carries the operator as the queue names them
(the roster name, AgentConnect's MemberName) for inbound calls and as the SIP login for
click-to-call; the AgentConnect event's `interface` (PJSIP/<login>) confirms it. Redis' live
calls hash, when the dashboard can read it, says which rows are really still up (a row whose
hang-up the router missed stays "open" in the database).

Read-only; every function takes the caller's session.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from call_router import service_figures
from call_router.call_event_kinds import EVENT_CONNECT
from call_router.models import CALLBACK_OPEN, Call, Callback, Operator
from call_router.numbers import is_anonymous
from call_router.service_figures import PLAIN

# A call "in progress" longer than this is a row whose end was never written.
STALE_CALL = timedelta(hours=12)
PREVIOUS_CALLS = 10


@dataclass(frozen=True)
class OperatorIdentity:
    login: str
    name: str

    @property
    def names(self) -> tuple[str, ...]:
        """How the call log may name this operator (roster name, SIP login)."""
        return (self.name, self.login) if self.name != self.login else (self.login,)

    @property
    def interface(self) -> str:
        return f"PJSIP/{self.login}"


def operator_identity(session: Session, login: str) -> OperatorIdentity | None:
    op = session.scalar(select(Operator).where(Operator.sip_login == login))
    return OperatorIdentity(op.sip_login, op.name) if op is not None else None


def connected_interface(call: Call) -> str | None:
    """The interface of the latest AgentConnect of the call (None if it has none)."""
    for event in reversed(call.events):
        if event.kind == EVENT_CONNECT and isinstance(event.data, dict):
            interface = event.data.get("interface")
            return str(interface) if interface else None
    return None


def is_operators_call(call: Call, who: OperatorIdentity) -> bool:
    """The call row names this operator; when it has an AgentConnect, that confirms it (two
    operators with one roster name are told apart by their phones)."""
    if call.operator not in who.names:
        return False
    interface = connected_interface(call)
    return interface is None or interface == who.interface


def pick_current(candidates: Sequence[Call], live_linkedids: Collection[str] | None) -> Call | None:
    """The newest candidate that is still up: in the live hash when Redis answered, else the
    newest row with no end."""
    for call in candidates:
        if live_linkedids is None or call.linkedid in live_linkedids:
            return call
    return None


def current_call(
    session: Session,
    who: OperatorIdentity,
    now: datetime,
    live_linkedids: Collection[str] | None = None,
) -> Call | None:
    """The answered, not yet ended call this operator is on."""
    rows = session.scalars(
        select(Call)
        .options(selectinload(Call.events))
        .where(
            Call.operator.in_(who.names),
            Call.answered_at.is_not(None),
            Call.ended_at.is_(None),
            Call.started_at >= now - STALE_CALL,
        )
        .order_by(Call.answered_at.desc(), Call.id.desc())
        .limit(5)
    ).all()
    return pick_current([c for c in rows if is_operators_call(c, who)], live_linkedids)


def last_call(session: Session, who: OperatorIdentity) -> Call | None:
    """The operator's most recent answered call (the current one while it lasts)."""
    rows = session.scalars(
        select(Call)
        .options(selectinload(Call.events))
        .where(Call.operator.in_(who.names), Call.answered_at.is_not(None))
        .order_by(Call.answered_at.desc(), Call.id.desc())
        .limit(5)
    ).all()
    return next((c for c in rows if is_operators_call(c, who)), None)


def previous_calls(
    session: Session, number: str, *, exclude: int | None, limit: int = PREVIOUS_CALLS
) -> list[Call]:
    """The number's earlier calls, newest first; none for withheld numbers (they are not one
    caller)."""
    if is_anonymous(number):
        return []
    stmt = select(Call).where(Call.caller_number == number)
    if exclude is not None:
        stmt = stmt.where(Call.id != exclude)
    return list(session.scalars(stmt.order_by(Call.started_at.desc(), Call.id.desc()).limit(limit)))


def open_callbacks(
    session: Session, number: str, *, closed_since: datetime | None = None
) -> list[Callback]:
    """The number's open callback entries, and those closed since `closed_since`: the call
    being answered closes them (the resident reached an operator), yet the operator should
    still see that this resident had been waiting for a call-back."""
    if is_anonymous(number):
        return []
    wanted = Callback.status == CALLBACK_OPEN
    if closed_since is not None:
        wanted = or_(wanted, Callback.closed_at >= closed_since)
    return list(
        session.scalars(
            select(Callback)
            .where(Callback.caller_number == number, wanted)
            .order_by(Callback.created_at)
        )
    )


def wait_seconds(call: Call) -> int | None:
    """Seconds the caller waited for an operator: the router's figure, else from the times."""
    if call.wait_seconds is not None:
        return call.wait_seconds
    if call.answered_at is None:
        return None
    joined = call.queue_joined_at or call.started_at
    wait = service_figures.queue_wait(PLAIN, None, joined, call.answered_at, None, None)
    return max(0, int(wait))
