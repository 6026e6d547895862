"""The FastAGI server as it runs in production: its own process, PostgreSQL, real signals.

The AGI peer is the res_agi-speaking fake from the unit tests; the real-Asterisk path is the
end-to-end test's job (tests/integration/test_e2e_call.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from call_router import channel_vars
from call_router.db import Database
from call_router.models import Call, CallEvent
from tests.conftest import free_port, wait_for
from tests.unit.test_agi_protocol import FakeAsterisk, encode_environment, environment, run_call

pytestmark = pytest.mark.postgres

SERVER = [sys.executable, "-c", "from agi_scripts.server import main; main()"]


# Start-up (imports, flows, the writer, gc.freeze) takes a second on a quiet machine and far
# longer on a loaded one: wait for the port itself, bounded generously.
START_TIMEOUT = 180.0


def wait_listening(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = START_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"the FastAGI server exited during start-up ({proc.returncode}):\n"
                + log.read_text(errors="replace")[-3000:]
            )
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(
        f"FastAGI server not listening on {port} after {timeout}s:\n"
        + log.read_text(errors="replace")[-3000:]
    )


async def wait_refusing(port: int, timeout: float = 60.0) -> None:
    """Until the stopping server has closed its listening socket."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return
            writer.close()
            await asyncio.sleep(0.05)


@contextlib.contextmanager
def agi_server_process(
    tmp_path: Path, database_url: str, **env: str
) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """The FastAGI server in its own process on `database_url` (and `env`): its port, the
    process and its log. SIGTERM at the end."""
    port = free_port()
    env = {
        **os.environ,
        "HOTLINE_DATABASE_URL": database_url,
        "HOTLINE_AGI_HOST": "127.0.0.1",
        "HOTLINE_AGI_PORT": str(port),
        "HOTLINE_AUDIOSOCKET_PORT": str(free_port()),
        "HOTLINE_STATE_DIR": str(tmp_path / "state"),
        "HOTLINE_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "HOTLINE_CONFIG_FILE": "",
        **env,
    }
    log_path = tmp_path / "agi.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(SERVER, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_listening(port, proc, log_path)
            yield port, proc, log_path
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


@pytest.fixture
def agi_process(postgres_url: str, tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    with agi_server_process(
        tmp_path, postgres_url, HOTLINE_MENU_TIMEOUT="1", HOTLINE_MENU_RETRIES="1"
    ) as (port, proc, _log):
        yield port, proc


def call_by_linkedid(url: str, linkedid: str) -> tuple[Call | None, list[str]]:
    """The call's row and its timeline kinds.

    The kinds are read first: under PostgreSQL's READ COMMITTED each statement sees what was
    committed when it began, so a row read before the kinds could predate the very batch
    (columns and timeline entry in one transaction) whose entry the kinds then show.
    """
    db = Database(url)
    try:
        with db.session() as session:
            kinds = list(
                session.scalars(
                    select(CallEvent.kind)
                    .join(Call, Call.id == CallEvent.call_id)
                    .where(Call.linkedid == linkedid)
                )
            )
            call = session.scalars(select(Call).where(Call.linkedid == linkedid)).first()
            return call, kinds
    finally:
        db.dispose()


async def test_menu_choice_is_logged_in_postgres(
    agi_process: tuple[int, subprocess.Popen[bytes]], postgres_url: str
) -> None:
    port, _ = agi_process
    linkedid = f"it-{uuid.uuid4().hex[:12]}"
    fake = FakeAsterisk(
        keys=[("8", False), ("3", False)], variables={"CHANNEL(linkedid)": linkedid}
    )
    await run_call(port, fake, environment(agi_calleridname='"Bob" <b@x>\\n'))

    assert fake.set_vars[channel_vars.QUEUE] == "heating"
    # The call-log writer stores it moments after the menu (the menu never waits for it).
    call, kinds = wait_for(
        lambda: (
            (found := call_by_linkedid(postgres_url, linkedid))[0]
            and "menu_result" in found[1]
            and found
        ),
        timeout=10,
        interval=0.1,
        what="the call's menu result in the call log",
    )
    assert call is not None
    assert (call.queue, call.intent, call.menu_choice) == ("heating", "heating", "3")
    # Set only if the call-log writer had stored the row by the time the menu ended (the menu
    # never waits for the database); then it is this call's row.
    assert fake.set_vars.get(channel_vars.CALL_ID) in (None, str(call.id))
    assert "menu_invalid" in kinds and "menu_result" in kinds


async def test_sigterm_lets_the_running_call_finish_then_exits(
    agi_process: tuple[int, subprocess.Popen[bytes]], postgres_url: str
) -> None:
    port, proc = agi_process
    linkedid = f"it-{uuid.uuid4().hex[:12]}"
    fake = FakeAsterisk(keys=[("1", False)], variables={"CHANNEL(linkedid)": linkedid})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode_environment(environment()))
    await writer.drain()
    line = await reader.readline()  # ANSWER: the call is in the menu

    proc.send_signal(signal.SIGTERM)
    # No new calls once stopping: Asterisk's AGI() fails and the dialplan fail-safe routes.
    await wait_refusing(port)

    async with asyncio.timeout(10):
        while line:
            for out in fake.reply(line.decode().rstrip("\n")):
                writer.write(out.encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
    writer.close()

    assert fake.set_vars[channel_vars.QUEUE] == "plumbing"
    assert await asyncio.to_thread(proc.wait, 10) == 0
    call, _ = call_by_linkedid(postgres_url, linkedid)
    assert call is not None and call.queue == "plumbing"
