"""The FastAGI server with its database away: every caller still gets the whole menu, at once.

The server in its own process, logging as in production; its database a PostgreSQL address
that refuses connections (down, restarting) or takes them and never answers (hung, or its
packets dropped); many callers, each from another number, so no cache spares a lookup. The
AGI peer is the res_agi-speaking fake from the unit tests.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from call_router import channel_vars
from tests.conftest import free_port
from tests.integration.test_agi_server import agi_server_process
from tests.unit.test_agi_protocol import FakeAsterisk, environment, run_call

CALLERS = 40


@pytest.fixture
def server_without_database(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """Connections to its database are refused (PostgreSQL down, restarting)."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/away"
    with agi_server_process(tmp_path, url) as (port, _proc, log):
        yield port, log


@pytest.fixture
def server_with_silent_database(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """Its database takes the connection and never answers (a hung server, a host whose
    packets are dropped): every attempt waits its whole timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1024)  # the kernel completes the handshakes; nobody ever speaks
        url = f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/silent"
        with agi_server_process(tmp_path, url) as (port, _proc, log):
            yield port, log


def callers(count: int) -> list[FakeAsterisk]:
    return [
        FakeAsterisk(keys=[("2", False)], variables={"CHANNEL(linkedid)": f"away-{n}"})
        for n in range(count)
    ]


async def test_callers_get_the_menu_at_once_while_the_database_is_away(
    server_without_database: tuple[int, Path],
) -> None:
    port, log_path = server_without_database
    fakes = callers(CALLERS)
    # Before, each caller's lookups tried the database and logged a traceback with every
    # frame's locals (~2 s of CPU each, on the loop that serves every menu): these callers
    # met silence, none was served within a minute.
    async with asyncio.timeout(60):
        await asyncio.gather(
            *(
                run_call(port, fake, environment(agi_callerid=f"+7495222{n:04d}"))
                for n, fake in enumerate(fakes)
            )
        )
    assert [fake.set_vars.get(channel_vars.QUEUE) for fake in fakes] == ["electricity"] * CALLERS
    log = log_path.read_text(errors="replace")
    # The menu stopped reading after a few failures: one line says so, not one per caller.
    # Before, every read of every caller failed (two or more a caller). Now at most each
    # caller's first: all 40 arrive in the same moment, and on a loaded machine their first
    # reads may all be under way before the first failure comes back; none after that.
    assert log.count("database_away_menu_stops_reading") == 1, log[-3000:]
    assert log.count("database_read_failed") <= CALLERS, log[-3000:]


async def test_callers_do_not_each_wait_for_a_database_that_never_answers(
    server_with_silent_database: tuple[int, Path],
) -> None:
    port, log_path = server_with_silent_database
    fakes = callers(CALLERS)

    async def arrive(n: int, fake: FakeAsterisk) -> None:
        await asyncio.sleep(n * 0.2)  # one caller every 200 ms, over 8 s
        await run_call(port, fake, environment(agi_callerid=f"+7495333{n:04d}"))

    async with asyncio.timeout(90):
        await asyncio.gather(*(arrive(n, fake) for n, fake in enumerate(fakes)))
    assert [fake.set_vars.get(channel_vars.QUEUE) for fake in fakes] == ["electricity"] * CALLERS
    log = log_path.read_text(errors="replace")
    # Before, every caller waited out each of its lookups' timeouts in silence (a second
    # for the language, five for a lookup); now those who came before the circuit opened
    # did, and the menu asked no more (the retry time, 5 s, lets one caller try again).
    assert log.count("database_away_menu_stops_reading") == 1, log[-3000:]
    assert log.count("database_read_timeout") < CALLERS // 2, log[-3000:]
