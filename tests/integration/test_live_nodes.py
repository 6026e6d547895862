"""A cluster's wallboard against a real Redis: two nodes' routers write their live state under
their own prefixes with the real writer (call_router/live_state.py), and the dashboard's
board shows both, merged (dashboard/live.py `read_all`); one node's rebuild leaves the other's
calls, and a node whose router went quiet is left out while the other stays live."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from call_router.call_log import CallView
from call_router.db import Database
from call_router.live_state import LiveState
from call_router.settings import Settings
from dashboard.live import event_channels
from dashboard.live_nodes import read_all
from dashboard.main import create_app
from tests.integration.test_dashboard_api import add_call
from tests.integration.test_wallboard_cache import REDIS_URL, board, eventually, running

NODES = {"node1": "127.0.0.2", "node2": "127.0.0.3"}


def cluster_settings(tmp_path: Path, prefix: str) -> Settings:
    """The cluster's dashboard, as `hotline cluster up` starts it."""
    return Settings(
        state_dir=tmp_path / "state",
        country_code="RU",
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        ami_host=NODES["node1"],
        ami_fallback_hosts=[NODES["node2"]],
        node_ami_hosts=NODES,
    )


def call(call_id: int, linkedid: str, started_at: datetime, **changes: Any) -> CallView:
    fields: dict[str, Any] = {
        "id": call_id, "linkedid": linkedid, "caller_number": f"+7495000{call_id:04d}",
        "caller_name": None, "queue": "plumbing", "operator": None, "started_at": started_at,
        "queue_joined_at": None, "answered_at": None, "ended_at": None, "outcome": None,
        "wait_seconds": None, "talk_seconds": None, "hangup_by": None,
    }  # fmt: skip
    return CallView(**{**fields, **changes})


def operator(state: str) -> dict[str, Any]:
    return {"state": state, "since": datetime.now(UTC).isoformat(), "queues": ["plumbing"]}


@pytest.fixture
async def nodes(redis_client: Redis, redis_prefix: str) -> AsyncIterator[dict[str, LiveState]]:
    """Each node's router's writer, on the prefix the cluster gives the node."""
    settings = Settings(redis_prefix=redis_prefix)
    writers = {node: LiveState(redis_client, settings.node_redis_prefix(node)) for node in NODES}
    try:
        yield writers
    finally:
        keys = [key async for key in redis_client.scan_iter(match=f"{redis_prefix}-node*")]
        if keys:
            await redis_client.delete(*keys)


async def fill(nodes: dict[str, LiveState], now: datetime) -> None:
    """What the two routers write: a caller waiting 40 s in plumbing on node 1; on node 2 one
    waiting 10 s in plumbing and one talking to Boris in heating. Anna's phone is registered
    on node 1 (offline on node 2); Boris re-registered on node 1 while still on a call on
    node 2, so he is on both; Cleo's phone is registered nowhere."""
    one, two = nodes["node1"], nodes["node2"]
    await one.replace_all([(call(9001, "n1-a", now - timedelta(seconds=40)), "queue")], {})
    await one.queue_waiting("plumbing", 1)
    await one.replace_operators(
        {"anna": operator("free"), "boris": operator("free"), "cleo": operator("offline")}, {}
    )
    await two.replace_all(
        [
            (call(9002, "n2-a", now - timedelta(seconds=10)), "queue"),
            (call(9003, "n2-b", now, queue="heating", operator="Boris"), "talking"),
        ],
        {"plumbing": 1},
    )
    await two.replace_operators(
        {"anna": operator("offline"), "boris": operator("busy"), "cleo": operator("offline")}, {}
    )
    for writer in (one, two):
        assert await writer.heartbeat(datetime.now(UTC))


def node_by_number(snap: dict[str, Any]) -> dict[str, str | None]:
    return {c["caller_number"]: c.get("node") for c in snap["calls"]}


def queue(snap: dict[str, Any], name: str) -> dict[str, Any]:
    return next(q for q in snap["queues"] if q["queue"] == name)


async def test_the_board_merges_every_node_and_one_rebuild_leaves_the_other(
    database: Database,
    tmp_path: Path,
    redis_client: Redis,
    redis_prefix: str,
    nodes: dict[str, LiveState],
) -> None:
    now = datetime.now(UTC)
    await fill(nodes, now)
    app = create_app(cluster_settings(tmp_path, redis_prefix), database, zone=ZoneInfo("UTC"))
    async with running(app, database) as http:
        snap = await board(http)
        assert snap["live"] is True and snap["stale"] is False
        assert [(n["node"], n["live"]) for n in snap["nodes"]] == [
            ("node1", True),
            ("node2", True),
        ]
        # Every node's calls, each with its node.
        assert node_by_number(snap) == {
            "+74950009001": "node1",
            "+74950009002": "node2",
            "+74950009003": "node2",
        }
        # plumbing exists on both nodes: callers waiting summed, the longest wait the max.
        plumbing = queue(snap, "plumbing")
        assert plumbing["waiting"] == 2
        assert plumbing["longest_wait_seconds"] >= 40
        assert plumbing["waiting_by_node"] == {"node1": 1, "node2": 1}
        # Operators once per node they are on; Anna only where her phone is registered.
        rows = {(op["name"], op["node"]): op["state"] for op in snap["operators"]}
        assert rows[("anna", "node1")] == "free"
        assert ("anna", "node2") not in rows
        assert rows[("boris", "node1")] == "free"
        assert rows[("boris", "node2")] == "busy"
        # Cleo's phone is registered nowhere: one row, on no node.
        assert [key for key in rows if key[0] == "cleo"] == [("cleo", None)]
        assert rows[("cleo", None)] == "offline"
        # The page shows supervisors where each call and operator is.
        page = await http.get("/wallboard")
        assert page.status_code == 200
        assert "boris · node2" in page.text and "anna · node1" in page.text

        # Node 1's router rebuilds (it reconnected to its Asterisk and found no calls): node
        # 2's calls and callers waiting stay on the board. The rebuild's event arrives on
        # node 1's channel, which the dashboard listens to as well.
        assert await nodes["node1"].replace_all([], {})

        async def only_node_two() -> bool:
            snap = await board(http)
            shown = node_by_number(snap)
            waiting = queue(snap, "plumbing")["waiting"]
            return shown == {"+74950009002": "node2", "+74950009003": "node2"} and waiting == 1

        await eventually(only_node_two)


async def test_a_quiet_node_is_left_out_and_its_calls_come_from_the_call_log(
    database: Database,
    tmp_path: Path,
    redis_client: Redis,
    redis_prefix: str,
    nodes: dict[str, LiveState],
) -> None:
    now = datetime.now(UTC)
    await fill(nodes, now)
    # Node 2's Asterisk died: its router stopped vouching for its hashes a minute ago.
    assert await nodes["node2"].heartbeat(now - timedelta(minutes=1))
    row = add_call(
        database,
        now - timedelta(seconds=30),
        caller_number="+74950007777",
        queue="heating",
        queue_joined_at=now - timedelta(seconds=20),
        node="node2",
    )
    settings = cluster_settings(tmp_path, redis_prefix)
    live = await read_all(redis_client, settings)
    assert live.ok and not live.stale
    assert live.stale_nodes == {"node2"}
    assert {entry["node"] for entry in (live.calls or {}).values()} == {"node1"}

    app = create_app(settings, database, zone=ZoneInfo("UTC"))
    async with running(app, database) as http:
        snap = await board(http)
        assert snap["live"] is True
        assert [(n["node"], n["live"]) for n in snap["nodes"]] == [
            ("node1", True),
            ("node2", False),
        ]
        calls = {c["caller_number"]: c for c in snap["calls"]}
        assert calls["+74950009001"]["node"] == "node1"
        # Node 2's stale hash is not shown; its open call is, from the call log.
        assert "+74950009002" not in calls
        assert calls["+74950007777"]["node"] == "node2"
        assert calls["+74950007777"]["call_id"] == row
        assert calls["+74950007777"]["stage"] == "queue"
        # Monitoring sees which node's live state is left out.
        metrics = (await http.get("/metrics")).text
        assert 'hotline_live_state_node_ok{node="node1"} 1.0' in metrics
        assert 'hotline_live_state_node_ok{node="node2"} 0.0' in metrics

    # Every node quiet: the whole view is stale, as on one box.
    assert await nodes["node1"].heartbeat(now - timedelta(minutes=1))
    quiet = await read_all(redis_client, settings)
    assert quiet.stale and not quiet.ok
    assert quiet.stale_nodes == {"node1", "node2"}


async def test_one_box_reads_its_own_prefix_only(
    tmp_path: Path, redis_client: Redis, redis_prefix: str, nodes: dict[str, LiveState]
) -> None:
    one_box = Settings(state_dir=tmp_path / "state", redis_url=REDIS_URL, redis_prefix=redis_prefix)
    assert event_channels(one_box) == [f"{redis_prefix}:events"]
    own = LiveState(redis_client, redis_prefix)
    await own.replace_all([(call(9100, "box-a", datetime.now(UTC)), "menu")], {})
    assert await own.heartbeat(datetime.now(UTC))
    await fill(nodes, datetime.now(UTC))
    live = await read_all(redis_client, one_box)
    # Exactly what it always read: its own calls, no node field, no node list.
    assert live.nodes == () and live.operators_by_node is None
    assert list((live.calls or {}).keys()) == ["box-a"]
    assert "node" not in (live.calls or {})["box-a"]
    cluster = cluster_settings(tmp_path, redis_prefix)
    assert event_channels(cluster) == [
        f"{redis_prefix}:events",
        f"{redis_prefix}-node1:events",
        f"{redis_prefix}-node2:events",
    ]
    assert json.loads(json.dumps(cluster.live_prefixes())) == {
        "node1": f"{redis_prefix}-node1",
        "node2": f"{redis_prefix}-node2",
    }
