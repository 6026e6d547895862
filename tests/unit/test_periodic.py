"""The router's background-job loop (call_router/periodic.py)."""

from __future__ import annotations

import asyncio

from call_router.periodic import run_every


async def test_a_failing_pass_is_logged_and_the_next_one_runs() -> None:
    passes: list[int] = []
    third = asyncio.Event()

    async def one_pass() -> None:
        passes.append(len(passes) + 1)
        if len(passes) == 1:
            raise RuntimeError("the database is restarting")
        if len(passes) == 3:
            third.set()

    job = asyncio.create_task(run_every(0, one_pass, name="demo"))
    try:
        await asyncio.wait_for(third.wait(), timeout=30)
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
    assert passes[:3] == [1, 2, 3]
    assert job.cancelled()
