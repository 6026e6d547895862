"""The FastAGI processes' event loop: uvloop when it is installed and not turned off.

uvloop (libuv, in C) does a socket read, a write and a wake-up for far less CPU than the
stdlib's selector loop; a FastAGI server is little else (BENCHMARKS.md, "FastAGI server").
`HOTLINE_AGI_UVLOOP=false` keeps the stdlib loop (to compare, or if uvloop misbehaves).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None (asyncio's default loop) when off or not installed."""
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, None], *, use_uvloop: bool) -> None:
    """asyncio.run(main) on the loop `loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
        runner.run(main)
