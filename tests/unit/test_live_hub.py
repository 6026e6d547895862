"""The shared live picture (dashboard/live_hub.py): one computation for concurrent askers,
reused until invalidated or too old. A fake clock; no Redis needed."""

from __future__ import annotations

import asyncio

import pytest

from dashboard import live_hub
from dashboard.live_hub import SharedPicture


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 0.001) -> None:
        self.now += seconds


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(live_hub, "clock", fake)
    return fake


class Counter:
    """A computation that counts its runs and can be held open until released."""

    def __init__(self, clock: FakeClock) -> None:
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self._clock = clock

    async def __call__(self) -> int:
        self.runs += 1
        run = self.runs
        self.started.set()
        self._clock.tick()  # the computation reads the state after it started
        await self.release.wait()
        return run


async def test_concurrent_askers_share_one_computation(fake_clock: FakeClock) -> None:
    shared: SharedPicture[int] = SharedPicture(max_age=1.0)
    compute = Counter(fake_clock)
    compute.release.clear()
    askers = [asyncio.ensure_future(shared.get(compute)) for _ in range(20)]
    await compute.started.wait()  # every asker has asked by now
    assert compute.runs == 1
    compute.release.set()
    assert await asyncio.gather(*askers) == [1] * 20
    assert shared.computations == 1


async def test_a_fresh_picture_is_reused_and_an_old_one_is_not(fake_clock: FakeClock) -> None:
    shared: SharedPicture[int] = SharedPicture(max_age=1.0)
    compute = Counter(fake_clock)
    assert await shared.get(compute) == 1
    fake_clock.tick(0.9)
    assert await shared.get(compute) == 1
    # Past the age limit (e.g. Redis down, so no event can say anything changed).
    fake_clock.tick(0.2)
    assert await shared.get(compute) == 2


async def test_invalidation_makes_the_next_asker_compute_at_once(fake_clock: FakeClock) -> None:
    shared: SharedPicture[int] = SharedPicture(max_age=3600.0)
    compute = Counter(fake_clock)
    assert await shared.get(compute) == 1
    fake_clock.tick()
    shared.invalidate()
    fake_clock.tick()
    assert await shared.get(compute) == 2
    assert await shared.get(compute) == 2


async def test_a_computation_started_before_an_event_is_not_joined_after_it(
    fake_clock: FakeClock,
) -> None:
    shared: SharedPicture[int] = SharedPicture(max_age=3600.0)
    compute = Counter(fake_clock)
    compute.release.clear()
    before = asyncio.ensure_future(shared.get(compute))
    await compute.started.wait()
    fake_clock.tick()
    shared.invalidate()  # an event while the first computation runs
    fake_clock.tick()
    after = asyncio.ensure_future(shared.get(compute))
    await asyncio.sleep(0)
    compute.release.set()
    # The asker from before the event gets the running one; the one after it, a new one.
    assert (await before, await after) == (1, 2)
    # And the newer result is the one kept.
    assert await shared.get(compute) == 2


async def test_an_asker_may_demand_a_picture_read_after_a_moment(fake_clock: FakeClock) -> None:
    shared: SharedPicture[int] = SharedPicture(max_age=3600.0)
    compute = Counter(fake_clock)
    assert await shared.get(compute) == 1
    fake_clock.tick()
    seen_event_at = live_hub.clock()
    fake_clock.tick()
    assert await shared.get(compute, not_before=seen_event_at) == 2
    # Another screen that saw the same event is served the same picture.
    assert await shared.get(compute, not_before=seen_event_at) == 2


async def test_a_failed_computation_is_not_kept_and_a_gone_asker_does_not_cancel_it(
    fake_clock: FakeClock,
) -> None:
    shared: SharedPicture[int] = SharedPicture(max_age=3600.0)

    async def broken() -> int:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        await shared.get(broken)
    compute = Counter(fake_clock)
    compute.release.clear()
    leaving = asyncio.ensure_future(shared.get(compute))
    staying = asyncio.ensure_future(shared.get(compute))
    await compute.started.wait()
    leaving.cancel()  # a screen that disconnects mid-way
    compute.release.set()
    assert await staying == 1
    assert compute.runs == 1
