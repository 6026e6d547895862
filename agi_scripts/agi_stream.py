"""One AGI connection as an asyncio.Protocol with a line buffer: the reader and the writer.

asyncio's StreamReader/StreamWriter pair costs a protocol, a reader and a writer object per
connection and, per reply line, several Python-level steps (readuntil's generic separator
search, the waiter dance, the resume check); a FastAGI session reads ~8 short lines, so that was
a visible share of the server's CPU per call (BENCHMARKS.md, "the AGI channel on a protocol").
This class does the same job with one object: `readline`/`readuntil` with the StreamReader's
semantics (limit, EOF, a set exception wins over buffered data), `write`/`drain` with the
StreamWriter's, so AgiChannel and read_environment take either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, cast

# The bound of one line (reply or environment) and of unread data before reading pauses:
# the StreamReader limit the server used (2 x ENV_MAX_BYTES).
DEFAULT_LIMIT = 32 * 1024


class AgiStream(asyncio.Protocol):
    """The byte stream of one AGI connection; `on_connection(self)` runs as its own task."""

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        on_connection: Callable[[AgiStream], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self._limit = limit
        self._on_connection = on_connection
        self._buffer = bytearray()
        self._eof = False
        self._exception: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._read_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._lost = False
        self._closed: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None

    # --- the protocol callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        if self._on_connection is not None:
            # Held by the loop until it runs, then by the server's set of calls.
            self.task = asyncio.get_running_loop().create_task(self._on_connection(self))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake()
        if not self._read_paused and len(self._buffer) > 2 * self._limit:
            # Nobody is reading this fast (a flooding peer): stop taking more until they do.
            assert self.transport is not None
            self.transport.pause_reading()
            self._read_paused = True

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # as StreamReaderProtocol: our side closes when the call is over

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if exc is None:
            self._eof = True
        elif self._exception is None:
            self._exception = exc
        self._wake()
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_exception(ConnectionResetError("Connection lost"))
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)

    # --- reading (StreamReader's semantics) ----------------------------------------------

    def set_exception(self, exc: BaseException) -> None:
        """Fail the read waiting now and every later one (the command deadline's timer)."""
        self._exception = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def readline(self) -> bytes:
        """One line with its `\\n`; at EOF what is left (b"" if nothing). ValueError for a
        line longer than the limit (the line, or what was buffered of it, is dropped)."""
        while True:
            if self._exception is not None:
                raise self._exception
            buffer = self._buffer
            end = buffer.find(b"\n")
            if end >= 0:
                end += 1
                line = bytes(buffer[:end])
                del buffer[:end]
                if self._read_paused:
                    self._maybe_resume()
                if end > self._limit:
                    raise ValueError("Separator is found, but chunk is longer than limit")
                return line
            if len(buffer) > self._limit:
                buffer.clear()
                self._maybe_resume()
                raise ValueError("Separator is not found, and chunk exceed the limit")
            if self._eof:
                line = bytes(buffer)
                buffer.clear()
                return line
            await self._wait()

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """Up to and including `separator`; IncompleteReadError at EOF, LimitOverrunError when
        more than the limit arrives without it (as StreamReader.readuntil)."""
        while True:
            if self._exception is not None:
                raise self._exception
            buffer = self._buffer
            at = buffer.find(separator)
            if at >= 0:
                if at > self._limit:
                    raise asyncio.LimitOverrunError(
                        "Separator is found, but chunk is longer than limit", at
                    )
                end = at + len(separator)
                chunk = bytes(buffer[:end])
                del buffer[:end]
                if self._read_paused:
                    self._maybe_resume()
                return chunk
            if len(buffer) > self._limit:
                raise asyncio.LimitOverrunError(
                    "Separator is not found, and chunk exceed the limit", len(buffer)
                )
            if self._eof:
                partial = bytes(buffer)
                buffer.clear()
                raise asyncio.IncompleteReadError(partial, None)
            await self._wait()

    async def _wait(self) -> None:
        if self._read_paused:
            self._maybe_resume()
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _maybe_resume(self) -> None:
        if self._read_paused and len(self._buffer) <= self._limit and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()

    # --- writing (StreamWriter's semantics) ----------------------------------------------

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        """Until the transport's buffer is below its high-water mark; ConnectionResetError once
        the connection is lost."""
        if self._exception is not None:
            raise self._exception
        if self._lost:
            raise ConnectionResetError("Connection lost")
        if not self._write_paused:
            return
        drain = self._drain_waiter
        if drain is None or drain.done():
            drain = self._drain_waiter = asyncio.get_running_loop().create_future()
        await drain

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self.transport is None:
            return default
        return self.transport.get_extra_info(name, default)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        if self._lost:
            return
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        await self._closed
