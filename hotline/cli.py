"""`hotline`: the one entry point for every admin operation."""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from call_router.settings import Settings, get_settings
from hotline.cli_agents import app as agents_cli
from hotline.cli_areas import app as areas_cli
from hotline.cli_callbacks import app as callbacks_cli
from hotline.cli_calls import app as calls_cli
from hotline.cli_cluster import app as cluster_cli
from hotline.cli_flows import app as flows_cli
from hotline.cli_health import doctor_command, status_command
from hotline.cli_i18n import app as i18n_cli
from hotline.cli_incidents import app as incidents_cli
from hotline.cli_meters import app as meters_cli
from hotline.cli_models import models_app
from hotline.cli_reports import app as reports_cli
from hotline.cli_requests import crews_app, open311_app, requests_app
from hotline.cli_retention import app as retention_cli
from hotline.cli_security import app as security_cli
from hotline.cli_speech import app as speech_cli
from hotline.cli_staffing import staffing_command
from hotline.cli_tenants import buildings_app, numbers_app, tenants_app
from hotline.cli_users import FIRST_SUPERVISOR, ensure_first_supervisor, tokens_app, users_app

if TYPE_CHECKING:
    from call_router.db import Database

app = typer.Typer(help="Hotline: IVR and contact-centre engine on Asterisk.", no_args_is_help=True)
asterisk_app = typer.Typer(help="The Asterisk the hotline runs on (sandbox or system).")
operators_app = typer.Typer(help="The operators roster.")
db_app = typer.Typer(help="The call-log database.")
prompts_app = typer.Typer(help="Voice prompts.")
app.add_typer(asterisk_app, name="asterisk")
app.add_typer(operators_app, name="operators")
app.add_typer(db_app, name="db")
app.add_typer(prompts_app, name="prompts")
app.add_typer(agents_cli, name="agents", help="Operators at work: log in/out of queues, pause.")
app.add_typer(flows_cli, name="flows", help="Voice menus as data: check and reload.")
app.add_typer(incidents_cli, name="incidents", help="Active incident announcements.")
app.add_typer(areas_cli, name="areas", help="Areas incidents target: city, districts, streets.")
app.add_typer(meters_cli, name="meters", help="Meter readings by phone: current and history.")
app.add_typer(reports_cli, name="reports", help="Reports: pre-aggregate closed quarter hours.")
app.add_typer(retention_cli, name="retention", help="Delete old recordings and logs now.")
app.add_typer(speech_cli, name="speech", help="Speech recognition (Vosk), offline.")
app.add_typer(models_app, name="models", help="Speech models: state, size; install ru|en.")
app.add_typer(calls_cli, name="calls", help="Call control: hang up, move, monitor.")
app.command("staffing", help="Operators needed per quarter hour next week (Erlang C).")(
    staffing_command
)
app.add_typer(callbacks_cli, name="callbacks", help="The callback list: claim, call back, outcome.")
app.add_typer(users_app, name="users", help="Dashboard accounts: supervisors and operators.")
app.add_typer(tokens_app, name="tokens", help="API tokens for the dashboard (Bearer).")
app.add_typer(security_cli, name="security", help="SIP brute-force bans: list and lift.")
app.add_typer(tenants_app, name="tenants", help="Tenants: the management companies served.")
app.add_typer(numbers_app, name="numbers", help="Dialled numbers: the centre's or a tenant's.")
app.add_typer(requests_app, name="requests", help="Service requests: jobs for repair crews.")
app.add_typer(crews_app, name="crews", help="Repair crews and contractors.")
app.add_typer(open311_app, name="open311", help="The Open311 GeoReport v2 API: keys.")
app.add_typer(buildings_app, name="buildings", help="Tenants' buildings and residents' phones.")
app.add_typer(cluster_cli, name="cluster", help="Kamailio in front of N Asterisk nodes.")
app.add_typer(i18n_cli, name="i18n", help="Dashboard translations: extract and check catalogues.")


@app.callback()
def _process_setup() -> None:
    """Every command: files and folders it creates are the hotline user's alone, and log
    lines go to stderr, so stdout carries only the command's output (`--json`: only JSON)."""
    import sys

    import structlog

    from call_router.private_files import make_private

    make_private()
    # sys.stderr looked up per logger, not once: a test runner may swap and close it.
    structlog.configure(logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr))


def warn_loosened(settings: Settings) -> None:
    """Say, on stderr, which private files an admin made readable to others."""
    from call_router.private_files import loosened

    for item in loosened(settings):
        typer.secho(f"warning: {item.message()}", err=True, fg=typer.colors.YELLOW)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _database(settings: Settings) -> Database:
    from call_router.db import Database

    db = Database(settings.db_url)
    db.upgrade()
    return db


# --- Asterisk ---------------------------------------------------------------------------


def render_asterisk(settings: Settings) -> Path:
    """Render asterisk_conf/ from settings, the roster and the SIP bans; returns the
    asterisk.conf path."""
    from call_router.models import utcnow
    from call_router.operators import list_operators
    from call_router.sip_bans import active_addresses
    from call_router.tenants import number_owners, tenant_queue_names
    from hotline.asterisk.render import OperatorConf, render_config
    from hotline.asterisk.sandbox import Asterisk

    db = _database(settings)
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


@asterisk_app.command("render")
def asterisk_render() -> None:
    """Render the Asterisk configuration from settings and the roster."""
    path = render_asterisk(get_settings())
    typer.echo(f"rendered {path.parent}")


@asterisk_app.command("install")
def asterisk_install() -> None:
    """Build the sandbox Asterisk root if it is missing (a system Asterisk needs nothing)."""
    from hotline.asterisk.sandbox import Asterisk

    asterisk = Asterisk(get_settings())
    asterisk.ensure_installed(progress=typer.echo)
    typer.echo(f"asterisk ready ({asterisk.mode})")


@asterisk_app.command("up")
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


@asterisk_app.command("down")
def asterisk_down() -> None:
    """Stop the Asterisk that `up` started."""
    from hotline.asterisk.sandbox import Asterisk

    Asterisk(get_settings()).stop()
    typer.echo("asterisk stopped")


@asterisk_app.command("status")
def asterisk_status() -> None:
    """Is Asterisk running?"""
    from hotline.asterisk.sandbox import Asterisk

    st = Asterisk(get_settings()).status()
    typer.echo(st.detail)
    raise typer.Exit(0 if st.running else 3)


@asterisk_app.command("cli")
def asterisk_cli(command: str) -> None:
    """Run one Asterisk CLI command, e.g. `hotline asterisk cli "queue show"`."""
    from hotline.asterisk.sandbox import Asterisk

    typer.echo(Asterisk(get_settings()).cli(command))


# --- the whole hotline ------------------------------------------------------------------


@app.command()
def up(
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
    db = _database(settings)
    with db.session() as session:
        roster = list_operators(session)
        if not roster:
            # A fresh hotline needs someone to answer: one operator on every queue.
            first = add_operator(session, "Operator 1", parse_skills(",".join(_all_queues())))
            roster = [first]
        operator = roster[0]
        login, password = operator.sip_login, operator.sip_password
        # No default credentials: the first supervisor's password is generated and shown once.
        admin_password = ensure_first_supervisor(session)
    db.dispose()
    build_prompts(settings)
    return login, password, admin_password


# `hotline supervise` (hotline/supervisor.py) as a background service of `hotline up`.
SUPERVISOR = "supervise"  # hotline/supervisor.py NAME (imported lazily there)


def _all_queues() -> tuple[str, ...]:
    from call_router.settings import QUEUES

    return QUEUES


@app.command()
def down() -> None:
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


app.command("status")(status_command)
app.command("doctor")(doctor_command)


# --- services (foreground; `up` runs them in the background) ------------------------------


@app.command()
def agi(
    workers: str | None = typer.Option(
        None,
        "--workers",
        help="FastAGI processes sharing the port (a number or 'auto': one per CPU); "
        "default HOTLINE_AGI_WORKERS (1).",
    ),
    server: int = typer.Option(
        1,
        "--server",
        min=1,
        max=16,
        help="Which server of this box's FastAGI pool (HOTLINE_AGI_POOL) to run: 1 is "
        "agi_host:agi_port; K listens on the pool's K-th address, with files of its own.",
    ),
    worker: int | None = typer.Option(None, hidden=True),
    listen_fd: int | None = typer.Option(None, hidden=True),
    ready_fd: int | None = typer.Option(None, hidden=True),
    parent: int | None = typer.Option(None, hidden=True),
) -> None:
    """Run the FastAGI server in the foreground."""
    from agi_scripts import workers as pool
    from agi_scripts.event_loop import loop_factory
    from agi_scripts.worker_pool import serve_workers
    from agi_scripts.worker_process import run_worker
    from agi_scripts.worker_spools import adopt_spools, hold_spool
    from hotline.services import run_foreground

    if server != 1:
        # Its workers (agi_scripts/workers.py) inherit the environment: the same server.
        os.environ["HOTLINE_AGI_SERVER"] = str(server)
    settings = pool_member(get_settings())
    if worker is not None:  # started by the parent below (agi_scripts/worker_pool.py)
        if listen_fd is None or ready_fd is None or parent is None:
            raise _fail("--worker needs --listen-fd, --ready-fd and --parent")
        run_worker(settings, worker, listen_fd, ready_fd, parent)
        return
    warn_loosened(settings)
    try:
        count = pool.worker_count(workers if workers is not None else settings.agi_workers)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    if count == 1:
        from agi_scripts.server import serve

        # Spools of workers from an earlier `--workers N` run are replayed by this process.
        for adopted in adopt_spools(settings.agi_spool_file, 1):
            typer.echo(
                f"replaying {adopted.writes} call-log writes left by {adopted.orphan}", err=True
            )
        hold_spool(settings.agi_spool_file)  # for this process's life (after adopting)
        run_foreground(settings, settings.agi_service, serve, loop_factory(settings.agi_uvloop))
    else:
        run_foreground(
            settings, settings.agi_service, functools.partial(serve_workers, workers=count)
        )


def pool_member(settings: Settings) -> Settings:
    """The settings of FastAGI server settings.agi_server of the pool: its address (FastAGI
    and AudioSocket on the pool entry's host); its spool, pid and ready files follow."""
    server = settings.agi_server
    if server == 1:
        return settings
    addresses = settings.agi_addresses
    if server > len(addresses):
        raise _fail(f"--server {server}: HOTLINE_AGI_POOL has {len(addresses)} addresses")
    host, _, port = addresses[server - 1].rpartition(":")
    return settings.model_copy(
        update={"agi_host": host, "agi_port": int(port), "audiosocket_host": host}
    )


@app.command()
def router() -> None:
    """Run the AMI listener in the foreground."""
    from call_router.router_service import serve
    from hotline.services import run_foreground

    settings = get_settings()
    warn_loosened(settings)
    run_foreground(
        settings, "router", functools.partial(serve, apply_sip_bans=lambda: apply_bans(settings))
    )


@app.command()
def supervise() -> None:
    """Restart the services of `hotline up` that die (`up` runs it in the background)."""
    from hotline.supervisor import run

    run(get_settings())


@app.command()
def dashboard() -> None:
    """Run the dashboard in the foreground."""
    from dashboard.main import main

    warn_loosened(get_settings())
    main()


# --- operations ---------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the call-log database."""
    settings = get_settings()
    _database(settings).dispose()
    typer.echo("database is up to date")


@operators_app.command("add")
def operators_add(
    name: str,
    queues: Annotated[str, typer.Option(help="Queues, e.g. plumbing,coordinator:5 (:penalty).")],
    language: Annotated[str, typer.Option(help="ru or en")] = "ru",
    login: Annotated[
        str | None, typer.Option(help="SIP login (default: next free number).")
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(help="The tenant (slug) whose specialist this is: its own queues."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an operator and print the SIP login and password. With --tenant T the
    operator is T's: the services named (plumbing, ...) are T's own queues where T has them."""
    from call_router.operators import (
        RosterError,
        add_operator,
        operator_dict,
        skills_for_tenant,
    )
    from call_router.tenants import TenantError

    settings = get_settings()
    db = _database(settings)
    try:
        with db.session() as session:
            skills, tenant_id = skills_for_tenant(session, queues, tenant)
            operator = add_operator(
                session, name, skills, language=language, login=login, tenant_id=tenant_id
            )
            info = operator_dict(operator)
    except (RosterError, TenantError) as err:
        raise _fail(f"error: {err}", 2) from None
    render_asterisk(settings)
    info["applied"] = reload_asterisk(settings)
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False))
    else:
        typer.echo(
            f"operator {info['name']}: "
            f"SIP login {info['sip_login']} password {info['sip_password']}"
        )


@operators_app.command("list")
def operators_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the roster (passwords only in --json)."""
    from call_router.operators import list_operators, operator_dict

    db = _database(get_settings())
    with db.session() as session:
        rows = [operator_dict(op) for op in list_operators(session)]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        queues = ",".join(f"{q['queue']}:{q['penalty']}" for q in row["queues"])  # type: ignore[attr-defined]
        state = "enabled" if row["enabled"] else "disabled"
        typer.echo(f"{row['sip_login']:<8} {state:<9} {row['name']}  [{queues}]")


@operators_app.command("disable")
def operators_disable(login: str) -> None:
    """Disable an operator: their endpoint and queue memberships go away."""
    from call_router.operators import RosterError, set_enabled

    settings = get_settings()
    db = _database(settings)
    try:
        with db.session() as session:
            set_enabled(session, login, False)
    except RosterError as err:
        raise _fail(f"error: {err}", 2) from None
    render_asterisk(settings)
    reload_asterisk(settings)
    typer.echo(f"operator {login} disabled")


@prompts_app.command("build")
def prompts_build(
    force: Annotated[bool, typer.Option(help="Regenerate generated prompts.")] = False,
) -> None:
    """Synthesise the voice prompts with espeak-ng (studio recordings are kept)."""
    from call_router.flows.prompts import build_prompts

    built = build_prompts(get_settings(), force=force)
    typer.echo(f"{len(built)} prompt(s) built")


@app.command()
def call(
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
        raise _fail(f"error: no such audio file: {audio}", 2)
    if any(ch not in "0123456789*#" for ch in dtmf):
        raise _fail("error: --dtmf takes digits, * and #", 2)
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

    db = _database(settings)
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
