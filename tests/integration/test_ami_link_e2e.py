"""A process's one AMI link on the real Asterisk: many click-to-calls at once go through one
login (Asterisk lists one manager session for them) and each gets its own OriginateResponse,
matched by ActionID. The link's recovery after an Asterisk restart is in test_faults_e2e.py
(it needs a stack of its own); its pool and timeouts are tests/unit/test_ami_link_pool.py."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from call_router import click_to_call
from call_router.ami_client import AmiLink
from call_router.settings import Settings
from hotline.asterisk.sandbox import Asterisk
from tests.conftest import wait_for

pytestmark = pytest.mark.asterisk


def manager_sessions(settings: Settings, username: str) -> set[tuple[str, ...]]:
    """The manager sessions Asterisk has for `username` (`manager show connected`: user,
    address, start, elapsed, file descriptor, ...), each as its start and file descriptor.
    Asterisk cuts the user name to its first 15 characters there."""
    out = Asterisk(settings).cli("manager show connected")
    sessions = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] == username[:15]:
            sessions.add((fields[2], fields[4]))
    return sessions


def test_many_click_to_calls_go_through_one_manager_session(stack: Settings) -> None:
    username, _ = stack.ami_login("originate")
    before = manager_sessions(stack, username)
    # Phones nobody registered: Asterisk refuses each Originate with its own OriginateResponse
    # (no channel, so nothing reaches the call log).
    calls = [
        click_to_call.PlacedCall(
            9000 + i, 9000 + i, f"hotline-out-shape-{uuid.uuid4().hex}", f"nobody{i}", "84950001"
        )
        for i in range(12)
    ]

    async def place_all() -> tuple[list[click_to_call.OriginateResult], set[tuple[str, ...]], int]:
        link = AmiLink(stack, "originate", max_in_flight=4)
        try:
            results = await asyncio.gather(
                *(click_to_call.originate(stack, call, link=link, ring_seconds=5) for call in calls)
            )
            during = await asyncio.to_thread(manager_sessions, stack, username)
            return list(results), during, link.logins
        finally:
            await link.close()

    results, during, logins = asyncio.run(place_all())
    assert logins == 1
    # One session more while the link was open, however many calls it placed.
    assert len(during - before) == 1, (before, during)
    for call, result in zip(calls, results, strict=True):
        assert result.detail.get("Event") == "OriginateResponse", result.detail
        assert result.detail.get("ActionID") == call.action_id
        assert not result.ok
    wait_for(
        lambda: not (manager_sessions(stack, username) - before),
        what="the link's manager session gone after close",
    )
