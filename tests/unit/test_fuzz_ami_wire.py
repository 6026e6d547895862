"""Property-based fuzzing of the AMI link as the router reads it: bytes on a real socket.

The router (AmiListener.run) is connected to a tiny AMI server (tests/unit/test_ami_events.py)
that sends hostile messages: lines without a colon, undecodable bytes, unknown or missing
`Event`, repeated keys, huge values, events of ours with garbage fields. Property: the
listener stays connected and the next real call's events are still written, in time.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from call_router.ami_listener import AmiListener
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.live_state import LiveState
from call_router.settings import Settings
from tests.unit.conftest import model_database
from tests.unit.fuzzing import SOCKETS
from tests.unit.test_ami_events import Call_, FakeAsterisk, free_port, wait_until

KEYS = ["Event", "Linkedid", "Uniqueid", "Context", "CallerIDNum", "CallerIDName", "Queue",
        "HoldTime", "Timestamp", "Channel", "Interface", "Variable", "Value"]  # fmt: skip
EVENTS = ["Newchannel", "Hangup", "QueueCallerJoin", "AgentConnect", "VarSet", "UserEvent",
          "QueueMemberStatus", "FullyBooted", "Nonsense", ""]  # fmt: skip

value = st.one_of(
    st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(EVENTS),
    st.just("x" * 50_000),
)
header_line = st.one_of(
    st.tuples(st.sampled_from(KEYS), value).map(lambda kv: f"{kv[0]}: {kv[1]}".encode()),
    st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.just(b"a line without a colon"),
    st.just(b": value without a key"),
)
hostile_message = st.lists(header_line, min_size=1, max_size=8).map(
    lambda lines: b"\r\n".join(lines) + b"\r\n\r\n"
)

_serial = itertools.count(1)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    yield from model_database(tmp_path)


@pytest.fixture
async def router(tmp_path: Path, db: Database) -> AsyncIterator[tuple[FakeAsterisk, CallLog]]:
    """One listener for all the examples: it must survive each of them."""
    settings = Settings(state_dir=tmp_path / "state", ami_port=free_port(), callback_min_wait=0)
    live = LiveState.from_url(f"redis://127.0.0.1:{free_port()}/0", "hotline-fuzz")
    asterisk = FakeAsterisk(channels=[])
    await asterisk.start(settings.ami_port)
    call_log = CallLog(db)
    listener = AmiListener(settings, call_log, live)
    ready = asyncio.Event()
    task = asyncio.create_task(listener.run(ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield asterisk, call_log
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asterisk.stop()
        await live.close()


@SOCKETS
@given(messages=st.lists(hostile_message, min_size=1, max_size=4))
async def test_hostile_ami_messages_never_cost_the_next_call(
    router: tuple[FakeAsterisk, CallLog], messages: list[bytes]
) -> None:
    asterisk, call_log = router
    (writer,) = asterisk.writers  # still the first connection: nothing made the router drop it
    for message in messages:
        writer.write(message)
    call = Call_(f"1763894000.{next(_serial)}")
    await asterisk.send_event(call.newchannel(0))
    await asterisk.send_event(call.hangup(5))

    def ended() -> bool:
        row = call_log.get_call(call.linkedid)
        return row is not None and row.ended_at is not None

    await wait_until(ended, timeout=10)
    assert asterisk.logins == 1
