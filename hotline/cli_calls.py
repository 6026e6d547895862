"""`hotline calls`: supervisors' call control from the shell (call_router/call_control/).

    hotline calls hangup ID [--json]
    hotline calls move ID [ID ...] (--queue Q | --operator LOGIN) [--json]
    hotline calls monitor ID --phone LOGIN [--mode listen|whisper|barge] [--json]

Each run is one process with one AMI link (the `supervise` AMI user); every action is written
to the call-control audit as `cli:<the shell user>`. Exit 1 with the reason on stderr when
refused (an ended call, an unknown queue, a phone that did not answer ...).
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer

from call_router.ami_client import AmiLink
from call_router.call_control import CallControl
from call_router.call_control.base import ControlError, Outcome
from call_router.call_control.monitoring import MONITOR_MODES
from call_router.settings import get_settings
from hotline.cli_support import JsonOpt, fail, open_database

app = typer.Typer(help="Supervisors' call control: hang up, move, monitor.", no_args_is_help=True)

Work = Callable[[CallControl], Awaitable[list[Outcome]]]


def cli_actor() -> str:
    """Who acts, for the audit: the shell user (`cli:` never collides with a dashboard name)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _run(work: Work, as_json: bool) -> None:
    settings = get_settings()
    db = open_database(settings)

    async def go() -> list[Outcome]:
        link = AmiLink(settings, "supervise")
        try:
            return await work(CallControl(settings, db, link, by=cli_actor()))
        finally:
            await link.close()

    try:
        outcomes = asyncio.run(go())
    except ControlError as exc:
        if as_json:
            typer.echo(json.dumps({"ok": False, "code": exc.code, "detail": exc.message}))
        raise fail(exc.message) from exc
    finally:
        db.dispose()
    if as_json:
        rows = [
            {"action": o.action, "call_id": o.call_id, "ok": o.ok, "detail": o.detail, **o.data}
            for o in outcomes
        ]
        typer.echo(json.dumps(rows[0] if len(rows) == 1 else rows, ensure_ascii=False))
    for o in outcomes:
        if not o.ok:  # the reason on stderr, as for a refusal of the whole request
            typer.secho(f"call {o.call_id}: refused - {o.detail}", err=True, fg=typer.colors.RED)
        elif not as_json:
            typer.echo(f"call {o.call_id}: ok - {o.detail}")
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


CallId = Annotated[int, typer.Argument(help="The call's id in the call log.")]


@app.command()
def hangup(call_id: CallId, as_json: JsonOpt = False) -> None:
    """End a call (e.g. one stuck after a fault): every channel of it is hung up."""

    async def work(control: CallControl) -> list[Outcome]:
        return [await control.hangup(call_id)]

    _run(work, as_json)


@app.command()
def move(
    call_ids: Annotated[list[int], typer.Argument(help="One or more waiting calls.")],
    queue: Annotated[str | None, typer.Option(help="Move to this queue.")] = None,
    operator: Annotated[str | None, typer.Option(help="Move to this operator's phone.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move waiting callers (menu or queue) to another queue or operator, keeping priority."""

    async def work(control: CallControl) -> list[Outcome]:
        return await control.move(call_ids, queue=queue, operator=operator)

    _run(work, as_json)


@app.command()
def monitor(
    call_id: CallId,
    phone: Annotated[str, typer.Option(help="The roster login of the phone to ring.")],
    mode: Annotated[str, typer.Option(help="listen, whisper or barge")] = "listen",
    as_json: JsonOpt = False,
) -> None:
    """Ring a supervisor's phone and attach it to the call (DTMF 4/5/6 switch the mode)."""
    if mode not in MONITOR_MODES:
        raise typer.BadParameter(f"mode: one of {', '.join(MONITOR_MODES)}")

    async def work(control: CallControl) -> list[Outcome]:
        return [await control.monitor(call_id, mode, phone)]

    _run(work, as_json)
