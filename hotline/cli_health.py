"""`hotline status [--json]` and `hotline doctor`: what runs, and each dependency's health
(call_router/health.py), in plain words for a person or as JSON for a script."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from call_router import health
from call_router.settings import Settings, get_settings

# Exit code when something is down (the historic `hotline status` code).
EXIT_DOWN = 3
# Which of our processes a dependency check is about.
_CHECKED_BY = {
    "asterisk": "asterisk",
    "ami_link": "router",
    "router_lag": "router",
    "router_spool": "router",
    "fastagi": "agi",
}


def gather(settings: Settings) -> dict[str, Any]:
    """Processes we started and every dependency's check."""
    from hotline import services, supervisor
    from hotline.asterisk.sandbox import Asterisk

    ast = Asterisk(settings).status()
    processes: list[dict[str, Any]] = [
        {"name": "asterisk", "running": ast.running, "pid": ast.pid, "detail": ast.detail}
    ]
    records = supervisor.read_records(settings)
    for name in (*services.service_names(settings), supervisor.NAME):
        st = services.status(settings, name)
        record = records.get(name)
        processes.append(
            {
                "name": name,
                "running": st.running,
                "pid": st.pid,
                "detail": st.detail,
                # How often `hotline supervise` restarted it, and whether it gave up.
                "restarts": record.restarts if record else 0,
                "last_restart": record.last_restart if record else None,
                "last_exit": record.last_exit if record else None,
                "gave_up": bool(record and record.gave_up),
                "fast_crashes": record.fast_crashes if record else 0,
                "log": str(services.log_file(settings, name)),
            }
        )
    checks = health.check_all(settings)
    ok = all(p["running"] and not p.get("gave_up") for p in processes) and all(c.ok for c in checks)
    return {
        "ok": ok,
        "processes": processes,
        "dependencies": {c.name: c.as_dict() for c in checks},
    }


def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            help="Only this dependency check (repeatable; e.g. fastagi, ami_link): a container's "
            "health check, where the other processes run elsewhere.",
        ),
    ] = None,
) -> None:
    """What runs, and whether each dependency works (exit 3 if anything is down)."""
    settings = get_settings()
    if only:
        _checks_only(settings, only, as_json)
    report = gather(settings)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
    else:
        for proc in report["processes"]:
            if proc["name"] == "asterisk":
                state = "running" if proc["running"] else "stopped"
                typer.echo(f"asterisk   {state}  {proc['detail']}")
            else:
                typer.echo(_process_line(proc))
        for check in report["dependencies"].values():
            typer.echo(
                f"{check['name']:<12} {'ok' if check['ok'] else 'DOWN':<4}  {check['detail']}"
            )
    raise typer.Exit(0 if report["ok"] else EXIT_DOWN)


def _checks_only(settings: Settings, names: list[str], as_json: bool) -> None:
    """The named dependency checks alone (no process list): exit 0, or 3 if one is down."""
    unknown = sorted(set(names) - set(health.CHECK_NAMES))
    if unknown:
        raise typer.BadParameter(
            f"no check named {', '.join(unknown)}; the checks are {', '.join(health.CHECK_NAMES)}",
            param_hint="--check",
        )
    checks = {check.name: check for check in health.check_all(settings)}
    wanted = [checks[name] for name in dict.fromkeys(names)]
    ok = all(check.ok for check in wanted)
    if as_json:
        typer.echo(json.dumps({"ok": ok, "dependencies": {c.name: c.as_dict() for c in wanted}}))
    else:
        for check in wanted:
            typer.echo(f"{check.name:<12} {'ok' if check.ok else 'DOWN':<4}  {check.detail}")
    raise typer.Exit(0 if ok else EXIT_DOWN)


def _process_line(proc: dict[str, Any]) -> str:
    pid = f"  pid {proc['pid']}" if proc["pid"] else ""
    line = f"{proc['name']:<10} {proc['detail']}{pid}"
    if proc["restarts"]:
        line += f"  restarts {proc['restarts']} (last {proc['last_restart']}"
        line += f", {proc['last_exit']})" if proc["last_exit"] else ")"
    if proc["gave_up"]:
        line += (
            f"  GIVEN UP after {proc['fast_crashes']} fast crashes "
            f"({proc['last_exit']}): see {proc['log']}"
        )
    return line


def doctor_command() -> None:
    """Explain in plain words what is broken and what to run (exit 3 if anything is)."""
    report = gather(get_settings())
    stopped = {proc["name"] for proc in report["processes"] if not proc["running"]}
    if stopped == {proc["name"] for proc in report["processes"]}:
        problems = ["Nothing of the hotline is running. Run `hotline up`."]
    else:
        problems = [
            f"{proc['name']} is not running ({proc['detail']}). Run `hotline up`."
            for proc in report["processes"]
            if not proc["running"]
        ]
    problems += [
        f"{proc['name']} keeps crashing: the supervisor gave up after {proc['fast_crashes']} "
        f"fast crashes ({proc['last_exit']}). Read {proc['log']}, fix the cause, then run "
        "`hotline up`."
        for proc in report["processes"]
        if proc.get("gave_up")
    ]
    problems += [
        f"{check['name']}: {check['detail']}.\n    What to do: {check['hint']}."
        for check in report["dependencies"].values()
        # A stopped process is said once above, not again through each of its checks.
        if not check["ok"] and _CHECKED_BY.get(check["name"]) not in stopped
    ]
    if not problems:
        typer.echo("Everything works: Asterisk, the router, the database, Redis and FastAGI.")
        raise typer.Exit(0)
    typer.echo(f"{len(problems)} problem(s) found:")
    for problem in problems:
        typer.echo(f"  - {problem}")
    raise typer.Exit(EXIT_DOWN)
