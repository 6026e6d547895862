"""The AGI channel's own CPU per session: AgiStream against asyncio's StreamReader/StreamWriter.

One process, no sockets: a fake transport answers each command line on the next loop turn, so
what is measured is the Python-level path a session takes through the channel (connection set-up,
environment read, 8 commands, close) on uvloop, in CPU time (process_time), the two kinds
interleaved. Pin it to one core: `taskset -c 0 .venv/bin/python bench/agi/channel_micro.py 6`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import uvloop  # noqa: E402

from agi_scripts.agi import AgiChannel, read_environment  # noqa: E402
from agi_scripts.agi_stream import AgiStream  # noqa: E402

ENV = (
    b"".join(
        b"agi_%s: value%d\n" % (key.encode(), i)
        for i, key in enumerate(
            [
                "network",
                "request",
                "channel",
                "language",
                "type",
                "uniqueid",
                "version",
                "callerid",
                "calleridname",
                "callingpres",
                "callingani2",
                "callington",
                "callingtns",
                "dnid",
                "rdnis",
                "context",
                "extension",
                "priority",
                "enhanced",
                "accountcode",
                "threadid",
                "network_script",
            ]
        )
    )
    + b"\n"
)
COMMANDS = 8
SESSIONS = 20_000
CONCURRENCY = 50


class _Transport:
    """Answers every line written with a `200` on the next loop turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol) -> None:
        self.loop, self.protocol, self.closing = loop, protocol, False

    def write(self, data: bytes) -> None:
        self.loop.call_soon(self.protocol.data_received, b"200 result=1 (x)\n")

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.loop.call_soon(self.protocol.connection_lost, None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _session_stream(loop: asyncio.AbstractEventLoop) -> None:
    done = loop.create_future()

    async def serve(stream: AgiStream) -> None:
        env = await read_environment(stream, timeout=5)
        channel = AgiChannel(stream, stream, env)
        for _ in range(COMMANDS):
            await channel.command("SET VARIABLE X 1")
        channel.close()
        stream.close()
        await stream.wait_closed()
        done.set_result(None)

    protocol = AgiStream(32768, serve)
    protocol.connection_made(_Transport(loop, protocol))  # type: ignore[arg-type]
    loop.call_soon(protocol.data_received, ENV)
    await done


async def _session_pair(loop: asyncio.AbstractEventLoop) -> None:
    done = loop.create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env = await read_environment(reader, timeout=5)
        channel = AgiChannel(reader, writer, env)
        for _ in range(COMMANDS):
            await channel.command("SET VARIABLE X 1")
        channel.close()
        writer.close()
        await writer.wait_closed()
        done.set_result(None)

    reader = asyncio.StreamReader(limit=32768, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, serve, loop=loop)
    protocol.connection_made(_Transport(loop, protocol))  # type: ignore[arg-type]
    loop.call_soon(protocol.data_received, ENV)
    await done


async def _measure(session: Callable[[asyncio.AbstractEventLoop], Awaitable[None]]) -> float:
    loop = asyncio.get_running_loop()

    async def worker() -> None:
        for _ in range(SESSIONS // CONCURRENCY):
            await session(loop)

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return (time.process_time() - started) / SESSIONS * 1e6


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    kinds = {"AgiStream": _session_stream, "StreamReader pair": _session_pair}
    results: dict[str, list[float]] = {name: [] for name in kinds}
    for n in range(rounds):
        for name in list(kinds)[:: 1 if n % 2 else -1]:
            results[name].append(uvloop.run(_measure(kinds[name])))
    for name, values in results.items():
        print(f"{name}: µs CPU per session {[round(v) for v in values]}, min {min(values):.0f}")


if __name__ == "__main__":
    main()
