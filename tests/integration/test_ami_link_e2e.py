"""A process's one AMI link on the real Asterisk: many click-to-calls at once go through one
login (Asterisk lists one manager session for them) and each gets its own OriginateResponse,
matched by ActionID; the router's daily log rotation goes through its one action link too. The
link's recovery after an Asterisk restart is in test_faults_e2e.py
(it needs a stack of its own); its pool and timeouts are tests/unit/test_ami_link_pool.py."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from call_router import click_to_call, retention
from call_router.ami_client import AmiLink, NoReconnectManager
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


def test_the_daily_log_rotation_goes_through_the_routers_one_link(
    stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LoggerRotate is sent on the router's action link (`hotline-originate`, logged in already
    for virtual hold): Asterisk rotates its logs and the process opens no manager connection of
    its own for it."""
    folder = stack.asterisk_dir / "log"
    username, _ = stack.ami_login("originate")
    before = manager_sessions(stack, username)
    connects: list[str] = []
    real_connect = NoReconnectManager.connect

    def counting_connect(manager: NoReconnectManager, *args: Any, **kwargs: Any) -> Any:
        connects.append(str(manager.config.get("username")))
        return real_connect(manager, *args, **kwargs)

    monkeypatch.setattr(NoReconnectManager, "connect", counting_connect)

    def rotated() -> set[str]:
        return {p.name for p in folder.iterdir() if p.name.startswith("full.")}

    rotated_before = rotated()

    async def rotate() -> tuple[bool, list[str], set[tuple[str, ...]], int]:
        link = AmiLink(stack, "originate")
        try:
            await link.connect()  # as virtual hold's first QueueStatus of the day did
            connects.clear()
            done = await retention.rotate_asterisk_logs(link)
            during = await asyncio.to_thread(manager_sessions, stack, username)
            return done, list(connects), during, link.logins
        finally:
            await link.close()

    done, logins_for_rotation, during, link_logins = asyncio.run(rotate())
    assert done
    assert logins_for_rotation == []  # no manager login of its own, under any AMI user
    assert link_logins == 1
    assert len(during - before) == 1, (before, during)
    wait_for(lambda: rotated() - rotated_before, timeout=10, what="a rotated full log")
