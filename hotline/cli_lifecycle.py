"""`hotline up` / `hotline down`: the whole hotline started in the background and stopped.

With the steps of getting ready that also run alone (`db upgrade`, `prompts build`).
Registered by hotline/cli.py."""

from __future__ import annotations

from typing import Annotated

import typer

from call_router.settings import QUEUES, Settings, get_settings
from hotline.cli_asterisk import render_asterisk
from hotline.cli_support import open_database, warn_loosened
from hotline.cli_users import FIRST_SUPERVISOR, ensure_first_supervisor

db_app = typer.Typer(help="The call-log database.")
prompts_app = typer.Typer(help="Voice prompts.")

# `hotline supervise` (hotline/supervisor.py) as a background service of `hotline up`.
SUPERVISOR = "supervise"  # hotline/supervisor.py NAME (imported lazily there)


def up_command(
    build: Annotated[bool, typer.Option(help="Build the sandbox root if missing.")] = True,
) -> None:
    """Start the whole hotline in the background; returns once a call can be taken."""
    from hotline import services
    from hotline.asterisk.sandbox import Asterisk

    settings = get_settings()
    login, password, admin_password = prepare_hotline(settings)
    asterisk = Asterisk(settings)
    if build:
        asterisk.ensure_installed(progress=typer.echo)
    render_asterisk(settings)
    for name in services.service_names(settings):
        services.start_service(settings, name)
    asterisk.start()
    for name in services.service_names(settings):
        services.wait_ready(settings, name, timeout=60)
    # From here on a service that dies is restarted (hotline/supervisor.py).
    services.start_service(settings, SUPERVISOR)
    services.wait_ready(settings, SUPERVISOR, timeout=30)

    typer.echo(
        "\n".join(
            [
                "Hotline is up.",
                f"  dashboard:      {settings.dashboard_url}/",
                f"  hotline number: {settings.hotline_number} "
                f"(SIP: sip:{settings.hotline_number}@{settings.sip_host}:{settings.sip_port})",
                *(
                    [f"  meter readings: {settings.meters_number}"]
                    if settings.meters_number
                    else []
                ),
                f"  operator SIP:   login {login}, password {password}, "
                f"registrar {settings.sip_host}:{settings.sip_port} (UDP)",
                *(
                    [
                        f"  dashboard user: {FIRST_SUPERVISOR}, password {admin_password} "
                        "(shown once; `hotline users passwd admin` to change)"
                    ]
                    if admin_password
                    else []
                ),
                "  test call:      hotline call --dtmf 2",
                "  stop:           hotline down",
            ]
        )
    )


def prepare_hotline(settings: Settings) -> tuple[str, str, str | None]:
    """What `hotline up` (and `hotline cluster up`) needs before any process starts: the
    database at the newest schema, an operator, the first supervisor, the prompts. Returns
    (an operator's SIP login, its password, the new supervisor's password or None)."""
    from call_router.flows.prompts import build_prompts
    from call_router.operators import add_operator, list_operators, parse_skills

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    warn_loosened(settings)
    db = open_database(settings)
    with db.session() as session:
        roster = list_operators(session)
        if not roster:
            # A fresh hotline needs someone to answer: one operator on every queue.
            first = add_operator(session, "Operator 1", parse_skills(",".join(QUEUES)))
            roster = [first]
        operator = roster[0]
        login, password = operator.sip_login, operator.sip_password
        # No default credentials: the first supervisor's password is generated and shown once.
        admin_password = ensure_first_supervisor(session)
    db.dispose()
    build_prompts(settings)
    return login, password, admin_password


def down_command() -> None:
    """Stop everything `hotline up` started."""
    from hotline import services
    from hotline.asterisk.sandbox import Asterisk

    settings = get_settings()
    # First, or it would restart what is stopped next.
    services.stop_service(settings, SUPERVISOR)
    Asterisk(settings).stop()
    for name in reversed(services.service_names(settings)):
        services.stop_service(settings, name)
    typer.echo("hotline stopped")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the call-log database."""
    open_database(get_settings()).dispose()
    typer.echo("database is up to date")


@prompts_app.command("build")
def prompts_build(
    force: Annotated[bool, typer.Option(help="Regenerate generated prompts.")] = False,
) -> None:
    """Synthesise the voice prompts with espeak-ng (studio recordings are kept)."""
    from call_router.flows.prompts import build_prompts

    built = build_prompts(get_settings(), force=force)
    typer.echo(f"{len(built)} prompt(s) built")
