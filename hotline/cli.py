"""`hotline`: the one entry point for every admin operation (its commands live in cli_*.py)."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from call_router.settings import SettingsFileMissing
from hotline.cli_agents import app as agents_cli
from hotline.cli_areas import app as areas_cli
from hotline.cli_asterisk import app as asterisk_cli
from hotline.cli_callbacks import app as callbacks_cli
from hotline.cli_calls import app as calls_cli
from hotline.cli_cluster import app as cluster_cli
from hotline.cli_flows import app as flows_cli
from hotline.cli_health import doctor_command, status_command
from hotline.cli_i18n import app as i18n_cli
from hotline.cli_incidents import app as incidents_cli
from hotline.cli_lifecycle import db_app, down_command, prompts_app, up_command
from hotline.cli_meters import app as meters_cli
from hotline.cli_models import models_app
from hotline.cli_operators import app as operators_cli
from hotline.cli_reports import app as reports_cli
from hotline.cli_requests import crews_app, open311_app, requests_app
from hotline.cli_retention import app as retention_cli
from hotline.cli_security import app as security_cli
from hotline.cli_services import agi_command, dashboard_command, router_command, supervise_command
from hotline.cli_speech import app as speech_cli
from hotline.cli_staffing import staffing_command
from hotline.cli_tenants import buildings_app, numbers_app, tenants_app
from hotline.cli_testcall import call_command
from hotline.cli_users import tokens_app, users_app

# `hotline --help` lists the commands, then the groups, each in the order registered here.
app = typer.Typer(help="Hotline: IVR and contact-centre engine on Asterisk.", no_args_is_help=True)
app.add_typer(asterisk_cli, name="asterisk")
app.add_typer(operators_cli, name="operators")
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

app.command("staffing", help="Operators needed per quarter hour next week (Erlang C).")(
    staffing_command
)
app.command("up")(up_command)
app.command("down")(down_command)
app.command("status")(status_command)
app.command("doctor")(doctor_command)
# The services in the foreground (`up` runs them in the background).
app.command("agi")(agi_command)
app.command("router")(router_command)
app.command("supervise")(supervise_command)
app.command("dashboard")(dashboard_command)
app.command("call")(call_command)


@app.callback()
def _process_setup() -> None:
    """Every command: files and folders it creates are the hotline user's alone, and log
    lines go to stderr, so stdout carries only the command's output (`--json`: only JSON)."""
    from call_router.log_setup import configure_logging
    from call_router.private_files import make_private

    make_private()
    configure_logging()


def main() -> None:
    try:
        app()
    except (ValidationError, SettingsFileMissing) as exc:
        if isinstance(exc, ValidationError) and exc.title != "Settings":
            raise
        # A wrong HOTLINE_* value or settings file: what is wrong, not a traceback.
        for problem in settings_problems(exc):
            print(f"hotline: {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def settings_problems(exc: ValidationError | SettingsFileMissing) -> list[str]:
    """One line per wrong setting, named as the admin sets it. The value itself is left out:
    it may be a secret (a database URL's password)."""
    if isinstance(exc, SettingsFileMissing):
        return [str(exc)]
    problems = []
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"])
        problems.append(
            f"HOTLINE_{name.upper()} (or `{name}` in the settings file): "
            f"{error['msg'].removeprefix('Value error, ')}"
        )
    return problems


if __name__ == "__main__":
    main()
