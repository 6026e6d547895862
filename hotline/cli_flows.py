"""`hotline flows`: check the voice-menu files, and make the running server reload them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from call_router.flows.admin import check_flows, reload_flows
from call_router.flows.flow_reader import NOT_BUILT
from call_router.flows.loader import FlowSet
from call_router.settings import get_settings
from hotline.cli_support import fail

app = typer.Typer(help="Voice-menu flows (ivr_flows/*.yaml).", no_args_is_help=True)


def _report(result: FlowSet) -> None:
    unbuilt = [e for e in result.errors if e.unbuilt_prompt]
    for error in result.errors:
        if not error.unbuilt_prompt:
            typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
    if unbuilt:
        # A fresh checkout has every prompt's text but no sound files: one line, not a hundred.
        names = sorted(
            {e.problem.removesuffix(f" {NOT_BUILT}").removeprefix("prompt ") for e in unbuilt}
        )
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        typer.secho(
            f"error: {len(names)} prompt(s) not built ({shown}): run `hotline prompts build`",
            err=True,
            fg=typer.colors.RED,
        )
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
        raise fail(f"{len(result.errors)} problem(s) found")
    typer.echo("OK")


@app.command("reload")
def reload() -> None:
    """Validate, then tell the running FastAGI server to reload (it keeps the last good flows)."""
    from hotline import services

    settings = get_settings()
    outcome = reload_flows(settings, services.read_pid(settings, "agi"))
    _report(outcome.check)
    if not outcome.running:
        typer.echo("the FastAGI server is not running; it loads the flows when it starts")
        raise typer.Exit(1 if outcome.check.errors else 0)
    if not outcome.confirmed:
        raise fail("the FastAGI server did not confirm the reload", 2)
    typer.echo(f"running flows: {', '.join(outcome.flows)}")
    if outcome.refused:
        typer.secho(
            "broken files were refused; the server keeps their last good version",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1)
    typer.echo("reloaded")


if __name__ == "__main__":  # `python -m hotline.cli_flows` until `hotline flows` is registered
    app()
