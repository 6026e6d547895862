"""How the dashboard is launched: one process or several uvicorn workers (dashboard.main)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from uvicorn.importer import import_from_string
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from call_router.settings import Settings
from call_router.settings_platform import default_dashboard_workers
from dashboard import main


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_CONFIG_FILE", "")
    monkeypatch.delenv("HOTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("HOTLINE_DASHBOARD_WORKERS", raising=False)
    return monkeypatch


@pytest.mark.parametrize(("cpus", "workers"), [(None, None), (0, 1), (1, 1), (2, 2), (16, 4)])
def test_default_is_one_worker_per_core_up_to_four(cpus: int | None, workers: int | None) -> None:
    if cpus is None:
        # This machine's own cores (its CPU affinity, as a container's cpuset would limit it).
        usable = len(os.sched_getaffinity(0))
        assert default_dashboard_workers() == max(1, min(4, usable))
    else:
        assert default_dashboard_workers(cpus) == workers


def test_workers_setting_comes_from_the_environment(env: pytest.MonkeyPatch) -> None:
    assert Settings().dashboard_workers == default_dashboard_workers()
    env.setenv("HOTLINE_DASHBOARD_WORKERS", "3")
    assert Settings().dashboard_workers == 3
    env.setenv("HOTLINE_DASHBOARD_WORKERS", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_one_worker_serves_the_app_built_in_process(env: pytest.MonkeyPatch) -> None:
    env.setenv("HOTLINE_DASHBOARD_WORKERS", "1")
    env.setenv("HOTLINE_DASHBOARD_PORT", "18123")
    options = main.uvicorn_options(Settings())
    assert isinstance(options["app"], FastAPI)
    assert "workers" not in options and "factory" not in options
    assert options["port"] == 18123 and options["host"] == "127.0.0.1"
    assert options["http"] is main.NoDelayHTTPProtocol


def test_several_workers_get_an_importable_factory(env: pytest.MonkeyPatch) -> None:
    env.setenv("HOTLINE_DASHBOARD_WORKERS", "2")
    env.setenv("HOTLINE_TIMEZONE", "Asia/Tokyo")
    options = main.uvicorn_options(Settings())
    assert options["workers"] == 2
    assert options["factory"] is True
    assert options["http"] is main.NoDelayHTTPProtocol
    assert options["timeout_graceful_shutdown"] == main.GRACEFUL_SHUTDOWN_SECONDS
    # A worker slow to start on a busy machine is not killed and respawned for ever.
    assert options["timeout_worker_healthcheck"] == main.WORKER_HEALTHCHECK_SECONDS >= 30
    # What each worker process does: import the string and call it with no arguments; the
    # app then reads the same HOTLINE_* environment.
    factory = import_from_string(options["app"])
    app = factory()
    assert isinstance(app, FastAPI)
    assert app.state.dashboard.zone.key == "Asia/Tokyo"
    assert app.state.dashboard.settings.dashboard_workers == 2


async def accepted_nodelay(protocol_class: type[asyncio.Protocol]) -> int:
    """TCP_NODELAY of a connection accepted the way uvicorn's workers accept: on a listener
    bound beforehand with `proto` 0 (uvicorn.Config.bind_socket), handed to asyncio."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    assert listener.proto == 0
    config = uvicorn.Config(FastAPI(), log_level="warning")
    connected: asyncio.Future[asyncio.BaseTransport] = asyncio.get_running_loop().create_future()

    def make() -> asyncio.Protocol:
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={})  # type: ignore[call-arg]
        original = protocol.connection_made

        def made(transport: asyncio.BaseTransport) -> None:
            original(transport)
            connected.set_result(transport)

        protocol.connection_made = made  # type: ignore[method-assign]
        return protocol

    server = await asyncio.get_running_loop().create_server(make, sock=listener)
    try:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        transport = await asyncio.wait_for(connected, 10)
        value = int(
            transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        )
        writer.close()
        return value
    finally:
        server.close()


async def test_the_protocol_turns_nagle_off_where_uvicorn_leaves_it_on() -> None:
    assert await accepted_nodelay(H11Protocol) == 0, "uvicorn #3149 fixed? then drop ours"
    assert await accepted_nodelay(main.NoDelayHTTPProtocol) == 1


def test_no_proxy_is_trusted_unless_configured(env: pytest.MonkeyPatch) -> None:
    """uvicorn's own default believes X-Forwarded-For from 127.0.0.1; the dashboard's does not."""
    env.setenv("HOTLINE_DASHBOARD_WORKERS", "1")
    options = main.uvicorn_options(Settings())
    config = uvicorn.Config(**options)
    config.load()
    assert options["proxy_headers"] is False
    assert not _has_proxy_middleware(config.loaded_app)

    env.setenv("HOTLINE_FORWARDED_ALLOW_IPS", "10.0.0.5,192.168.1.0/24")
    trusted = uvicorn.Config(**main.uvicorn_options(Settings()))
    trusted.load()
    assert _has_proxy_middleware(trusted.loaded_app)
    assert trusted.forwarded_allow_ips == "10.0.0.5,192.168.1.0/24"


def _has_proxy_middleware(app: object) -> bool:
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    while app is not None:
        if isinstance(app, ProxyHeadersMiddleware):
            return True
        app = getattr(app, "app", None)
    return False
