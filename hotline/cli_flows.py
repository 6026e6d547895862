"""`hotline flows`: check the voice-menu files, and make the running server reload them."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from agi_scripts.flows.loader import FlowSet, load_flows
from agi_scripts.flows.services import flows_status_file
from call_router.settings import QUEUES, Settings, get_settings

app = typer.Typer(help="Voice-menu flows (ivr_flows/*.yaml).", no_args_is_help=True)

RELOAD_WAIT = 10.0


def check_flows(settings: Settings, folder: Path, texts_only: bool) -> FlowSet:
    """What `hotline flows check` reports: every valid flow and every error (file: key path)."""
    return load_flows(
        folder,
        queues=QUEUES,
        timezone=settings.timezone,
        recordings=None if texts_only else settings.recordings_dir,
    )


def _report(result: FlowSet) -> None:
    for error in result.errors:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
    if result.flows:
        typer.echo(f"valid flows: {', '.join(sorted(result.flows))}")


@app.command("check")
def check(
    folder: Annotated[
        Path | None, typer.Argument(help="Flows folder (default: HOTLINE_FLOWS_DIR).")
    ] = None,
    texts_only: Annotated[
        bool,
        typer.Option(
            "--texts-only", help="Do not require built sound files, only prompt texts (CI)."
        ),
    ] = False,
) -> None:
    """Validate every flow; exit 0 when all are valid, 1 with file and key path otherwise."""
    settings = get_settings()
    result = check_flows(settings, folder or settings.flows_dir, texts_only)
    _report(result)
    if result.errors:
        typer.secho(f"{len(result.errors)} problem(s) found", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    typer.echo("OK")


@dataclass(frozen=True)
class ReloadOutcome:
    """What asking the running FastAGI server to reload its flows came to."""

    check: FlowSet  # the files as they are now (texts only, as the server loads them)
    running: bool  # a FastAGI server was there to ask
    confirmed: bool = False  # it wrote a fresh status within RELOAD_WAIT
    status: dict[str, object] = field(default_factory=dict)

    @property
    def flows(self) -> list[str]:
        running = self.status.get("flows")
        return [str(f) for f in running] if isinstance(running, list) else []

    @property
    def refused(self) -> bool:
        """Broken files were refused (the server keeps their last good version)."""
        return bool(self.status.get("errors"))


def reload_flows(settings: Settings, wait: float = RELOAD_WAIT) -> ReloadOutcome:
    """Validate, then SIGHUP the running FastAGI server and wait for its new status file."""
    from hotline import services

    result = check_flows(settings, settings.flows_dir, texts_only=True)
    pid = services.read_pid(settings, "agi")
    if pid is None:
        return ReloadOutcome(result, running=False)
    path = flows_status_file(settings)
    before = read_status(path).get("generation")
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        status = read_status(path)
        if status.get("pid") == pid and status.get("generation") != before:
            return ReloadOutcome(result, running=True, confirmed=True, status=status)
        time.sleep(0.1)
    return ReloadOutcome(result, running=True)


@app.command("reload")
def reload() -> None:
    """Validate, then tell the running FastAGI server to reload (it keeps the last good flows)."""
    outcome = reload_flows(get_settings())
    _report(outcome.check)
    if not outcome.running:
        typer.echo("the FastAGI server is not running; it loads the flows when it starts")
        raise typer.Exit(1 if outcome.check.errors else 0)
    if not outcome.confirmed:
        typer.secho("the FastAGI server did not confirm the reload", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    typer.echo(f"running flows: {', '.join(outcome.flows)}")
    if outcome.refused:
        typer.secho(
            "broken files were refused; the server keeps their last good version",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1)
    typer.echo("reloaded")


def read_status(path: Path) -> dict[str, object]:
    """The status the FastAGI server writes after every load ({} when absent or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


if __name__ == "__main__":  # `python -m hotline.cli_flows` until `hotline flows` is registered
    app()
