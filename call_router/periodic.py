"""The router's background jobs: one pass now, then one every interval, for as long as it runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from call_router.db import first_line, unreachable

log = structlog.get_logger(__name__)


async def run_every(
    interval: float, one_pass: Callable[[], Awaitable[object]], *, name: str
) -> None:
    """Run `one_pass` now and every `interval` seconds until cancelled. A failing pass is logged
    as `<name>_failed` and the next one retries: the router must keep running. An unreachable
    database gets one line, not a traceback: rendering one per pass through an outage would
    hold up the router's event loop."""
    while True:
        try:
            await one_pass()
        except Exception as exc:
            if unreachable(exc):
                log.warning(f"{name}_failed", error=first_line(exc))
            else:
                log.exception(f"{name}_failed")
        await asyncio.sleep(interval)
