"""`hotline incidents`: known outages that matching callers hear before the menu."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from call_router import incidents
from call_router.models import utcnow
from call_router.settings import Settings, get_settings
from hotline.cli_session import run_in_session
from hotline.cli_support import JsonOpt, fail, open_database

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(help="Incidents announced to callers (outages, repairs).", no_args_is_help=True)

CATEGORIES = incidents.CATEGORIES
# Kept for callers of the old names; the logic is call_router.incidents'.
_effect = incidents.effect


def parse_until(text: str, now: datetime, tz_name: str | None) -> datetime:
    """`18:00` (today, or tomorrow if already past) or an ISO date-time, in the hotline's zone."""
    try:
        return incidents.parse_until(text, now, tz_name)
    except incidents.IncidentInputError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command("add")
def add(
    category: Annotated[str, typer.Argument(help=f"One of: {', '.join(CATEGORIES)}.")],
    message_ru: Annotated[str, typer.Option("--ru", help="What callers hear, in Russian.")],
    message_en: Annotated[str, typer.Option("--en", help="What callers hear, in English.")],
    areas: Annotated[
        str,
        typer.Option(
            help="Comma-separated areas (paths of `hotline areas list`, e.g. "
            "irkutsk/oktyabrsky) or labels; empty: the whole city."
        ),
    ] = "",
    until: Annotated[
        str | None, typer.Option(help="Expected end: HH:MM or YYYY-MM-DD HH:MM (local time).")
    ] = None,
    speak: Annotated[bool, typer.Option(help="Build the announcement prompts now.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Create an incident; callers hear it first while it is active."""
    settings = get_settings()
    now = utcnow()
    try:
        new = incidents.validate(
            category,
            message_ru,
            message_en,
            areas=areas,
            until=until,
            now=now,
            tz_name=settings.timezone,
        )
    except incidents.IncidentInputError as exc:
        raise typer.BadParameter(str(exc)) from exc
    db = open_database(settings)
    try:
        with db.session() as session:
            incident = incidents.create(session, new, now)
            incident_id, stored_areas = incident.id, list(incident.areas)
    except incidents.IncidentInputError as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        db.dispose()
    spoken = _speak(settings, incident_id, new.messages) if speak else []
    info = {
        "id": incident_id,
        "category": new.category,
        "areas": stored_areas,
        "expected_end": new.expected_end.isoformat() if new.expected_end else None,
        "prompts": spoken,
    }
    typer.echo(json.dumps(info, ensure_ascii=False) if as_json else f"incident {incident_id} added")


def _speak(settings: Settings, incident_id: int, messages: dict[str, str]) -> list[str]:
    spoken = incidents.speak(settings, incident_id, messages)
    if spoken.problem is not None:
        typer.secho(
            f"announcement not spoken ({spoken.problem}); put a recording at "
            f"recordings/prompts/<lang>/incident_{incident_id}.wav",
            err=True,
            fg=typer.colors.YELLOW,
        )
    return spoken.prompts


@app.command("end")
def end(
    incident_id: Annotated[int, typer.Argument(help="Incident id (see `incidents list`).")],
) -> None:
    """End an incident: callers no longer hear it."""

    def end_now(session: Session) -> None:
        if incidents.end(session, incident_id, utcnow()) is None:
            raise fail(f"no incident {incident_id}")

    run_in_session(end_now)
    typer.echo(f"incident {incident_id} ended")


@app.command("list")
def list_incidents(
    all_: Annotated[bool, typer.Option("--all", help="Ended ones too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Incidents with how many callers heard each and how many then hung up (helped)."""
    rows = run_in_session(
        lambda session: [
            row.as_json() for row in incidents.summaries(session, ended=None if all_ else False)
        ]
    )
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        state = "ended" if row["ended_at"] else "active"
        typer.echo(
            f"{row['id']:>4} {state:<6} {row['category']:<11} "
            f"{', '.join(row['areas']) or 'whole city'}  until {row['expected_end'] or '?'}  "
            f"heard {row['heard']}, hung up after {row['hung_up_after']}"
        )


if __name__ == "__main__":  # `python -m hotline.cli_incidents` until it is registered
    app()
