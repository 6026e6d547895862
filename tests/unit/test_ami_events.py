"""The AMI listener fed plain Asterisk 22 event dicts, against a real SQLite call log.

Field names follow Asterisk's AMI event documentation (channel fields, Dest* fields of the
operator leg, Queue/MemberName/Interface/HoldTime/RingTime/TalkTime/Reason). Redis is pointed at
a closed port: the call path must work without it. The last tests run `AmiListener.run` against
a tiny AMI server speaking the real wire protocol (login, Ping, CoreShowChannels, events).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from call_router.ami_listener import AmiListener
from call_router.call_log import CallLog
from call_router.callback_list import list_callbacks
from call_router.db import Database
from call_router.live_state import LiveState
from call_router.models import Base, Call, Callback, CallEvent
from call_router.settings import Settings
from tests.conftest import free_port
from tests.unit.conftest import model_database

T0 = 1_763_892_000  # 2025-11-23 10:00:00 UTC, as Asterisk's "Timestamp: 1763892000.000000"
CALLER_CHANNEL = "PJSIP/pstn-00000001"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    yield from model_database(tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", ami_port=free_port(), callback_min_wait=0)


@pytest.fixture
def listener(settings: Settings, db: Database, live: LiveState) -> AmiListener:
    return AmiListener(settings, CallLog(db, callback_min_wait=10), live)


# --- realistic events ----------------------------------------------------------------


def ts(seconds: float) -> str:
    return f"{T0 + seconds:.6f}"


def channel_fields(
    uniqueid: str, linkedid: str, *, number: str, name: str, context: str = "from-pstn",
    channel: str = CALLER_CHANNEL, exten: str = "500100",
) -> dict[str, str]:  # fmt: skip
    return {
        "Channel": channel,
        "ChannelState": "4",
        "ChannelStateDesc": "Ring",
        "CallerIDNum": number,
        "CallerIDName": name,
        "ConnectedLineNum": "<unknown>",
        "ConnectedLineName": "<unknown>",
        "Language": "ru",
        "AccountCode": "",
        "Context": context,
        "Exten": exten,
        "Priority": "1",
        "Uniqueid": uniqueid,
        "Linkedid": linkedid,
    }


class Call_:
    """Builds the events of one inbound call, as Asterisk would send them."""

    def __init__(self, linkedid: str, number: str = "+74951234567", name: str = "Ivan") -> None:
        self.linkedid = linkedid
        self.caller = channel_fields(linkedid, linkedid, number=number, name=name)

    def newchannel(self, t: float) -> dict[str, str]:
        return {"Event": "Newchannel", "Privilege": "call,all", "Timestamp": ts(t), **self.caller}

    def queue_join(self, t: float, queue: str = "plumbing", count: int = 1) -> dict[str, str]:
        fields = {**self.caller, "Context": "hotline-queues", "Exten": "s"}
        return {
            "Event": "QueueCallerJoin", "Privilege": "agent,all", "Timestamp": ts(t), **fields,
            "Queue": queue, "Position": str(count), "Count": str(count),
        }  # fmt: skip

    def queue_leave(self, t: float, queue: str = "plumbing", count: int = 0) -> dict[str, str]:
        return {
            "Event": "QueueCallerLeave", "Privilege": "agent,all", "Timestamp": ts(t),
            **self.caller, "Queue": queue, "Count": str(count), "Position": "1",
        }  # fmt: skip

    def abandon(self, t: float, hold: int, queue: str = "plumbing") -> dict[str, str]:
        return {
            "Event": "QueueCallerAbandon", "Privilege": "agent,all", "Timestamp": ts(t),
            **self.caller, "Queue": queue, "Position": "1", "OriginalPosition": "1",
            "HoldTime": str(hold),
        }  # fmt: skip

    def agent(
        self, event: str, t: float, login: str, leg: str, queue: str = "plumbing", **extra: str
    ) -> dict[str, str]:
        dest = channel_fields(
            leg, self.linkedid, number=login, name=login, context="hotline-operators",
            channel=f"PJSIP/{login}-0000000{leg[-1]}", exten="s",
        )  # fmt: skip
        return {
            "Event": event, "Privilege": "agent,all", "Timestamp": ts(t), **self.caller,
            **{f"Dest{key}": value for key, value in dest.items()},
            "Queue": queue, "MemberName": login, "Interface": f"PJSIP/{login}", **extra,
        }  # fmt: skip

    def hangup(self, t: float, cause: str = "16", text: str = "Normal Clearing") -> dict[str, str]:
        return {
            "Event": "Hangup", "Privilege": "call,all", "Timestamp": ts(t), **self.caller,
            "Cause": cause, "Cause-txt": text,
        }  # fmt: skip

    def operator_hangup(self, t: float, login: str, leg: str) -> dict[str, str]:
        fields = channel_fields(
            leg, self.linkedid, number=login, name=login, context="hotline-operators",
            channel=f"PJSIP/{login}-00000009",
        )  # fmt: skip
        return {"Event": "Hangup", "Timestamp": ts(t), **fields, "Cause": "16", "Cause-txt": "x"}

    def queuestatus(self, t: float, status: str) -> dict[str, str]:
        return {
            "Event": "VarSet", "Privilege": "dialplan,all", "Timestamp": ts(t), **self.caller,
            "Variable": "QUEUESTATUS", "Value": status,
        }  # fmt: skip


async def feed(listener: AmiListener, events: list[dict[str, str]]) -> None:
    for event in events:
        await listener.handle(event)


def rows(db: Database, model: type) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def the_call(db: Database, linkedid: str) -> Call:
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.linkedid == linkedid)).one()
        session.expunge(call)
        return call


def event_kinds(db: Database, linkedid: str) -> list[str]:
    with db.session() as session:
        query = select(CallEvent.kind).join(Call).where(Call.linkedid == linkedid)
        return list(session.scalars(query.order_by(CallEvent.at, CallEvent.id)))


def answered_call(call: Call_) -> list[dict[str, str]]:
    return [
        call.newchannel(0),
        call.queue_join(20),
        call.agent("AgentCalled", 20, "ivanov", "1763892020.11"),
        call.agent("AgentConnect", 26, "ivanov", "1763892020.11", HoldTime="6", RingTime="6"),
        call.queue_leave(26),
        call.agent(
            "AgentComplete",
            146,
            "ivanov",
            "1763892020.11",
            HoldTime="6",
            TalkTime="120",
            Reason="agent",
        ),  # fmt: skip
        call.operator_hangup(146, "ivanov", "1763892020.11"),
        call.hangup(146),
    ]


# --- tests ---------------------------------------------------------------------------


async def test_answered_call_is_completed_from_events(listener: AmiListener, db: Database) -> None:
    await feed(listener, answered_call(Call_("1763892000.10")))

    call = the_call(db, "1763892000.10")
    assert call.caller_number == "+74951234567"
    assert call.channel == CALLER_CHANNEL
    assert call.dialed_number == "500100"
    assert call.started_at == datetime.fromtimestamp(T0, UTC)
    assert (call.queue, call.operator, call.outcome) == ("plumbing", "ivanov", "answered")
    assert (call.wait_seconds, call.talk_seconds, call.hangup_by) == (6, 120, "agent")
    assert call.hangup_cause == "Normal Clearing"
    assert event_kinds(db, "1763892000.10") == [
        "queue_join", "ring", "agent_connect", "queue_leave", "agent_complete", "hangup",
    ]  # fmt: skip
    assert rows(db, Callback) == 0


async def test_abandons_give_one_callback_per_number_and_replays_change_nothing(
    listener: AmiListener, db: Database
) -> None:
    first = Call_("1763892000.20", number="84951234567")
    second = Call_("1763892600.30", number="+7 (495) 123-45-67")
    first_events = [
        first.newchannel(0), first.queue_join(15),
        first.agent("AgentCalled", 15, "petrov", "1763892015.21"),
        first.agent("AgentRingNoAnswer", 30, "petrov", "1763892015.21", RingTime="15"),
        first.abandon(55, hold=40), first.queue_leave(55), first.hangup(55),
    ]  # fmt: skip
    second_events = [
        second.newchannel(600), second.queue_join(610), second.abandon(640, hold=30),
        second.queue_leave(640), second.hangup(640),
    ]  # fmt: skip

    await feed(listener, first_events + second_events)
    events_before = rows(db, CallEvent)
    await feed(listener, first_events + second_events)  # e.g. a duplicated stream

    assert rows(db, Call) == 2
    assert rows(db, CallEvent) == events_before
    with db.session() as session:
        (entry,) = list_callbacks(session)
        assert (entry.caller_number, entry.status, entry.attempts) == ("+74951234567", "open", 2)
        assert entry.reason == "abandoned_in_queue"
    for linkedid, wait in (("1763892000.20", 40), ("1763892600.30", 30)):
        call = the_call(db, linkedid)
        assert (call.outcome, call.wait_seconds, call.hangup_by) == (
            "abandoned_in_queue",
            wait,
            "caller",
        )


async def test_ring_all_with_one_answer_is_one_answered_call(
    listener: AmiListener, db: Database
) -> None:
    call = Call_("1763892000.40")
    legs = {"ivanov": "1763892010.41", "petrov": "1763892010.42", "sidorov": "1763892010.43"}
    events = [call.newchannel(0), call.queue_join(10, queue="coordinator")]
    events += [
        call.agent("AgentCalled", 10, login, leg, "coordinator") for login, leg in legs.items()
    ]
    events += [
        call.agent("AgentConnect", 14, "petrov", legs["petrov"], "coordinator", HoldTime="4"),
        call.agent(
            "AgentComplete",
            74,
            "petrov",
            legs["petrov"],
            "coordinator",
            TalkTime="60",
            Reason="caller",
        ),  # fmt: skip
        call.hangup(74),
    ]

    await feed(listener, events)

    assert rows(db, Call) == 1
    row = the_call(db, "1763892000.40")
    assert (row.outcome, row.operator, row.hangup_by, row.wait_seconds) == (
        "answered",
        "petrov",
        "caller",
        4,
    )
    assert event_kinds(db, "1763892000.40").count("ring") == 3
    assert rows(db, Callback) == 0


async def test_events_of_unrelated_channels_are_ignored(
    listener: AmiListener, db: Database
) -> None:
    internal = channel_fields(
        "1763892000.50", "1763892000.50", number="1001", name="op", context="hotline-operators",
        channel="PJSIP/ivanov-00000005",
    )  # fmt: skip
    outsider = Call_("1763892000.60")
    second_leg = channel_fields(
        "1763892000.61", "1763892000.60", number="1", name="x", channel="PJSIP/pstn-00000006"
    )
    await feed(
        listener,
        [
            {"Event": "Newchannel", **internal},
            {"Event": "Hangup", **internal, "Cause": "16", "Cause-txt": "Normal Clearing"},
            # A second channel of some call that is not the inbound one.
            {"Event": "Newchannel", **second_leg},
            {**outsider.queue_join(1, queue="some-other-queue")},
            outsider.agent("AgentConnect", 2, "ivanov", "1763892000.62"),
            outsider.hangup(3),
            {"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"},
            {"Event": "PeerStatus", "Peer": "PJSIP/ivanov", "PeerStatus": "Reachable"},
        ],
    )

    assert rows(db, Call) == 0
    assert rows(db, CallEvent) == 0


async def test_hangup_before_the_agi_wrote_anything_still_leaves_a_row(
    listener: AmiListener, db: Database
) -> None:
    call = Call_("1763892000.70", number="", name='"\r\nEvil"\x1b Name')

    await feed(listener, [call.newchannel(0), call.hangup(3)])

    row = the_call(db, "1763892000.70")
    assert (row.caller_number, row.caller_name) == ("anonymous", '" Evil" Name')
    assert (row.outcome, row.hangup_by, row.ended_at) == (
        "abandoned_in_menu",
        "caller",
        datetime.fromtimestamp(T0 + 3, UTC),
    )
    assert rows(db, Callback) == 0


async def test_queue_join_creates_the_row_when_newchannel_was_missed(
    listener: AmiListener, db: Database
) -> None:
    call = Call_("1763892000.80", number="89161234567")

    await feed(listener, [call.queue_join(30, queue="duty"), call.abandon(90, hold=60)])
    await feed(listener, [call.hangup(90)])

    row = the_call(db, "1763892000.80")
    assert (row.caller_number, row.queue, row.outcome, row.wait_seconds) == (
        "+79161234567",
        "duty",
        "abandoned_in_queue",
        60,
    )
    with db.session() as session:
        assert [cb.caller_number for cb in list_callbacks(session)] == ["+79161234567"]


async def test_queue_timeout_and_short_abandon(listener: AmiListener, db: Database) -> None:
    timed_out = Call_("1763892000.90", number="+79160000090")
    impatient = Call_("1763892000.91", number="+79160000091")
    await feed(
        listener,
        [
            timed_out.newchannel(0), timed_out.queue_join(5, queue="meters"),
            timed_out.queue_leave(305, queue="meters"), timed_out.queuestatus(305, "TIMEOUT"),
            timed_out.hangup(310),
            # Waited 3 s, below the listener's callback_min_wait of 10 s: no entry.
            impatient.newchannel(0), impatient.queue_join(5, queue="meters"),
            impatient.abandon(8, hold=3, queue="meters"), impatient.hangup(8),
        ],
    )  # fmt: skip

    row = the_call(db, "1763892000.90")
    assert (row.outcome, row.wait_seconds, row.hangup_by) == ("queue_timeout", 300, "system")
    assert the_call(db, "1763892000.91").outcome == "abandoned_in_queue"
    with db.session() as session:
        assert [(cb.caller_number, cb.reason) for cb in list_callbacks(session)] == [
            ("+79160000090", "queue_timeout")
        ]


def varset(call: Call_, t: float, variable: str, value: str) -> dict[str, str]:
    return {
        "Event": "VarSet", "Privilege": "dialplan,all", "Timestamp": ts(t), **call.caller,
        "Variable": variable, "Value": value,
    }  # fmt: skip


def voicemail_app(call: Call_, t: float) -> dict[str, str]:
    return {
        "Event": "Newexten", "Privilege": "dialplan,all", "Timestamp": ts(t), **call.caller,
        "Context": "hotline-queue-exit", "Extension": "s", "Application": "VoiceMail",
        "AppData": "hotline@hotline,u",
    }  # fmt: skip


async def test_agi_down_and_no_operators_gives_no_agents_with_the_dialplan_queue(
    listener: AmiListener, db: Database
) -> None:
    # The FastAGI server is down: the dialplan sends the caller to the coordinator, whose
    # queue has nobody logged in (joinempty), then plays the voicemail greeting; no message.
    call = Call_("1763892000.97", number="+79160000097")
    await feed(
        listener,
        [
            call.newchannel(0), varset(call, 1, "HOTLINE_QUEUE", ""),
            varset(call, 1, "HOTLINE_FALLBACK", "agi"),
            varset(call, 1, "HOTLINE_QUEUE", "coordinator"),
            varset(call, 2, "QUEUESTATUS", "JOINEMPTY"), voicemail_app(call, 2), call.hangup(9),
        ],
    )  # fmt: skip

    row = the_call(db, call.linkedid)
    assert (row.queue, row.outcome, row.hangup_by, row.wait_seconds) == (
        "coordinator",
        "no_agents",
        "system",
        None,
    )
    assert "voicemail_offered" in event_kinds(db, call.linkedid)
    with db.session() as session:
        assert [(cb.reason, cb.queue) for cb in list_callbacks(session)] == [
            ("no_agents", "coordinator")
        ]


def agi_failed(call: Call_, t: float, status: str = "FAILURE") -> dict[str, str]:
    return {
        "Event": "UserEvent", "Privilege": "user,all", "Timestamp": ts(t), **call.caller,
        "Context": "agi-fail", "UserEvent": "HotlineAgiFailed", "Queue": "coordinator",
        "Status": status,
    }  # fmt: skip


async def test_a_call_behind_the_edge_that_met_a_dead_fastagi_pool_is_logged(
    listener: AmiListener, db: Database
) -> None:
    # A cluster node: the caller's channel starts in [from-edge] (not the inbound context),
    # and no FastAGI server lived to write the call: the fail-safe's event logs it.
    call = Call_("node2-1763892000.97", number="+79160000097")
    # Its event names the number the dialplan matched: the company's, when it is one.
    failed = {**agi_failed(call, 1), "Dialed": "500100"}
    await feed(listener, [{**call.newchannel(0), "Context": "from-edge"}, failed])

    with db.session() as session:
        row = session.scalars(select(Call).where(Call.linkedid == call.linkedid)).one()
        assert (row.caller_number, row.dialed_number) == ("+79160000097", "500100")
    assert event_kinds(db, call.linkedid) == ["agi_failed"]


async def test_the_agi_fail_safe_is_on_the_timeline_once(
    listener: AmiListener, db: Database
) -> None:
    # The FastAGI server died mid-menu: the dialplan's fail-safe tells the router (live, and
    # again from queue_log after a reconnect: the replay adds nothing).
    call = Call_("1763892000.96", number="+79160000096")
    await feed(
        listener,
        [
            call.newchannel(0), agi_failed(call, 4), agi_failed(call, 4),
            call.queue_join(4, queue="coordinator"),
        ],
    )  # fmt: skip

    kinds = event_kinds(db, call.linkedid)
    assert kinds.count("agi_failed") == 1, kinds
    with db.session() as session:
        query = select(CallEvent.data).join(Call).where(CallEvent.kind == "agi_failed")
        assert session.scalars(query).one() == {"status": "FAILURE", "queue": "coordinator"}


async def test_message_left_after_timeout_is_voicemail(listener: AmiListener, db: Database) -> None:
    call = Call_("1763892000.98", number="+79160000098")
    await feed(
        listener,
        [
            call.newchannel(0), call.queue_join(5, queue="lift"),
            call.queue_leave(305, queue="lift"), varset(call, 305, "QUEUESTATUS", "TIMEOUT"),
            voicemail_app(call, 305), varset(call, 330, "VMSTATUS", "SUCCESS"), call.hangup(331),
        ],
    )  # fmt: skip

    row = the_call(db, call.linkedid)
    assert (row.queue, row.outcome, row.wait_seconds) == ("lift", "voicemail", 300)
    with db.session() as session:
        assert [cb.reason for cb in list_callbacks(session)] == ["voicemail"]


async def test_transfer_is_on_the_timeline(listener: AmiListener, db: Database) -> None:
    call = Call_("1763892000.95")
    transfer = {
        "Event": "BlindTransfer", "Privilege": "call,all", "Timestamp": ts(50), "Result": "Success",
        "TransfererChannel": "PJSIP/ivanov-00000011", "TransfererUniqueid": "1763892010.96",
        "TransfererLinkedid": call.linkedid, "TransfereeChannel": CALLER_CHANNEL,
        "TransfereeUniqueid": call.linkedid, "TransfereeLinkedid": call.linkedid,
        "IsExternal": "No", "Context": "hotline-operators", "Extension": "1002",
    }  # fmt: skip
    await feed(listener, answered_call(call)[:4] + [transfer, transfer])

    assert event_kinds(db, call.linkedid).count("blind_transfer") == 1


# --- batches: a burst of queued events is written in one transaction ---------------------


def mixed_traffic() -> list[dict[str, str]]:
    """Several calls' events interleaved as they would arrive (by Asterisk's Timestamp)."""
    answered = Call_("1763893000.10", number="+79160001010")
    first = Call_("1763893000.20", number="+79160001020")
    again = Call_("1763893600.30", number="89160001020")  # the same resident calls again
    no_agents = Call_("1763893000.97", number="+79160001097")
    voicemail = Call_("1763893000.98", number="+79160001098")
    events = answered_call(answered)
    events += [
        first.newchannel(0), first.queue_join(15),
        first.agent("AgentCalled", 15, "petrov", "1763893015.21"),
        first.agent("AgentRingNoAnswer", 30, "petrov", "1763893015.21", RingTime="15"),
        first.abandon(55, hold=40), first.queue_leave(55), first.hangup(55),
        again.newchannel(600), again.queue_join(610), again.abandon(640, hold=30),
        again.queue_leave(640), again.hangup(640),
        no_agents.newchannel(0), varset(no_agents, 1, "HOTLINE_QUEUE", "coordinator"),
        varset(no_agents, 2, "QUEUESTATUS", "JOINEMPTY"), voicemail_app(no_agents, 2),
        no_agents.hangup(9),
        voicemail.newchannel(0), voicemail.queue_join(5, queue="lift"),
        voicemail.queue_leave(305, queue="lift"),
        varset(voicemail, 305, "QUEUESTATUS", "TIMEOUT"), voicemail_app(voicemail, 305),
        varset(voicemail, 330, "VMSTATUS", "SUCCESS"), voicemail.hangup(331),
    ]  # fmt: skip
    return sorted(events, key=lambda e: float(e["Timestamp"]))


def snapshot(db: Database) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with db.session() as session:
        calls = [
            (c.linkedid, c.caller_number, c.queue, c.operator, c.outcome, c.wait_seconds,
             c.talk_seconds, c.hangup_by, c.started_at, c.ended_at,
             [(e.kind, e.key) for e in sorted(c.events, key=lambda e: (e.at, e.id))])
            for c in session.scalars(select(Call).order_by(Call.linkedid))
        ]  # fmt: skip
        entries = [
            (cb.caller_number, cb.reason, cb.queue, cb.attempts, cb.status)
            for cb in list_callbacks(session)
        ]
    return calls, entries


async def test_one_batch_writes_the_same_log_as_event_by_event(
    tmp_path: Path, settings: Settings, live: LiveState
) -> None:
    events = mixed_traffic()
    logs = []
    for name, batched in (("one-by-one", False), ("batched", True)):
        db = Database(f"sqlite:///{tmp_path / name}.db")
        Base.metadata.create_all(db.engine)
        listener = AmiListener(settings, CallLog(db, callback_min_wait=10), live)
        if batched:
            await listener.handle_batch(events)
            before = rows(db, CallEvent)
            await listener.handle_batch(events)  # replayed: nothing new
            assert rows(db, CallEvent) == before
        else:
            await feed(listener, events)
        logs.append(snapshot(db))
        db.dispose()

    assert logs[0] == logs[1]
    calls, entries = logs[1]
    assert [c[4] for c in calls] == [
        "answered", "abandoned_in_queue", "no_agents", "voicemail", "abandoned_in_queue",
    ]  # fmt: skip
    # The queue planned by VarSet and the hang-up were in one transaction: still coordinator.
    assert calls[2][2] == "coordinator"
    assert sorted(entries) == [
        ("+79160001020", "abandoned_in_queue", "plumbing", 2, "open"),
        ("+79160001097", "no_agents", "coordinator", 1, "open"),
        ("+79160001098", "voicemail", "lift", 1, "open"),
    ]


async def test_a_failing_event_in_a_batch_loses_only_itself(
    listener: AmiListener, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = Call_("1763894000.10"), Call_("1763894000.20", number="+79160002020")
    call_log = listener._call_log
    original = call_log.queue_left

    def queue_left(linkedid: str, **kwargs: Any) -> Any:
        if linkedid == bad.linkedid:
            raise ValueError("a bug in one handler")
        return original(linkedid, **kwargs)

    monkeypatch.setattr(call_log, "queue_left", queue_left)
    events = sorted(answered_call(good) + answered_call(bad), key=lambda e: float(e["Timestamp"]))
    await listener.writer.apply(events)

    for call in (good, bad):
        row = the_call(db, call.linkedid)
        assert (row.outcome, row.operator, row.talk_seconds) == ("answered", "ivanov", 120)
    assert "queue_leave" in event_kinds(db, good.linkedid)
    assert "queue_leave" not in event_kinds(db, bad.linkedid)


# --- the connection loop against a tiny AMI server --------------------------------------------


class FakeAsterisk:
    """Speaks enough AMI for panoramisk: greeting, Login, Ping, CoreShowChannels, QueueSummary,
    CoreStatus, events."""

    def __init__(self, channels: list[dict[str, str]]) -> None:
        self.channels = channels
        self.logins = 0
        # Up since before the test's calls began: a reconnect, not a restart under them.
        self.started_at = float(T0 - 3600)
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self, port: int) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", port)

    async def stop(self) -> None:
        self.drop_clients()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def drop_clients(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    async def send_event(self, event: dict[str, str]) -> None:
        for writer in self.writers:
            writer.write(_message(event))
            await writer.drain()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                action = dict(
                    line.split(": ", 1)
                    for line in raw.decode().strip().split("\r\n")
                    if ": " in line
                )
                for reply in self._replies(action):
                    writer.write(_message(reply))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    def _replies(self, action: dict[str, str]) -> list[dict[str, str]]:
        action_id = action.get("ActionID", "")
        name = action.get("Action", "").lower()
        if name == "login":
            self.logins += 1
            return [
                {
                    "Response": "Success",
                    "ActionID": action_id,
                    "Message": "Authentication accepted",
                },
                {"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"},
            ]
        if name == "ping":
            return [{"Response": "Success", "ActionID": action_id, "Ping": "Pong"}]
        if name == "coreshowchannels":
            listed = [
                {"Event": "CoreShowChannel", "ActionID": action_id, **channel}
                for channel in self.channels
            ]
            return [
                {"Response": "Success", "ActionID": action_id, "EventList": "start",
                 "Message": "Channels will follow"},
                *listed,
                {"Event": "CoreShowChannelsComplete", "ActionID": action_id,
                 "EventList": "Complete", "ListItems": str(len(listed))},
            ]  # fmt: skip
        if name == "queuesummary":  # app_queue is loaded: the router waits for this
            return [
                {"Response": "Success", "ActionID": action_id, "EventList": "start",
                 "Message": "Queue summary will follow"},
                {"Event": "QueueSummaryComplete", "ActionID": action_id,
                 "EventList": "Complete", "ListItems": "0"},
            ]  # fmt: skip
        if name == "corestatus":
            started = datetime.fromtimestamp(self.started_at).astimezone()  # Asterisk's clock
            return [
                {"Response": "Success", "ActionID": action_id,
                 "CoreStartupDate": started.strftime("%Y-%m-%d"),
                 "CoreStartupTime": started.strftime("%H:%M:%S")},
            ]  # fmt: skip
        return [{"Response": "Error", "ActionID": action_id, "Message": "Invalid/unknown command"}]


def _message(fields: dict[str, Any]) -> bytes:
    return ("".join(f"{key}: {value}\r\n" for key, value in fields.items()) + "\r\n").encode()


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(predicate):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def asterisk_log_dir(tmp_path: Path, queue_log: list[str], cdr: str) -> Path:
    """Asterisk's log directory holding these queue_log lines and one CDR line."""
    log_dir = tmp_path / "asterisk-log"
    (log_dir / "cdr-csv").mkdir(parents=True)
    (log_dir / "queue_log").write_text("".join(f"{line}\n" for line in queue_log))
    (log_dir / "cdr-csv" / "Master.csv").write_text(f"{cdr}\n")
    return log_dir


async def test_run_reconciles_consumes_and_reconnects(
    settings: Settings, db: Database, live: LiveState
) -> None:
    call_log = CallLog(db)
    still_up = Call_("1763891000.1")
    gone = Call_("1763891000.2", number="+79160000002")
    for call in (still_up, gone):
        call_log.ensure_call(
            call.linkedid, caller_number=call.caller["CallerIDNum"], caller_name=None,
            started_at=datetime.fromtimestamp(T0 - 600, UTC),
        )  # fmt: skip
        call_log.queue_joined(
            call.linkedid, queue="duty", key="join", at=datetime.fromtimestamp(T0 - 590, UTC)
        )
    asterisk = FakeAsterisk(channels=[still_up.caller])
    await asterisk.start(settings.ami_port)
    listener = AmiListener(settings, call_log, live)
    ready = asyncio.Event()
    task = asyncio.create_task(listener.run(ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        # The call whose channel is gone was closed by the reconcile; the live one stays open.
        gone_row = the_call(db, gone.linkedid)
        assert (gone_row.hangup_cause, gone_row.hangup_by, gone_row.outcome) == (
            "reconciled",
            "system",
            "abandoned_in_queue",
        )
        assert the_call(db, still_up.linkedid).ended_at is None
        assert "reconciled" in event_kinds(db, gone.linkedid)

        # Events pushed by "Asterisk" reach the call log through the queue and the consumer.
        fresh = Call_("1763892000.3")
        for event in (fresh.newchannel(0), fresh.hangup(4)):
            await asterisk.send_event(event)
        await wait_until(lambda: call_log.get_call(fresh.linkedid) is not None
                         and call_log.get_call(fresh.linkedid).ended_at is not None)  # fmt: skip

        # Asterisk drops the connection: the listener logs in again and reconciles again.
        asterisk.channels = []
        ready.clear()
        asterisk.drop_clients()
        await asyncio.wait_for(ready.wait(), 10)
        assert asterisk.logins == 2
        assert the_call(db, still_up.linkedid).hangup_by == "system"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asterisk.stop()


async def test_run_reconnects_when_pings_go_unanswered(
    settings: Settings, db: Database, live: LiveState, monkeypatch: pytest.MonkeyPatch
) -> None:
    from call_router import ami_listener

    monkeypatch.setattr(ami_listener, "WATCHDOG_INTERVAL", 0.1)
    monkeypatch.setattr(ami_listener, "WATCHDOG_TIMEOUT", 0.2)
    asterisk = FakeAsterisk(channels=[])
    answer_pings = True
    original = asterisk._replies

    def replies(action: dict[str, str]) -> list[dict[str, str]]:
        if action.get("Action", "").lower() == "ping" and not answer_pings:
            return []  # a hung Asterisk: TCP is up, nothing answers
        return original(action)

    asterisk._replies = replies  # type: ignore[method-assign]
    await asterisk.start(settings.ami_port)
    ready = asyncio.Event()
    task = asyncio.create_task(AmiListener(settings, CallLog(db), live).run(ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        ready.clear()
        answer_pings = False
        await asyncio.sleep(0.5)
        answer_pings = True
        await asyncio.wait_for(ready.wait(), 10)
        assert asterisk.logins == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asterisk.stop()


async def test_a_reconnect_takes_what_was_missed_from_the_queue_log_and_cdrs(
    settings: Settings, db: Database, live: LiveState, tmp_path: Path
) -> None:
    """The router saw these calls join their queue, then was away until they had ended."""
    from call_router.reconcile import AsteriskRecords

    call_log = CallLog(db)
    answered = Call_("1763895000.1", number="+79160003001")
    abandoned = Call_("1763895000.2", number="+79160003002")
    held = Call_("1763895000.3", number="+79160003003")
    before = AmiListener(settings, call_log, live)
    for call in (answered, abandoned, held):
        await feed(before, [call.newchannel(0), call.queue_join(20.4, queue="heating")])
    log_dir = asterisk_log_dir(
        tmp_path,
        queue_log=[
            f"{T0 + 20}|{answered.linkedid}|heating|NONE|ENTERQUEUE||+79160003001|1",
            f"{T0 + 20}|{abandoned.linkedid}|heating|NONE|ENTERQUEUE||+79160003002|2",
            f"{T0 + 20}|{held.linkedid}|heating|NONE|ENTERQUEUE||+79160003003|3",
            f"{T0 + 26}|{answered.linkedid}|heating|Anna Petrova|CONNECT|6|1763895020.9|6",
            f"{T0 + 50}|{held.linkedid}|heating|NONE|EXITWITHKEY|1|2|3|30",
            f"{T0 + 50}|{held.linkedid}|heating|NONE|HOTLINECALLBACK|virtual_hold",
            f"{T0 + 80}|{abandoned.linkedid}|heating|NONE|ABANDON|1|2|60",
            f"{T0 + 146}|{answered.linkedid}|heating|Anna Petrova|COMPLETEAGENT|6|120|1",
        ],
        cdr=(
            f'"","+79160003001","h","x","","PJSIP/pstn-1","","NoOp","","2025-11-23 10:00:00",'
            f'"2025-11-23 10:00:00","2025-11-23 10:02:27",147,147,"ANSWERED","DOCUMENTATION",'
            f'"{answered.linkedid}","","","{answered.linkedid}",0'
        ),
    )
    asterisk = FakeAsterisk(channels=[])
    await asterisk.start(settings.ami_port)
    listener = AmiListener(settings, call_log, live, records=AsteriskRecords.in_log_dir(log_dir))
    ready = asyncio.Event()
    task = asyncio.create_task(listener.run(ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        row = the_call(db, answered.linkedid)
        assert (row.outcome, row.operator, row.hangup_by) == ("answered", "Anna Petrova", "agent")
        assert (row.wait_seconds, row.talk_seconds) == (6, 120)
        assert row.ended_at == datetime.fromtimestamp(T0 + 147, UTC)  # the CDR's end
        assert event_kinds(db, answered.linkedid).count("queue_join") == 1
        row = the_call(db, abandoned.linkedid)
        assert (row.outcome, row.hangup_by, row.wait_seconds) == (
            "abandoned_in_queue",
            "caller",
            60,
        )
        assert row.ended_at == datetime.fromtimestamp(T0 + 80, UTC)
        row = the_call(db, held.linkedid)
        assert row.outcome == "callback_requested"
        with db.session() as session:
            entries = {(cb.caller_number, cb.reason) for cb in list_callbacks(session)}
        assert entries == {
            ("+79160003002", "abandoned_in_queue"),
            ("+79160003003", "virtual_hold"),
        }

        # Reconnecting again replays the same records: nothing changes.
        counts = (rows(db, CallEvent), rows(db, Callback))
        ready.clear()
        asterisk.drop_clients()
        await asyncio.wait_for(ready.wait(), 10)
        assert asterisk.logins == 2
        assert (rows(db, CallEvent), rows(db, Callback)) == counts
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asterisk.stop()


async def test_a_call_nobody_logged_is_taken_from_the_records_after_a_router_restart(
    settings: Settings, db: Database, live: LiveState, tmp_path: Path
) -> None:
    """The router and every FastAGI server were down together: the fail-safe put the caller
    in the coordinator's queue, where they gave up. No row existed; the restarted router
    knows from its predecessor's report since when it heard nothing, and logs the call."""
    from call_router import health
    from call_router.reconcile import AsteriskRecords

    # The router before this one: its link was up until T0 + 10.
    health.write_router_health(
        health.router_health_path(settings),
        health.RouterReport(
            updated_at=datetime.fromtimestamp(T0 + 10, UTC),
            ami_connected=True,
            asterisk_started_at=None,
            lag_seconds=None,
            pending_events=0,
            spool_depth=None,
        ),
    )
    unlogged, live_one, long_before = "1763892020.5", "1763892100.7", "1763890000.1"
    log_dir = asterisk_log_dir(
        tmp_path,
        queue_log=[
            # Hours before the router went away (its own row was never written): old.
            f"{T0 - 7200}|{long_before}|coordinator|NONE|HOTLINEAGIFAILED|FAILURE|500100",
            f"{T0 + 21}|{unlogged}|coordinator|NONE|HOTLINEAGIFAILED|FAILURE|500100",
            f"{T0 + 21}|{unlogged}|coordinator|NONE|ENTERQUEUE||+79160004001|1",
            f"{T0 + 80}|{unlogged}|coordinator|NONE|ABANDON|1|1|59",
            # Still waiting now: no CDR yet, the number from its ENTERQUEUE line.
            f"{T0 + 101}|{live_one}|coordinator|NONE|HOTLINEAGIFAILED|FAILURE|500100",
            f"{T0 + 101}|{live_one}|coordinator|NONE|ENTERQUEUE||+79160004002|1",
        ],
        cdr=(
            f'"","+79160004001","coordinator","hotline-queues","""Ivan"" <+79160004001>",'
            f'"PJSIP/pstn-00000007","","Queue","coordinator","2025-11-23 10:00:20",'
            f'"2025-11-23 10:00:21","2025-11-23 10:01:20",60,59,"ANSWERED","DOCUMENTATION",'
            f'"{unlogged}","","","{unlogged}",0'
        ),
    )
    asterisk = FakeAsterisk(
        channels=[channel_fields(live_one, live_one, number="+79160004002", name="")]
    )
    await asterisk.start(settings.ami_port)
    call_log = CallLog(db, callback_min_wait=0)
    listener = AmiListener(
        settings,
        call_log,
        live,
        clock=lambda: datetime.fromtimestamp(T0 + 120, UTC),
        records=AsteriskRecords.in_log_dir(log_dir),
    )
    ready = asyncio.Event()
    task = asyncio.create_task(listener.run(ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        row = the_call(db, unlogged)
        assert (row.caller_number, row.caller_name, row.dialed_number) == (
            "+79160004001",
            "Ivan",
            "500100",
        )
        assert row.started_at == datetime.fromtimestamp(T0 + 20, UTC)  # the CDR's start
        assert (row.queue, row.outcome, row.wait_seconds) == (
            "coordinator",
            "abandoned_in_queue",
            59,
        )
        assert row.ended_at == datetime.fromtimestamp(T0 + 80, UTC)
        kinds = event_kinds(db, unlogged)
        assert {"agi_failed", "queue_join", "abandon"} <= set(kinds), kinds
        with db.session() as session:
            entries = {(cb.caller_number, cb.reason) for cb in list_callbacks(session)}
        assert entries == {("+79160004001", "abandoned_in_queue")}
        # The caller still waiting has a row and stays open: live events take it from here.
        row = the_call(db, live_one)
        assert (row.caller_number, row.ended_at) == ("+79160004002", None)
        with db.session() as session:
            assert session.scalar(select(Call).where(Call.linkedid == long_before)) is None

        # A reconnect reads the same records again: nothing is added twice.
        counts = (rows(db, Call), rows(db, CallEvent), rows(db, Callback))
        ready.clear()
        asterisk.drop_clients()
        await asyncio.wait_for(ready.wait(), 10)
        assert (rows(db, Call), rows(db, CallEvent), rows(db, Callback)) == counts
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asterisk.stop()


async def test_roster_changes_apply_after_a_link_that_came_up_while_the_database_was_away(
    settings: Settings, db: Database, live: LiveState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router (re)connects to Asterisk during a database outage: its agent loop must not
    die on the first fingerprint read, and applies the roster once the database is back."""
    from sqlalchemy.exc import OperationalError

    import call_router.router_agents as router_agents

    listener = AmiListener(settings, CallLog(db, callback_min_wait=10), live, db=db)
    monkeypatch.setattr(router_agents, "AGENT_SYNC_INTERVAL", 0.01)
    database_away = True

    class Agents:
        def fingerprint(self) -> tuple[object, ...]:
            if database_away:
                raise OperationalError("SELECT", {}, ConnectionRefusedError("database is away"))
            return ("operator 1006 in heating",)

    synced = asyncio.Event()

    async def sync_agents(_sender: Any) -> None:
        synced.set()

    monkeypatch.setattr(listener.agents, "service", Agents())
    monkeypatch.setattr(listener.agents, "sync", sync_agents)
    loop = asyncio.create_task(listener.agents.follow_roster(object()))  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.1)
        assert not loop.done(), loop.exception() if loop.done() else None
        assert not synced.is_set()
        database_away = False
        await asyncio.wait_for(synced.wait(), 5)
    finally:
        loop.cancel()
