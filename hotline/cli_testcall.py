"""`hotline call`: one test call into the hotline over SIP, and what the call log made of it.

The call comes in as the carrier trunk would send it. Registered by hotline/cli.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from call_router.settings import Settings, get_settings
from hotline.cli_support import fail, open_database


def call_command(
    dtmf: Annotated[str, typer.Option(help="Keys to press after the greeting.")] = "",
    from_number: Annotated[
        str, typer.Option("--from", help="Caller number, or 'anonymous'.")
    ] = "74951234567",
    name: Annotated[str | None, typer.Option(help="Caller display name.")] = None,
    audio: Annotated[Path | None, typer.Option(help="WAV file the caller says.")] = None,
    hold: Annotated[float, typer.Option(help="Seconds to stay on the line.")] = 8.0,
) -> None:
    """Place one test call into the hotline over SIP (as the carrier trunk)."""
    from hotline.sipua.testcall import place_call

    settings = get_settings()
    if audio is not None and not audio.is_file():
        raise fail(f"error: no such audio file: {audio}", 2)
    if any(ch not in "0123456789*#" for ch in dtmf):
        raise fail("error: --dtmf takes digits, * and #", 2)
    started = time.time()
    result = place_call(
        settings,
        dtmf=dtmf,
        from_number=None if from_number.lower() == "anonymous" else from_number,
        from_name=name,
        audio=audio,
        hold=hold,
    )
    verdict = "answered" if result.answered else "NOT answered"
    typer.echo(f"call {verdict} (SIP {result.sip_status}) in {time.time() - started:.1f}s")
    if not result.answered:
        typer.echo(result.detail, err=True)
        raise typer.Exit(1)
    if from_number.lower() != "anonymous":
        typer.echo(_logged_call_summary(settings, from_number, started))


def _logged_call_summary(settings: Settings, caller: str, since: float) -> str:
    """What the call log made of the call, once the AMI listener has closed the row."""
    from datetime import UTC, datetime

    from call_router.call_search import list_calls

    db = open_database(settings)
    deadline = time.monotonic() + 10
    try:
        while True:
            with db.session() as session:
                calls = list_calls(
                    session,
                    caller=caller,
                    since=datetime.fromtimestamp(since - 1, UTC),
                    limit=1,
                    country=settings.country_code,
                )
                row = calls[0] if calls else None
                if row is not None and (row.ended_at or time.monotonic() > deadline):
                    return (
                        f"logged as call {row.id}: queue {row.queue or '-'}, "
                        f"outcome {row.outcome or 'in progress'}, operator {row.operator or '-'}"
                    )
            if time.monotonic() > deadline:
                return "not in the call log yet (is `hotline router` running?)"
            time.sleep(0.3)
    finally:
        db.dispose()
