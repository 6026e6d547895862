"""The FastAGI processes' event loop: uvloop when it is installed and not turned off.

uvloop (libuv, in C) does a socket read, a write and a wake-up for far less CPU than the
stdlib's selector loop; a FastAGI server is little else (BENCHMARKS.md, "FastAGI server").
`HOTLINE_AGI_UVLOOP=false` keeps the stdlib loop (to compare, or if uvloop misbehaves).
"""

from __future__ import annotations

import asyncio
import gc
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


# A young-generation pass every this many new container objects (Python's default: 700). A
# FastAGI process keeps every caller's menu state alive for the length of the call, so at the
# default most passes scanned live calls again and freed nothing; a pass over 10 000 objects
# takes well under a millisecond.
YOUNG_GENERATION_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Once start-up is done: what it loaded (SQLAlchemy, the flows, the models: ~100k objects)
    left out of the collector's full passes (gc.freeze), each of which would otherwise stop
    every call for ~30 ms, and young passes less often (YOUNG_GENERATION_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
