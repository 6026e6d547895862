"""Auto-pause counts live in the database: a router restart forgets no missed ring, a replayed
ring is not counted twice, an answer or a break starts the count afresh."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from call_router import missed_rings
from call_router.ami_listener import AmiListener
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.live_state import LiveState
from call_router.settings import Settings
from tests.unit.conftest import model_database
from tests.unit.test_ami_events import Call_

OP = "PJSIP/ivanov"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    yield from model_database(tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", autopause_after_missed_rings=2)


class Router:
    """A router process: a fresh listener on the same database, recording its pauses."""

    def __init__(self, settings: Settings, db: Database, live: LiveState) -> None:
        self.listener = AmiListener(settings, CallLog(db, callback_min_wait=10), live, db=db)
        self.pauses: list[tuple[str, str, str]] = []
        agents = self.listener.agents.service
        assert agents is not None

        async def pause(_sender: Any, login: str, reason: str, source: str) -> None:
            self.pauses.append((login, reason, source))

        agents.pause = pause  # type: ignore[method-assign]
        self.listener.agents.sender = object()  # type: ignore[assignment]

    async def handle(self, *events: dict[str, str]) -> None:
        for event in events:
            await self.listener.handle(event)


def count(db: Database) -> int:
    with db.session() as session:
        return missed_rings.missed(session, OP)


def waiting_call(linkedid: str, t: float) -> tuple[Call_, list[dict[str, str]]]:
    call = Call_(linkedid, number=f"+7916000{linkedid[-2:]}00")
    return call, [call.newchannel(t), call.queue_join(t + 5)]


def missed(call: Call_, t: float, leg: str) -> dict[str, str]:
    return call.agent("AgentRingNoAnswer", t, "ivanov", leg, RingTime="15")


async def test_a_missed_ring_before_a_restart_counts_after_it(
    settings: Settings, db: Database, live: LiveState
) -> None:
    first, events = waiting_call("1763895000.11", 0)
    before = Router(settings, db, live)
    await before.handle(*events, missed(first, 20, "1763895010.12"))
    await before.handle(missed(first, 20, "1763895010.12"))  # replayed: not a second miss
    assert count(db) == 1 and before.pauses == []

    after = Router(settings, db, live)  # the router restarted
    second, events = waiting_call("1763895100.21", 100)
    await after.handle(*events, missed(second, 120, "1763895110.22"))
    assert after.pauses == [("ivanov", "auto: missed 2 rings", "auto")]
    assert count(db) == 0  # the pause starts the next count


async def test_an_answer_or_a_break_starts_the_count_afresh(
    settings: Settings, db: Database, live: LiveState
) -> None:
    router = Router(settings, db, live)
    call, events = waiting_call("1763895200.31", 200)
    await router.handle(*events, missed(call, 220, "1763895210.32"))
    assert count(db) == 1
    await router.handle(call.agent("AgentConnect", 240, "ivanov", "1763895230.33", HoldTime="35"))
    assert count(db) == 0

    await router.handle(missed(call, 260, "1763895250.34"))
    assert count(db) == 1
    pause = {
        "Event": "QueueMemberPause", "Queue": "plumbing", "MemberName": "ivanov",
        "Interface": OP, "StateInterface": OP, "Membership": "dynamic", "Penalty": "0",
        "CallsTaken": "0", "LastCall": "0", "LastPause": "0", "InCall": "0", "Status": "1",
        "Paused": "1", "PausedReason": "lunch", "Ringinuse": "0", "Wrapuptime": "0",
    }  # fmt: skip
    await router.handle({**pause, "Event": "QueueMemberStatus", "Paused": "0"})
    assert count(db) == 1  # a member merely new to this router is not a change
    await router.handle(pause)
    assert count(db) == 0
    assert router.pauses == []
