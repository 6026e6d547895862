"""Property-based fuzzing of AMI event handling, on SQLite and the real PostgreSQL.

Asterisk's events carry caller-controlled text (caller ID, display names) and fields we do
not control (times, counters, channel names). Properties: a handler never raises on any field
value, missing field or huge value (so a bad event can never be the one the consumer loses);
a hostile event aimed at one call never changes another call; and every call still ends and
gets its callback entry when its real events follow the hostile ones. PostgreSQL is here
because it enforces what SQLite does not (column lengths, integer ranges).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from call_router.ami_listener import AmiListener
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.live_state import LiveState
from call_router.models import Call, Callback
from call_router.settings import QUEUES, Settings
from tests.unit.fuzzing import SOCKETS
from tests.unit.test_ami_events import Call_, free_port

# Every field a handler reads (call_router/ami_listener.py, call_router/agents.py).
FIELDS = (
    "Linkedid", "Uniqueid", "Queue", "Context", "Channel", "CallerIDNum", "CallerIDName",
    "Exten", "Position", "Count", "HoldTime", "RingTime", "TalkTime", "Timestamp",
    "MemberName", "Interface", "DestUniqueid", "Reason", "Cause", "Cause-txt", "Variable",
    "Value", "Application", "AppData", "UserEvent", "File", "Result", "Extension",
    "DestType", "TransfereeLinkedid", "TransfererLinkedid", "DestChannel", "DialStatus",
    "Paused", "PausedReason", "Status", "Penalty", "InCall", "Membership", "LastCall",
)  # fmt: skip
EVENTS = (
    "Newchannel", "QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentCalled",
    "AgentRingNoAnswer", "AgentConnect", "AgentComplete", "Hangup", "BlindTransfer",
    "AttendedTransfer", "VarSet", "Newexten", "QueueMemberAdded", "QueueMemberStatus",
    "QueueMemberPause", "QueueMemberRemoved", "UserEvent", "DialBegin", "DialEnd", "Bogus",
)  # fmt: skip

# AMI values are C strings: no NUL; panoramisk decodes them, so no lone surrogates either.
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
value = st.one_of(
    text.filter(lambda t: len(t) <= 40),
    st.integers().map(str),
    st.integers(-(2**63), 2**63).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "-1", "0", "99999999999", "1e300", "-62135596800", "QUEUESTATUS",
                     "VMSTATUS", "HOTLINE_QUEUE", "voicemail", "HotlineCallbackRequest",
                     "HotlineRecording", "callback-out", "from-pstn", "PJSIP/1001",
                     '"Evil" <sip:x>', "line\r\nbreak", "Иван"]),
    st.sampled_from(QUEUES),
    text.filter(lambda t: len(t) > 0).map(lambda t: (t * (5000 // len(t) + 1))[:5000]),
)  # fmt: skip


@st.composite
def hostile_event(draw: st.DrawFn, victim: Call_) -> dict[str, str]:
    """One of the events we handle, about `victim` (so it reaches deep into the handler),
    with some fields replaced by hostile values and some missing."""
    name = draw(st.sampled_from(EVENTS))
    event = {**victim.caller, "Event": name, "Queue": "plumbing", "Timestamp": "1763892010.0"}
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True)):
        event[field] = draw(value)
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        event.pop(field, None)
    return event


_serial = itertools.count(1)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", ami_port=free_port(), callback_min_wait=0)


@pytest.fixture
async def listener(settings: Settings, database: Database) -> AsyncIterator[AmiListener]:
    # Nothing listens on this port: Redis is down, the call log must not care.
    live = LiveState.from_url(f"redis://127.0.0.1:{free_port()}/0", "hotline-fuzz")
    yield AmiListener(settings, CallLog(database, callback_min_wait=0), live)
    await live.close()


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    yield database


def _call(db: Database, linkedid: str) -> Call | None:
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.linkedid == linkedid)).first()
        if call is not None:
            session.expunge(call)
        return call


def _has_callback(db: Database, number: str) -> bool:
    with db.session() as session:
        return (
            session.scalars(select(Callback).where(Callback.caller_number == number)).first()
            is not None
        )


async def _hostile_between_real_calls(
    listener: AmiListener,
    db: Database,
    hostile: list[dict[str, str]],
    victim: Call_,
    n: int,
    *,
    joined: bool = True,
) -> None:
    bystander = Call_(f"1763893000.{n}", number=f"+7496{n:07d}")
    before = [victim.newchannel(0), bystander.newchannel(1)]
    if joined:  # else the router missed the queue join (e.g. it restarted)
        before.insert(1, victim.queue_join(5))
    after = [
        bystander.queue_join(6),
        bystander.abandon(40, hold=34),
        bystander.queue_leave(40),
        bystander.hangup(40),
        victim.abandon(60, hold=55),
        victim.queue_leave(60),
        victim.hangup(60),
    ]
    for event in before + hostile + after:
        await listener.handle(event)  # must never raise

    # The bystander is untouched: abandoned, with its callback entry.
    other = _call(db, bystander.linkedid)
    assert other is not None and other.outcome == "abandoned_in_queue"
    assert _has_callback(db, other.caller_number)
    # The victim still ends, whatever was said about it in between.
    mine = _call(db, victim.linkedid)
    assert mine is not None and mine.ended_at is not None and mine.outcome


def _victim(n: int) -> Call_:
    return Call_(f"1763892000.{n}", number=f"+7495{n:07d}")


@SOCKETS
@given(data=st.data())
async def test_hostile_events_never_raise_and_never_cost_a_call(
    listener: AmiListener, db: Database, data: st.DataObject
) -> None:
    n = next(_serial)
    victim = _victim(n)
    hostile = data.draw(st.lists(hostile_event(victim), min_size=1, max_size=5))
    await _hostile_between_real_calls(
        listener, db, hostile, victim, n, joined=data.draw(st.booleans())
    )


LEG = "1763892010.99"


def _connect(v: Call_, **extra: str) -> dict[str, str]:
    return v.agent("AgentConnect", 10, "ivanov", LEG, **extra)


@pytest.mark.parametrize(
    ("hostile", "joined"),
    [
        # HoldTime beyond timedelta's range, when the queue join was missed: OverflowError.
        (lambda v: [_connect(v, HoldTime="9" * 20)], False),
        # TalkTime beyond PostgreSQL's integer: the Hangup after it failed on every replay.
        (
            lambda v: [
                _connect(v, HoldTime="5"),
                v.agent("AgentComplete", 20, "ivanov", LEG, TalkTime="99999999999"),
            ],
            True,
        ),
        # A linkedid longer than its column: AssertionError in ensure_call.
        (lambda v: [{**v.newchannel(1), "Linkedid": "9" * 80, "Uniqueid": "9" * 80}], True),
        # A UserEvent's queue longer than the callback's column.
        (
            lambda v: [
                {
                    **v.caller,
                    "Event": "UserEvent",
                    "UserEvent": "HotlineCallbackRequest",
                    "Queue": "q" * 100,
                    "Timestamp": "1763892030.0",
                },
            ],  # fmt: skip
            True,
        ),
    ],
    ids=["huge-holdtime", "huge-talktime", "long-linkedid", "long-userevent-queue"],
)
async def test_hostile_event_regressions(
    listener: AmiListener,
    db: Database,
    hostile: Callable[[Call_], list[dict[str, str]]],
    joined: bool,
) -> None:
    n = next(_serial) + 100_000
    victim = _victim(n)
    await _hostile_between_real_calls(listener, db, hostile(victim), victim, n, joined=joined)
