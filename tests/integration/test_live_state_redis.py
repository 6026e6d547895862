"""Live state against a real Redis: hashes, published events, and surviving a Redis outage."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from call_router.ami_listener import AmiListener
from call_router.call_log import CallLog
from call_router.call_log_core import CallView
from call_router.db import Database
from call_router.live_state import LiveState
from call_router.settings import Settings
from tests.conftest import require

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def view(linkedid: str, **changes: Any) -> CallView:
    fields: dict[str, Any] = {
        "id": 1, "linkedid": linkedid, "caller_number": "+74951234567", "caller_name": "Иван",
        "queue": "plumbing", "operator": None, "started_at": T0, "queue_joined_at": None,
        "answered_at": None, "ended_at": None, "outcome": None, "wait_seconds": None,
        "talk_seconds": None, "hangup_by": None,
    }  # fmt: skip
    return CallView(**{**fields, **changes})


async def next_messages(pubsub: Any, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(received) < count and asyncio.get_running_loop().time() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            received.append(json.loads(message["data"]))
    return received


async def test_hashes_and_published_events(redis_client: Redis, redis_prefix: str) -> None:
    live = LiveState(redis_client, redis_prefix)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(live.channel)
    try:
        assert await live.call_stage(view("L1"), "queue", position=1)
        assert await live.queue_waiting("plumbing", 1)
        assert await live.call_stage(view("L1", operator="ivanov"), "talking")
        calls = await live.calls()
        assert calls["L1"]["stage"] == "talking"
        assert calls["L1"]["operator"] == "ivanov"
        assert calls["L1"]["caller_name"] == "Иван"
        assert await live.queue_waiting("plumbing", 0)
        assert await live.call_ended(view("L1", outcome="answered"))

        assert await live.calls() == {}
        assert await live.waiting() == {"plumbing": 0}
        messages = await next_messages(pubsub, 5)
        assert [m["type"] for m in messages] == [
            "call_queue", "queue", "call_talking", "queue", "call_ended",
        ]  # fmt: skip
        assert messages[0]["position"] == 1
        assert messages[-1]["outcome"] == "answered"
    finally:
        await pubsub.aclose()


async def test_listener_keeps_live_hashes(
    redis_client: Redis, redis_prefix: str, tmp_path: Path
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'calls.db'}")
    db.upgrade()
    live = LiveState(redis_client, redis_prefix)
    listener = AmiListener(Settings(state_dir=tmp_path), CallLog(db), live)
    caller = {
        "Channel": "PJSIP/pstn-00000001", "CallerIDNum": "84951234567", "CallerIDName": "Ivan",
        "Context": "from-pstn", "Exten": "500100", "Uniqueid": "1.1", "Linkedid": "1.1",
    }  # fmt: skip
    agent = {"Queue": "heating", "MemberName": "ivanov", "Interface": "PJSIP/ivanov"}
    try:
        await listener.handle({"Event": "Newchannel", **caller})
        assert (await live.calls())["1.1"]["stage"] == "menu"
        await listener.handle(
            {
                "Event": "QueueCallerJoin",
                **caller,
                "Queue": "heating",
                "Position": "1",
                "Count": "1",
            }
        )
        assert (await live.calls())["1.1"]["stage"] == "queue"
        assert (await live.waiting())["heating"] == 1
        await listener.handle({"Event": "AgentConnect", **caller, **agent, "DestUniqueid": "1.2"})
        await listener.handle(
            {"Event": "QueueCallerLeave", **caller, "Queue": "heating", "Count": "0"}
        )
        assert (await live.calls())["1.1"]["stage"] == "talking"
        assert (await live.waiting())["heating"] == 0
        await listener.handle({"Event": "Hangup", **caller, "Cause": "16", "Cause-txt": "Normal"})
        assert await live.calls() == {}
    finally:
        db.dispose()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, Any]]:
    """A redis-server of our own that the test may stop and start again."""
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server binary not installed")
    assert binary is not None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(
            subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(tmp_path)],
                stdout=subprocess.DEVNULL,
            )
        )  # fmt: skip

    def stop() -> None:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        procs.clear()

    start()
    try:
        yield port, (start, stop)
    finally:
        stop()


async def wait_for_redis(client: Redis, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await client.ping()
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_redis_outage_never_raises_and_recovers(private_redis: tuple[int, Any]) -> None:
    port, (start, stop) = private_redis
    client = Redis.from_url(
        f"redis://127.0.0.1:{port}/0", socket_timeout=1, socket_connect_timeout=1
    )
    live = LiveState(client, "outage", retry_after=0.2)
    try:
        await wait_for_redis(client)
        assert await live.call_stage(view("L1"), "menu")

        stop()
        assert await live.call_stage(view("L2"), "menu") is False
        # Within retry_after the next write is skipped at once instead of waiting on a timeout.
        assert await live.queue_waiting("plumbing", 3) is False
        assert live.resync_needed is False

        start()
        await wait_for_redis(client)
        await asyncio.sleep(0.25)
        assert await live.call_stage(view("L3"), "queue")
        assert live.resync_needed is True  # the hashes missed updates while Redis was away
        assert await live.replace_all([(view("L3"), "queue")], {"plumbing": 1})
        assert live.resync_needed is False
        assert list(await live.calls()) == ["L3"]
        assert await live.waiting() == {"plumbing": 1}
    finally:
        await live.close()


async def test_operator_hash_is_replaced_and_a_flush_asks_for_a_rebuild(
    redis_client: Redis, redis_prefix: str
) -> None:
    live = LiveState(redis_client, redis_prefix)
    # Another installation's leftovers under the same prefix.
    await redis_client.hset(live.operators_key, "PJSIP/1003", json.dumps({"state": "offline"}))
    counts = {"heating": {"free": 1, "busy": 0, "paused": 0, "offline": 0}}
    assert await live.replace_operators({"1001": {"name": "Anna", "state": "free"}}, counts)
    assert set(await live.operators()) == {"1001"}
    assert await live.replace_all([], {"heating": 0})
    assert await live.heartbeat(T0)
    assert live.resync_needed is False
    for key in (live.operators_key, live.queues_key, live.heartbeat_key, live.epoch_key):
        assert 0 < await redis_client.ttl(key) <= 600, key

    await redis_client.delete(live.epoch_key)  # as FLUSHALL or an empty restart leaves it
    assert await live.heartbeat(T0)
    assert live.resync_needed is True
