"""A process's one AMI link (call_router/ami_client.py `AmiLink`): its pool of actions bounds
what is on the wire and what waits, and a silent or vanished Asterisk gives a clear error, not a
hang; the next action logs in again.

The AMI peer is the tiny AMI server of test_ami_events.py, taught to hold Ping replies back, to
say nothing, or to hang up; the real Asterisk is tests/integration/test_ami_link_e2e.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from call_router import click_to_call
from call_router.ami_client import AmiBusy, AmiLink, AmiUnavailable
from call_router.settings import Settings
from tests.unit.test_ami_events import FakeAsterisk, free_port, wait_until


class PoolAsterisk(FakeAsterisk):
    """Pings wait for `release()` (when `hold`), get no reply (`silent`), or end the
    connection (`hang_up`); an Originate is queued and its OriginateResponse follows, unless
    `hang_up` is set (the connection ends after "queued")."""

    def __init__(self) -> None:
        super().__init__(channels=[])
        self.hold = False
        self.silent = 0  # the next N Pings get no reply
        self.hang_up = 0  # the next N Pings or Originates end the connection
        self.pending: list[str] = []  # ActionIDs of held Pings
        self.most_pending = 0
        self.originates = 0

    def release(self) -> None:
        """Answer the oldest held Ping."""
        action_id = self.pending.pop(0)
        self.writers[-1].write(_message({"Response": "Success", "ActionID": action_id}))

    def _replies(self, action: dict[str, str]) -> list[dict[str, str]]:
        name = action.get("Action", "").lower()
        action_id = action.get("ActionID", "")
        if name == "originate":
            self.originates += 1
            queued = {"Response": "Success", "ActionID": action_id, "Message": "queued"}
            if self.hang_up:
                self.hang_up -= 1
                self.drop_clients()
                return []
            return [queued, {"Event": "OriginateResponse", "ActionID": action_id,
                             "Response": "Failure", "Reason": "0"}]  # fmt: skip
        if name != "ping":
            return super()._replies(action)
        if self.hang_up:
            self.hang_up -= 1
            self.drop_clients()
            return []
        if self.silent:
            self.silent -= 1
            return []
        if self.hold:
            self.pending.append(action_id)
            self.most_pending = max(self.most_pending, len(self.pending))
            return []
        return super()._replies(action)


def _message(fields: dict[str, Any]) -> bytes:
    return ("".join(f"{key}: {value}\r\n" for key, value in fields.items()) + "\r\n").encode()


async def held_ping(link: AmiLink, asterisk: PoolAsterisk) -> asyncio.Task[list[dict[str, str]]]:
    """A Ping on the wire that Asterisk holds unanswered (until `release()`)."""
    ping = asyncio.create_task(link.send({"Action": "Ping"}))
    await wait_until(lambda: len(asterisk.pending) == 1)
    return ping


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", ami_host="127.0.0.1", ami_port=free_port())


@pytest.fixture
async def asterisk(settings: Settings) -> Any:
    server = PoolAsterisk()
    await server.start(settings.ami_port)
    yield server
    await server.stop()


async def test_no_more_actions_on_the_wire_than_the_pool_holds(
    settings: Settings, asterisk: PoolAsterisk
) -> None:
    asterisk.hold = True
    link = AmiLink(settings, "originate", max_in_flight=2)
    try:
        sends = [asyncio.create_task(link.send({"Action": "Ping"})) for _ in range(5)]
        for _ in sends:
            await wait_until(lambda: bool(asterisk.pending))
            asterisk.release()
        replies = await asyncio.gather(*sends)
    finally:
        await link.close()
    assert [reply[0]["Response"] for reply in replies] == ["Success"] * 5
    # Two at a time reached Asterisk, the others waited for a slot; one login for all.
    assert asterisk.most_pending == 2
    assert (link.logins, asterisk.logins) == (1, 1)


async def test_a_full_queue_is_refused_at_once(settings: Settings, asterisk: PoolAsterisk) -> None:
    asterisk.hold = True
    link = AmiLink(settings, "originate", max_in_flight=1, max_waiting=1)
    try:
        on_the_wire = await held_ping(link, asterisk)
        waiting = asyncio.create_task(link.send({"Action": "Ping"}))
        await wait_until(lambda: link._waiting == 1)
        # A third has no place: refused while the other two are still unanswered.
        with pytest.raises(AmiBusy, match="already wait"):
            await link.send({"Action": "Ping"})
        assert not on_the_wire.done() and not waiting.done()
        asterisk.release()
        await wait_until(lambda: len(asterisk.pending) == 1)
        asterisk.release()
        assert (await on_the_wire)[0]["Response"] == "Success"
        assert (await waiting)[0]["Response"] == "Success"
    finally:
        await link.close()


async def test_no_slot_within_the_action_timeout_is_a_clear_error(
    settings: Settings, asterisk: PoolAsterisk
) -> None:
    asterisk.hold = True
    link = AmiLink(settings, "originate", max_in_flight=1, action_timeout=30)
    try:
        on_the_wire = await held_ping(link, asterisk)
        link.action_timeout = 0.2  # the one waiting gives up long before the slot frees
        with pytest.raises(AmiBusy, match="no free slot for Ping"):
            await link.send({"Action": "Ping"})
        asterisk.release()
        assert (await on_the_wire)[0]["Response"] == "Success"
    finally:
        await link.close()


async def test_a_silent_asterisk_times_out_and_the_next_action_logs_in_again(
    settings: Settings, asterisk: PoolAsterisk
) -> None:
    asterisk.silent = 1
    link = AmiLink(settings, "originate", action_timeout=0.3)
    try:
        with pytest.raises(AmiUnavailable, match=r"no reply to Ping in 0.3s"):
            await link.send({"Action": "Ping"})
        (pong,) = await link.send({"Action": "Ping"})
    finally:
        await link.close()
    assert pong["Response"] == "Success"
    assert (link.logins, asterisk.logins) == (2, 2)


async def test_a_connection_lost_mid_action_fails_at_once_and_the_next_logs_in(
    settings: Settings, asterisk: PoolAsterisk
) -> None:
    asterisk.hang_up = 1
    # A long timeout: the error must come from the lost connection, not from waiting it out.
    link = AmiLink(settings, "originate", action_timeout=60)
    try:
        with pytest.raises(AmiUnavailable, match="lost before the reply to Ping"):
            await asyncio.wait_for(link.send({"Action": "Ping"}), 10)
        (pong,) = await link.send({"Action": "Ping"})
    finally:
        await link.close()
    assert pong["Response"] == "Success"
    assert asterisk.logins == 2


async def test_an_originate_whose_connection_is_lost_before_its_response_fails_at_once(
    settings: Settings, asterisk: PoolAsterisk
) -> None:
    asterisk.hang_up = 1
    link = AmiLink(settings, "originate")
    fields = {"Action": "Originate", "ActionID": "lost-1", "Channel": "PJSIP/x"}
    try:
        with pytest.raises(AmiUnavailable, match="lost before"):
            await asyncio.wait_for(link.originate(fields, timeout=60), 10)
    finally:
        await link.close()


async def test_many_click_to_calls_share_one_login(
    settings: Settings, asterisk: PoolAsterisk
) -> None:
    link = AmiLink(settings, "originate", max_in_flight=3)
    calls = [
        click_to_call.PlacedCall(i, i, f"hotline-out-pool-{i}", "op_anna", "+74950001234")
        for i in range(12)
    ]
    try:
        results = await asyncio.gather(
            *(click_to_call.originate(settings, call, link=link) for call in calls)
        )
    finally:
        await link.close()
    assert [r.detail.get("ActionID") for r in results] == [c.action_id for c in calls]
    assert asterisk.originates == 12
    assert (link.logins, asterisk.logins) == (1, 1)
