"""`/api/agents`: operators' queue log-in, log-out and pauses (the dashboard's agent panel).

Each change is stored first (the database holds the desired state), then applied to Asterisk
over a short AMI connection. If Asterisk cannot be reached the change is kept and the router
applies it when it reconnects; the answer then says `"pending": true`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, Field

from call_router.agents import AgentService, AgentView
from call_router.ami_client import AmiActionFailed, AmiClient, AmiSender, AmiUnavailable
from call_router.operators import RosterError
from dashboard.deps import ActorDep, DatabaseDep, SettingsDep
from dashboard.routes.schemas import Timestamp

router = APIRouter(prefix="/api/agents", tags=["agents"])
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


Change = Callable[[AgentService, AmiSender | None], Awaitable[AgentView]]


async def _apply(settings: SettingsDep, db: DatabaseDep, login: str, change: Change) -> AgentOut:
    service = AgentService(db)
    try:
        try:
            async with AmiClient(settings) as ami:
                view = await change(service, ami)
        except AmiUnavailable as exc:
            # Stored anyway: the router applies it when Asterisk is back (pending = true).
            log.warning("agents_api_ami_unavailable", error=str(exc), login=login)
            view = await change(service, None)
    except RosterError as exc:
        status = 404 if str(exc).startswith("no operator") else 409
        raise HTTPException(status_code=status, detail=str(exc)) from exc
    except AmiActionFailed as exc:
        raise HTTPException(status_code=502, detail=f"Asterisk refused {exc}") from exc
    return AgentOut.of(view)


@router.get("", response_model=list[AgentOut])
async def list_agents(settings: SettingsDep, db: DatabaseDep) -> list[AgentOut]:
    service = AgentService(db)
    try:
        async with AmiClient(settings) as ami:
            views = await service.views(ami)
    except AmiUnavailable:
        views = await service.views(None)
    return [AgentOut.of(v) for v in views]


@router.post("/{login}/login", response_model=AgentOut)
async def login(
    login: str,
    settings: SettingsDep,
    db: DatabaseDep,
    actor: ActorDep,
    body: Annotated[LoginIn | None, Body()] = None,
) -> AgentOut:
    actor.operator(login)  # an operator changes only their own state (403 otherwise)
    queues = body.queues if body else None
    return await _apply(settings, db, login, lambda s, ami: s.login(ami, login, queues, "api"))


@router.post("/{login}/logout", response_model=AgentOut)
async def logout(login: str, settings: SettingsDep, db: DatabaseDep, actor: ActorDep) -> AgentOut:
    actor.operator(login)
    return await _apply(settings, db, login, lambda s, ami: s.logout(ami, login, "api"))


@router.post("/{login}/pause", response_model=AgentOut)
async def pause(
    login: str, body: PauseIn, settings: SettingsDep, db: DatabaseDep, actor: ActorDep
) -> AgentOut:
    actor.operator(login)
    return await _apply(settings, db, login, lambda s, ami: s.pause(ami, login, body.reason, "api"))


@router.post("/{login}/unpause", response_model=AgentOut)
async def unpause(login: str, settings: SettingsDep, db: DatabaseDep, actor: ActorDep) -> AgentOut:
    actor.operator(login)
    return await _apply(settings, db, login, lambda s, ami: s.unpause(ami, login, "api"))
