"""A click-to-call row names the node whose AMI took the Originate (click_to_call.complete):
node 1's AMI is down, node 2's answers, so the row says node2; on one box it stays NULL.

Asterisk is not needed for what is tested here (which host answered and what is written), so
the AMI peer is a tiny server on node 2's loopback address speaking the AMI exchange panoramisk
and the Originate need; the real click-to-call against Asterisk is tests/integration/
test_callbacks_e2e.py (with a cluster, tests/integration/test_cluster_e2e.py)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from call_router import click_to_call
from call_router.ami_client import connect_one_shot
from call_router.db import Database
from call_router.models import Call
from call_router.settings import Settings
from tests.conftest import free_port
from tests.unit.conftest import model_database

NODE1, NODE2 = "127.0.0.2", "127.0.0.3"


def message(fields: dict[str, str]) -> bytes:
    return ("".join(f"{key}: {value}\r\n" for key, value in fields.items()) + "\r\n").encode()


class TinyAmi:
    """Greeting, Login, and an Originate answered "queued" then by its OriginateResponse
    (the operator answered), on its own event loop in a thread."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.originates: list[dict[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> TinyAmi:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *_exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._client, self.host, self.port)

        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                lines = raw.decode().strip().split("\r\n")
                action = dict(line.split(": ", 1) for line in lines if ": " in line)
                action_id = action.get("ActionID", "")
                name = action.get("Action", "").lower()
                if name == "login":
                    writer.write(message({"Response": "Success", "ActionID": action_id,
                                          "Message": "Authentication accepted"}))  # fmt: skip
                elif name == "originate":
                    self.originates.append(action)
                    writer.write(message({"Response": "Success", "ActionID": action_id,
                                          "Message": "Originate successfully queued"}))  # fmt: skip
                    writer.write(message({"Event": "OriginateResponse", "Privilege": "call,all",
                                          "ActionID": action_id, "Response": "Success",
                                          "Reason": "4"}))  # fmt: skip
                else:
                    writer.write(message({"Response": "Success", "ActionID": action_id}))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    yield from model_database(tmp_path)


def placed_call(db: Database, linkedid: str) -> click_to_call.PlacedCall:
    """The row `prepare` writes before Asterisk is asked (node not known yet)."""
    with db.session() as session:
        call = Call(
            linkedid=linkedid,
            caller_number="+74950001234",
            started_at=datetime.now(UTC),
            queue="plumbing",
            operator="op_anna",
            direction="callback",
        )
        session.add(call)
        session.flush()
        call_id = call.id
    return click_to_call.PlacedCall(1, call_id, linkedid, "op_anna", "+74950001234")


def node_of(db: Database, call_id: int) -> str | None:
    with db.session() as session:
        row = session.get(Call, call_id)
        assert row is not None
        return row.node


@pytest.fixture
def port() -> int:
    # Node 2's port, free on node 1's address too: nothing listens there (node 1 is down).
    while True:
        candidate = free_port(NODE2)
        with socket.socket() as sock:
            try:
                sock.bind((NODE1, candidate))
            except OSError:
                continue
        return candidate


def cluster_dashboard(tmp_path: Path, port: int) -> Settings:
    """The cluster's dashboard as `hotline cluster up` starts it."""
    return Settings(
        state_dir=tmp_path / "state",
        ami_host=NODE1,
        ami_fallback_hosts=[NODE2],
        ami_port=port,
        node_ami_hosts={"node1": NODE1, "node2": NODE2},
    )


def test_the_row_names_the_node_whose_ami_took_the_originate(
    tmp_path: Path, db: Database, port: int
) -> None:
    settings = cluster_dashboard(tmp_path, port)
    placed = placed_call(db, "hotline-out-node-test")
    with TinyAmi(NODE2, port) as node2:
        result = click_to_call.complete(settings, db, placed)
    assert result.ok, result.detail
    assert [a["ChannelId"] for a in node2.originates] == [placed.linkedid]
    assert node_of(db, placed.call_id) == "node2"


async def test_connect_one_shot_says_which_host_answered(tmp_path: Path, port: int) -> None:
    settings = cluster_dashboard(tmp_path, port)
    with TinyAmi(NODE2, port):
        manager = await connect_one_shot(settings, events="call", role="originate")
        try:
            assert manager.host == NODE2
        finally:
            manager.close()
    assert settings.node_of_ami_host(NODE1) == "node1"
    assert settings.node_of_ami_host("192.0.2.1") is None


def test_one_box_leaves_the_node_empty(tmp_path: Path, db: Database, port: int) -> None:
    settings = Settings(state_dir=tmp_path / "state", ami_host=NODE2, ami_port=port)
    placed = placed_call(db, "hotline-out-one-box")
    with TinyAmi(NODE2, port):
        assert click_to_call.complete(settings, db, placed).ok
    assert node_of(db, placed.call_id) is None


def test_a_node_s_router_names_its_own_node(tmp_path: Path) -> None:
    """The router's virtual-hold dispatcher dials through its own node's AMI."""
    node = Settings(state_dir=tmp_path / "state", node="node2", ami_host=NODE2)
    assert node.node_of_ami_host(NODE2) == "node2"
    assert node.node_of_ami_host(NODE1) is None


def test_assign_node_never_overwrites_a_node_already_set(db: Database) -> None:
    placed = placed_call(db, "hotline-out-merged")
    click_to_call.assign_node(db, placed.call_id, "node1")
    click_to_call.assign_node(db, placed.call_id, "node2")
    click_to_call.assign_node(db, placed.call_id, None)
    assert node_of(db, placed.call_id) == "node1"
