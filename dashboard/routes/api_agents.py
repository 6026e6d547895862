"""`/api/agents`: operators' queue log-in, log-out and pauses (the dashboard's agent panel).

Each change is stored first (the database holds the desired state), then applied to Asterisk
over this process's one AMI link (dashboard/deps.py `AmiDep`: logged in once, not per
request). If Asterisk cannot be reached the change is kept and the router applies it when it
reconnects; the answer then says `"pending": true`.

An operator changes only their own state; a supervisor (or supervisor token) may change
anyone's, and each such change is written to the call-control audit (`control_actions`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, Field

from call_router.agents import AgentService, AgentView
from call_router.ami_client import AmiActionFailed, AmiSender, AmiUnavailable
from call_router.call_control.audit import audit_agent
from call_router.db import Database
from call_router.operators import RosterError
from dashboard.deps import Actor, ActorDep, AmiDep, DatabaseDep
from dashboard.routes.schemas import Timestamp

router = APIRouter(prefix="/api/agents", tags=["agents"])
# Supervisors only (dashboard/main.py includes it under SUPERVISOR_ONLY): queues and penalties.
supervised = APIRouter(prefix="/api/agents", tags=["agents"])
log = structlog.get_logger(__name__)


class AgentQueueOut(BaseModel):
    queue: str
    penalty: int
    paused: bool


class AgentOut(BaseModel):
    login: str
    name: str
    # logged_out, offline, paused, busy, ringing, wrapup, free (unknown: Asterisk unreachable)
    state: str
    logged_in: bool
    paused: bool
    pause_reason: str | None
    device: str
    since: Timestamp | None
    queues: list[AgentQueueOut]
    pending: bool

    @classmethod
    def of(cls, view: AgentView) -> AgentOut:
        return cls(
            login=view.login,
            name=view.name,
            state=view.state,
            logged_in=view.logged_in,
            paused=view.paused,
            pause_reason=view.pause_reason,
            device=view.device,
            since=view.since,
            queues=[
                AgentQueueOut(queue=q.queue, penalty=q.penalty, paused=q.paused)
                for q in view.queues
            ],
            pending=view.pending,
        )


class LoginIn(BaseModel):
    # None: all the operator's skills.
    queues: list[str] | None = None


class PauseIn(BaseModel):
    reason: str = Field(min_length=1, max_length=64)


class QueueIn(BaseModel):
    queue: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    # The range itself is checked once, by the roster (call_router.operators.PENALTY_MAX).
    penalty: int = Field(default=0, ge=-(2**31), le=2**31 - 1)


class QueuesIn(BaseModel):
    queues: list[QueueIn] = Field(min_length=1, max_length=64)


Change = Callable[[AgentService, AmiSender | None], Awaitable[AgentView]]


async def _apply(
    ami: AmiDep,
    db: DatabaseDep,
    login: str,
    change: Change,
    *,
    audit: tuple[Actor, str, str | None] | None = None,
) -> AgentOut:
    """`audit`: (actor, action, target) - audited when a supervisor acts."""
    service = AgentService(db)
    error: str | None = None
    try:
        try:
            view = await change(service, ami)
        except AmiUnavailable as exc:
            # Stored anyway: the router applies it when Asterisk is back (pending = true).
            log.warning("agents_api_ami_unavailable", error=str(exc), login=login)
            view = await change(service, None)
    except RosterError as exc:
        error = str(exc)
        status = 404 if error.startswith(("no operator", "unknown queue")) else 409
        if "penalty" in error or "listed twice" in error:
            status = 422
        raise HTTPException(status_code=status, detail=str(exc)) from exc
    except AmiActionFailed as exc:
        error = f"Asterisk refused {exc}"
        raise HTTPException(status_code=502, detail=f"Asterisk refused {exc}") from exc
    finally:
        if audit is not None and not audit[0].is_operator:
            await _audit(db, audit, login, error)
    return AgentOut.of(view)


async def _audit(
    db: Database, audit: tuple[Actor, str, str | None], login: str, error: str | None
) -> None:
    import asyncio

    actor, action, target = audit
    # The audit lives with call control's (one table).
    await asyncio.to_thread(audit_agent, db, actor.by, action, login, target=target, error=error)


@router.get("", response_model=list[AgentOut])
async def list_agents(ami: AmiDep, db: DatabaseDep) -> list[AgentOut]:
    service = AgentService(db)
    try:
        views = await service.views(ami)
    except AmiUnavailable:
        views = await service.views(None)
    return [AgentOut.of(v) for v in views]


@router.post("/{login}/login", response_model=AgentOut)
async def login(
    login: str,
    ami: AmiDep,
    db: DatabaseDep,
    actor: ActorDep,
    body: Annotated[LoginIn | None, Body()] = None,
) -> AgentOut:
    actor.operator(login)  # an operator changes only their own state (403 otherwise)
    queues = body.queues if body else None
    return await _apply(
        ami,
        db,
        login,
        lambda s, a: s.login(a, login, queues, "api"),
        audit=(actor, "login", ",".join(queues) if queues else None),
    )


@router.post("/{login}/logout", response_model=AgentOut)
async def logout(login: str, ami: AmiDep, db: DatabaseDep, actor: ActorDep) -> AgentOut:
    actor.operator(login)
    return await _apply(
        ami,
        db,
        login,
        lambda s, a: s.logout(a, login, "api"),
        audit=(actor, "logout", None),
    )


@router.post("/{login}/pause", response_model=AgentOut)
async def pause(
    login: str, body: PauseIn, ami: AmiDep, db: DatabaseDep, actor: ActorDep
) -> AgentOut:
    actor.operator(login)
    return await _apply(
        ami,
        db,
        login,
        lambda s, a: s.pause(a, login, body.reason, "api"),
        audit=(actor, "pause", body.reason),
    )


@router.post("/{login}/unpause", response_model=AgentOut)
async def unpause(login: str, ami: AmiDep, db: DatabaseDep, actor: ActorDep) -> AgentOut:
    actor.operator(login)
    return await _apply(
        ami,
        db,
        login,
        lambda s, a: s.unpause(a, login, "api"),
        audit=(actor, "unpause", None),
    )


@supervised.post("/{login}/queues", response_model=AgentOut)
async def set_queues(
    login: str, body: QueuesIn, ami: AmiDep, db: DatabaseDep, actor: ActorDep
) -> AgentOut:
    """The operator's queues and penalties, changed live and kept in the roster (a reload or a
    re-render keeps them). Supervisors only; audited."""
    spec = ",".join(f"{q.queue}:{q.penalty}" for q in body.queues)
    return await _apply(
        ami,
        db,
        login,
        lambda s, a: s.set_queues(a, login, spec, "api"),
        audit=(actor, "queues", spec),
    )
