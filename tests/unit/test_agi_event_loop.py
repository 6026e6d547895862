"""The FastAGI processes' event loop (agi_scripts/event_loop.py, HOTLINE_AGI_UVLOOP)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from agi_scripts.event_loop import loop_factory, run
from call_router.settings import Settings


def test_uvloop_is_the_default_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().agi_uvloop is True
    monkeypatch.setenv("HOTLINE_AGI_UVLOOP", "false")
    assert Settings().agi_uvloop is False


@pytest.mark.parametrize(("use_uvloop", "expected"), [(True, uvloop.Loop), (False, None)])
def test_the_server_runs_on_the_loop_the_setting_names(
    use_uvloop: bool, expected: type | None
) -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    run(main(), use_uvloop=use_uvloop)
    if expected is None:
        assert loop_factory(use_uvloop) is None
        assert not isinstance(seen[0], uvloop.Loop)
    else:
        assert isinstance(seen[0], expected)
