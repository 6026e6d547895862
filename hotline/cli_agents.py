"""`hotline agents`: operators' queue log-in, log-out, pauses and the live agent state.

Changes are stored in the database and applied to the running Asterisk at once. If Asterisk
is not running they are kept, and the router applies them when it (re)connects.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated

import typer

from call_router.agents import AgentService, AgentView
from call_router.ami_client import AmiActionFailed, AmiClient, AmiSender, AmiUnavailable
from call_router.operators import RosterError
from call_router.settings import QUEUES, Settings, get_settings
from call_router.tenant_routing import is_known_queue
from hotline.cli_support import JsonOpt, fail, open_database

app = typer.Typer(help="Operators' queue log-in, log-out and pauses.", no_args_is_help=True)

Change = Callable[[AgentService, AmiSender | None], Awaitable[AgentView]]


def _service(settings: Settings) -> AgentService:
    return AgentService(open_database(settings))


async def _apply(settings: Settings, change: Change) -> tuple[AgentView, bool]:
    service = _service(settings)
    try:
        async with AmiClient(settings) as ami:
            return await change(service, ami), True
    except AmiUnavailable:
        return await change(service, None), False


def _audit(
    settings: Settings, action: str, login: str, target: str | None, error: str | None
) -> None:
    """The call-control audit row of a change made from the shell (`cli:<user>`)."""
    from call_router.call_control.audit import audit_agent
    from call_router.db import Database
    from hotline.cli_calls import cli_actor

    db = Database(settings.db_url)
    try:
        audit_agent(db, cli_actor(), action, login, target=target, error=error)
    finally:
        db.dispose()


def _run(change: Change, as_json: bool, audit: tuple[str, str, str | None] | None = None) -> None:
    """`audit`: (action, login, target) for the call-control audit."""
    settings = get_settings()
    try:
        view, applied = asyncio.run(_apply(settings, change))
    except RosterError as exc:
        if audit is not None:
            _audit(settings, *audit, error=str(exc))
        raise fail(str(exc)) from exc
    except AmiActionFailed as exc:
        if audit is not None:
            _audit(settings, *audit, error=f"Asterisk refused {exc}")
        raise fail(f"Asterisk refused {exc}") from exc
    if audit is not None:
        _audit(settings, *audit, error=None)
    if as_json:
        typer.echo(json.dumps({**_plain(view), "applied": applied}, ensure_ascii=False))
        return
    typer.echo(_line(view))
    if not applied:
        typer.secho(
            "Asterisk is not reachable: saved, the router applies it when Asterisk is back.",
            err=True,
            fg=typer.colors.YELLOW,
        )


def _queues(spec: str | None) -> list[str] | None:
    if spec is None:
        return None
    queues = [q.strip().lower() for q in spec.split(",") if q.strip()]
    unknown = [q for q in queues if not is_known_queue(q, QUEUES)]
    if unknown:
        raise typer.BadParameter(
            f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(QUEUES)}"
        )
    return queues


Login = Annotated[str, typer.Argument(help="The operator's SIP login.")]


@app.command()
def login(
    login: Login,
    queues: Annotated[
        str | None,
        typer.Option(help="Comma-separated queues (default: all the operator's skills)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Log an operator in to their queues."""
    chosen = _queues(queues)
    _run(
        lambda s, ami: s.login(ami, login, chosen, "cli"),
        as_json,
        ("login", login, ",".join(chosen) if chosen else None),
    )


@app.command()
def logout(login: Login, as_json: JsonOpt = False) -> None:
    """Log an operator out of every queue."""
    _run(lambda s, ami: s.logout(ami, login, "cli"), as_json, ("logout", login, None))


@app.command()
def pause(
    login: Login,
    reason: Annotated[str, typer.Option(help="Why: lunch, training, after-call work ...")],
    as_json: JsonOpt = False,
) -> None:
    """Pause an operator in all their queues (they stay logged in)."""
    _run(lambda s, ami: s.pause(ami, login, reason, "cli"), as_json, ("pause", login, reason))


@app.command()
def unpause(login: Login, as_json: JsonOpt = False) -> None:
    """End an operator's pause."""
    _run(lambda s, ami: s.unpause(ami, login, "cli"), as_json, ("unpause", login, None))


@app.command()
def queues(
    login: Login,
    spec: Annotated[str, typer.Argument(help="Queues and penalties: heating,coordinator:5")],
    as_json: JsonOpt = False,
) -> None:
    """Change an operator's queues and penalties live; kept in the roster."""
    _run(lambda s, ami: s.set_queues(ami, login, spec, "cli"), as_json, ("queues", login, spec))


@app.command()
def state(as_json: JsonOpt = False) -> None:
    """Every operator's state: logged in, paused (and why), busy, free, offline."""
    settings = get_settings()

    async def read() -> tuple[list[AgentView], bool]:
        service = _service(settings)
        try:
            async with AmiClient(settings) as ami:
                return await service.views(ami), True
        except AmiUnavailable:
            return await service.views(None), False

    views, live = asyncio.run(read())
    if as_json:
        typer.echo(
            json.dumps({"asterisk": live, "agents": [_plain(v) for v in views]}, ensure_ascii=False)
        )
        return
    if not live:
        typer.secho("Asterisk is not reachable: showing the saved state.", err=True)
    for view in views:
        typer.echo(_line(view))


def _plain(view: AgentView) -> dict[str, object]:
    data = asdict(view)
    data["since"] = view.since.isoformat() if view.since else None
    return data


def _line(view: AgentView) -> str:
    queues = ",".join(f"{q.queue}:{q.penalty}" for q in view.queues) or "-"
    reason = f" ({view.pause_reason})" if view.pause_reason else ""
    pending = " [not applied yet]" if view.pending and view.logged_in else ""
    return f"{view.login:<8} {view.name:<24} {view.state}{reason:<10} {queues}{pending}"


if __name__ == "__main__":  # `python -m hotline.cli_agents` until `hotline agents` is wired
    app()
