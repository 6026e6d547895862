"""`hotline asterisk …`, and the Asterisk config rendered and applied to a running Asterisk.

The config comes from settings, the roster and the SIP bans; the commands that change those
apply it here. Registered by hotline/cli.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from call_router.settings import Settings, get_settings
from hotline.cli_support import open_database

app = typer.Typer(help="The Asterisk the hotline runs on (sandbox or system).")


def render_asterisk(settings: Settings) -> Path:
    """Render asterisk_conf/ from settings, the roster and the SIP bans; returns the
    asterisk.conf path."""
    from call_router.models import utcnow
    from call_router.operators import list_operators
    from call_router.sip_bans import active_addresses
    from call_router.tenants import number_owners, tenant_queue_names
    from hotline.asterisk.render import OperatorConf, render_config
    from hotline.asterisk.sandbox import Asterisk

    db = open_database(settings)
    with db.session() as session:
        banned = active_addresses(session, utcnow())
        operators = [
            OperatorConf(
                sip_login=op.sip_login,
                sip_password=op.sip_password,
                name=op.name,
                queues=tuple((s.queue, s.penalty) for s in op.skills),
            )
            for op in list_operators(session, enabled_only=True)
        ]
        tenant_queues = tenant_queue_names(session)
        numbers = list(number_owners(session))
    db.dispose()
    return render_config(
        settings,
        Asterisk(settings).paths,
        operators,
        banned,
        tenant_queues=tenant_queues,
        dialled_numbers=numbers,
    )


def reload_asterisk(settings: Settings) -> bool:
    """Apply a re-rendered config to a running Asterisk without a restart."""
    from hotline.asterisk.sandbox import Asterisk

    asterisk = Asterisk(settings)
    if not asterisk.status().running:
        return False
    asterisk.cli("module reload res_pjsip.so")
    asterisk.cli("queue reload all")
    asterisk.cli("dialplan reload")
    return True


def apply_bans(settings: Settings) -> None:
    """Put the active SIP bans into the running Asterisk (pjsip.conf ACLs, res_pjsip reload)."""
    from hotline.asterisk.sandbox import Asterisk

    render_asterisk(settings)
    asterisk = Asterisk(settings)
    if asterisk.status().running:
        asterisk.cli("module reload res_pjsip.so")


@app.command("render")
def asterisk_render() -> None:
    """Render the Asterisk configuration from settings and the roster."""
    path = render_asterisk(get_settings())
    typer.echo(f"rendered {path.parent}")


@app.command("install")
def asterisk_install() -> None:
    """Build the sandbox Asterisk root if it is missing (a system Asterisk needs nothing)."""
    from hotline.asterisk.sandbox import Asterisk

    asterisk = Asterisk(get_settings())
    asterisk.ensure_installed(progress=typer.echo)
    typer.echo(f"asterisk ready ({asterisk.mode})")


@app.command("up")
def asterisk_up() -> None:
    """Install (once) and start Asterisk; returns when AMI answers."""
    from hotline.asterisk.sandbox import Asterisk

    settings = get_settings()
    asterisk = Asterisk(settings)
    asterisk.ensure_installed(progress=typer.echo)
    render_asterisk(settings)
    asterisk.start()
    typer.echo(
        f"asterisk running ({asterisk.mode}), AMI on {settings.ami_host}:{settings.ami_port}"
    )


@app.command("down")
def asterisk_down() -> None:
    """Stop the Asterisk that `up` started."""
    from hotline.asterisk.sandbox import Asterisk

    Asterisk(get_settings()).stop()
    typer.echo("asterisk stopped")


@app.command("status")
def asterisk_status() -> None:
    """Is Asterisk running?"""
    from hotline.asterisk.sandbox import Asterisk

    st = Asterisk(get_settings()).status()
    typer.echo(st.detail)
    raise typer.Exit(0 if st.running else 3)


@app.command("cli")
def asterisk_cli(
    command: Annotated[str, typer.Argument(help="The Asterisk CLI command, quoted as one word.")],
) -> None:
    """Run one Asterisk CLI command, e.g. `hotline asterisk cli "queue show"`."""
    from hotline.asterisk.sandbox import Asterisk

    typer.echo(Asterisk(get_settings()).cli(command))
