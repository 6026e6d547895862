"""The dashboard's one AMI link (`hotline-supervise`, dashboard/main.py) in a cluster: when the
first node's AMI cannot be reached it logs in on the next one, the rule every link follows
(Settings.ami_fallback_hosts in order, call_router/ami_client.py `connect_one_shot`). The first
node is a second loopback address, 127.0.0.2 (nothing there, or a port that takes the
connection and drops it, as a proxy in front of a stopped Asterisk does); the next is the real
sandbox Asterisk. A dropped connection is passed over as soon as it drops, not after the login
timeout."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest

from call_router.ami_client import AmiLink, AmiUnavailable, connect_one_shot
from call_router.db import Database
from call_router.settings import Settings
from dashboard.main import create_app

pytestmark = pytest.mark.asterisk

DOWN_NODE = "127.0.0.2"


def cluster_dashboard(stack: Settings) -> Settings:
    """The stack's settings as `hotline cluster up` gives its dashboard: node 1 first (down
    here), then the others (the sandbox Asterisk)."""
    return Settings(
        **{**stack.model_dump(), "ami_host": DOWN_NODE, "ami_fallback_hosts": [stack.ami_host]}
    )


def dashboard_link(settings: Settings) -> AmiLink:
    app = create_app(settings, Database("sqlite://"), zone=ZoneInfo("UTC"))
    return app.state.dashboard.ami  # type: ignore[no-any-return]


@pytest.fixture
def dropping_port(stack: Settings) -> Iterator[None]:
    """Node 1's AMI port takes each connection and closes it at once (no greeting)."""
    server = socket.create_server((DOWN_NODE, stack.ami_port))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        server.close()


async def supervise_status(link: AmiLink) -> tuple[str, str]:
    """Log in and send one action, as the agents panel's first QueueStatus would."""
    try:
        host = await link.connect()
        replies = await link.send({"Action": "Ping"})
        return host, replies[0].get("Response", "")
    finally:
        await link.close()


def test_the_supervise_link_logs_in_on_the_next_node_when_the_first_refuses(
    stack: Settings,
) -> None:
    settings = cluster_dashboard(stack)
    link = dashboard_link(settings)
    host, response = asyncio.run(supervise_status(link))
    assert (host, response) == (stack.ami_host, "Success")
    assert link.logins == 1


def test_the_supervise_link_logs_in_on_the_next_node_when_the_first_drops_the_connection(
    stack: Settings, dropping_port: None
) -> None:
    settings = cluster_dashboard(stack)
    link = dashboard_link(settings)
    host, response = asyncio.run(supervise_status(link))
    assert (host, response) == (stack.ami_host, "Success")
    assert link.logins == 1


async def login_through(settings: Settings) -> None:
    manager = await connect_one_shot(settings, events="off", role="supervise")
    manager.close()


def test_a_node_that_drops_the_connection_is_passed_over_for_that_not_for_a_timeout(
    stack: Settings, dropping_port: None
) -> None:
    only_the_dropping_node = Settings(
        **{**stack.model_dump(), "ami_host": DOWN_NODE, "ami_fallback_hosts": []}
    )
    with pytest.raises(AmiUnavailable, match="closed before login"):
        asyncio.run(login_through(only_the_dropping_node))
