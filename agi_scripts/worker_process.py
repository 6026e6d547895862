"""One worker of `hotline agi --workers N`: serve() on the parent's socket, dying with it.

Its own AudioSocket port and call-log spool; its log lines name it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from agi_scripts.worker_spools import hold_spool, worker_spool
from agi_scripts.workers import READY_LINE, Listeners, audiosocket_port
from call_router.log_setup import configure_logging
from call_router.settings import Settings


def run_worker(settings: Settings, index: int, listen_fd: int, ready_fd: int, parent: int) -> None:
    """One worker: serve() on the parent's socket with its own AudioSocket port and spool."""
    from agi_scripts.event_loop import run
    from agi_scripts.server import serve

    _die_with_parent(parent)
    configure_logging(settings)
    _tag_logs(index)
    sock = socket.socket(fileno=listen_fd)
    own = settings.model_copy(
        update={"audiosocket_port": audiosocket_port(settings.audiosocket_port, index)}
    )
    spool = worker_spool(settings.agi_spool_file, index)
    hold_spool(spool, log=structlog.get_logger("hotline.agi"))  # released when we exit
    listeners = Listeners(agi=sock, spool=spool, worker=index)

    async def main() -> None:
        ready = asyncio.Event()

        async def announce() -> None:
            await ready.wait()
            os.write(ready_fd, READY_LINE)
            os.close(ready_fd)

        announcer = asyncio.create_task(announce())
        try:
            await serve(own, ready=ready, listeners=listeners)
        finally:
            announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await announcer

    run(main(), use_uvloop=settings.agi_uvloop)


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the parent dies (Linux): a worker never serves unsupervised."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)


def _tag_logs(index: int) -> None:
    """Every log line of this process names the worker (its pid is in the status file)."""

    def add_worker(
        _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event.setdefault("agi_worker", index)
        return event

    processors = list(structlog.get_config()["processors"])
    structlog.configure(processors=[add_worker, *processors])
