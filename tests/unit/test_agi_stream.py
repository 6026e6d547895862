"""AgiStream, the FastAGI server's per-connection reader/writer: the line buffer's edges.

Fed directly (data_received, eof_received, connection_lost) with a fake transport, and once
over a real socket; its behaviour must match asyncio's StreamReader, which it replaced on the
server's path (AgiChannel and read_environment take either).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agi_scripts.agi import (
    AgiChannel,
    AgiEnvironment,
    AgiError,
    CallerHangup,
    EnvironmentReadError,
    read_environment,
)
from agi_scripts.agi_stream import AgiStream

LIMIT = 64


class _Transport:
    """What AgiStream asks of a transport, recorded."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.paused = False
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 4573) if name == "peername" else default

    def close(self) -> None:
        self.closed = True


def _stream(limit: int = LIMIT) -> tuple[AgiStream, _Transport]:
    stream = AgiStream(limit)
    transport = _Transport()
    stream.connection_made(transport)  # type: ignore[arg-type]
    return stream, transport


async def _soon(awaitable: Any) -> Any:
    return await asyncio.wait_for(awaitable, 2.0)


async def test_a_line_split_across_reads_is_read_whole() -> None:
    stream, _ = _stream()
    read = asyncio.ensure_future(stream.readline())
    for piece in (b"200 res", b"ult=1 ", b"(x)"):
        stream.data_received(piece)
        await asyncio.sleep(0)
        assert not read.done()
    stream.data_received(b"\n200 result=0\n20")
    assert await _soon(read) == b"200 result=1 (x)\n"
    # The rest stays buffered: the next line without waiting, the partial one after more data.
    assert await _soon(stream.readline()) == b"200 result=0\n"
    stream.data_received(b"0 result=2\n")
    assert await _soon(stream.readline()) == b"200 result=2\n"


async def test_eof_gives_what_is_left_then_nothing() -> None:
    stream, _ = _stream()
    stream.data_received(b"200 result=1\n200 resu")
    stream.eof_received()
    assert await _soon(stream.readline()) == b"200 result=1\n"
    assert await _soon(stream.readline()) == b"200 resu"
    assert await _soon(stream.readline()) == b""


async def test_a_huge_line_is_refused_and_reading_pauses_until_it_is() -> None:
    stream, transport = _stream()
    stream.data_received(b"2" * (LIMIT + 1))
    with pytest.raises(ValueError):
        await _soon(stream.readline())
    # A flood without a line end: the transport is paused while nobody takes it, and the
    # over-long line is still refused when it ends.
    stream.data_received(b"9" * (3 * LIMIT))
    assert transport.paused
    stream.data_received(b"\n")
    with pytest.raises(ValueError):
        await _soon(stream.readline())
    assert not transport.paused


async def test_an_over_long_reply_line_puts_the_channel_out_of_step() -> None:
    stream, transport = _stream()
    channel = AgiChannel(stream, stream, AgiEnvironment())
    stream.data_received(b"200 result=1 (" + b"x" * LIMIT + b")\n")
    with pytest.raises(AgiError, match="longer than the stream limit"):
        await _soon(channel.answer())
    assert channel.desynchronised
    assert transport.sent == [b"ANSWER\n"]


async def test_a_header_cut_mid_line_is_refused_in_time() -> None:
    stream, _ = _stream()
    stream.data_received(b"agi_network: yes\nagi_network_scr")
    with pytest.raises(EnvironmentReadError, match="no complete AGI environment"):
        await _soon(read_environment(stream, timeout=0.1))
    closed, _ = _stream()
    closed.data_received(b"agi_network: yes\nagi_chan")
    closed.connection_lost(None)
    with pytest.raises(EnvironmentReadError, match="closed after 25 bytes"):
        await _soon(read_environment(closed, timeout=1.0))
    flood, _ = _stream()
    flood.data_received(b"agi_x: " + b"a" * LIMIT + b"\n")
    with pytest.raises(EnvironmentReadError, match="larger than the reader limit"):
        await _soon(read_environment(flood, timeout=1.0))


async def test_an_environment_split_across_reads_then_replies() -> None:
    stream, _ = _stream(limit=1024)
    read = asyncio.ensure_future(read_environment(stream, timeout=1.0))
    stream.data_received(b"agi_network_script: hot")
    await asyncio.sleep(0)
    stream.data_received(b"line\nagi_uniqueid: 1.2\n")
    await asyncio.sleep(0)
    assert not read.done()
    stream.data_received(b"\n200 result=0\n")
    env = await _soon(read)
    assert (env.network_script, env.uniqueid) == ("hotline", "1.2")
    assert await _soon(stream.readline()) == b"200 result=0\n"


async def test_a_deadline_fails_the_waiting_read_and_a_lost_connection_is_a_hangup() -> None:
    stream, _ = _stream()
    channel = AgiChannel(stream, stream, AgiEnvironment())
    with pytest.raises(AgiError, match="no reply to ANSWER"):
        await _soon(channel.command("ANSWER", timeout=0.05))
    assert channel.desynchronised
    lost, _ = _stream()
    channel = AgiChannel(lost, lost, AgiEnvironment())
    answer = asyncio.ensure_future(channel.answer())
    await asyncio.sleep(0)
    lost.connection_lost(ConnectionResetError("reset by peer"))
    with pytest.raises(CallerHangup):
        await _soon(answer)
    with pytest.raises(ConnectionResetError):
        await _soon(lost.drain())
    await _soon(lost.wait_closed())


async def test_drain_waits_while_the_transport_is_full() -> None:
    stream, _ = _stream()
    await _soon(stream.drain())
    stream.pause_writing()
    drain = asyncio.ensure_future(stream.drain())
    await asyncio.sleep(0)
    assert not drain.done()
    stream.resume_writing()
    await _soon(drain)


async def test_over_a_real_socket_each_connection_runs_its_task() -> None:
    served: list[bytes] = []

    async def serve(stream: AgiStream) -> None:
        env = await read_environment(stream, timeout=1.0)
        channel = AgiChannel(stream, stream, env)
        await channel.answer()
        served.append(env.uniqueid.encode())
        stream.close()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: AgiStream(1024, serve), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # The environment in two writes, cut mid-line.
        writer.write(b"agi_uniqueid: 7.")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"1\n\n")
        assert await _soon(reader.readline()) == b"ANSWER\n"
        writer.write(b"200 result=0\n")
        assert await _soon(reader.read()) == b""  # served, then closed by the server
        writer.close()
        assert served == [b"7.1"]
    finally:
        server.close()
        await server.wait_closed()
