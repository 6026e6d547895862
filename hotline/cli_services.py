"""`hotline agi|router|supervise|dashboard`: one service in the foreground.

`hotline up` runs them in the background. Registered by hotline/cli.py."""

from __future__ import annotations

import functools
import os

import typer

from call_router.settings import Settings, get_settings
from hotline.cli_asterisk import apply_bans
from hotline.cli_support import fail, warn_loosened


def agi_command(
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
    worker: int | None = typer.Option(
        None, hidden=True, help="Internal: this worker's number (set by the parent process)."
    ),
    listen_fd: int | None = typer.Option(
        None, hidden=True, help="Internal: file descriptor of the shared listening socket."
    ),
    ready_fd: int | None = typer.Option(
        None, hidden=True, help="Internal: file descriptor to report readiness on."
    ),
    parent: int | None = typer.Option(
        None, hidden=True, help="Internal: the parent process's PID (exit when it is gone)."
    ),
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
            raise fail("--worker needs --listen-fd, --ready-fd and --parent")
        run_worker(settings, worker, listen_fd, ready_fd, parent)
        return
    warn_loosened(settings)
    try:
        count = pool.worker_count(workers if workers is not None else settings.agi_workers)
    except ValueError as exc:
        raise fail(str(exc)) from exc
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
        raise fail(f"--server {server}: HOTLINE_AGI_POOL has {len(addresses)} addresses")
    host, _, port = addresses[server - 1].rpartition(":")
    return settings.model_copy(
        update={"agi_host": host, "agi_port": int(port), "audiosocket_host": host}
    )


def router_command() -> None:
    """Run the AMI listener in the foreground."""
    from call_router.router_service import serve
    from hotline.services import run_foreground

    settings = get_settings()
    warn_loosened(settings)
    run_foreground(
        settings, "router", functools.partial(serve, apply_sip_bans=lambda: apply_bans(settings))
    )


def supervise_command() -> None:
    """Restart the services of `hotline up` that die (`up` runs it in the background)."""
    from call_router.log_setup import configure_logging
    from hotline.supervisor import run

    settings = get_settings()
    configure_logging(settings)
    run(settings)


def dashboard_command() -> None:
    """Run the dashboard in the foreground."""
    from dashboard.main import main

    warn_loosened(get_settings())
    main()
