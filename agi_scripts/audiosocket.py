"""Asterisk AudioSocket: the frame codec (pure) and an asyncio server for live call audio.

Protocol (Asterisk's res_audiosocket): every message is a 1-byte type, a 2-byte big-endian
payload length, then the payload.
  0x00 hang-up (no payload)   0x01 call UUID (16 bytes, always first)   0x03 DTMF digit (1 byte)
  0x10 slin, 8 kHz 16-bit little-endian mono (320 bytes = 20 ms)         0xff error (code byte)
Asterisk's `AudioSocket(<uuid>,host:port)` app sets the channel's read and write formats to
slin itself, so the call's codec (PCMU here) is transcoded by Asterisk before it reaches us.
Other audio types (0x11.. higher slin rates, newer Asterisk) are not what we asked for and end
the session as a codec error instead of being fed to an 8 kHz model as noise.

How a call uses it: the AGI coroutine registers a UUID with `expect()`, sends
`EXEC AudioSocket <uuid>,host:port`, and awaits the session; Asterisk connects here, sends the
UUID frame and then the caller's audio. Sending our 0x00 hang-up frame makes the app return 0
(the call goes on in the AGI); a plain socket close makes it return -1.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid as uuid_module
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import IntEnum

import structlog

HEADER_BYTES = 3
SLIN_FRAME_BYTES = 320  # 20 ms at 8 kHz, 16-bit
FRAME_SECONDS = 0.020
# Asterisk sends 320-byte frames; a few times that is tolerated (jitter buffers bunch frames),
# anything bigger is not Asterisk talking: drop the connection instead of buffering it.
MAX_PAYLOAD = 4096
# Asterisk connects within milliseconds of EXEC; a session that never says who it is is closed.
UUID_TIMEOUT = 2.0
LISTEN_BACKLOG = 1024


class FrameType(IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    SILENCE = 0x02
    DTMF = 0x03
    AUDIO = 0x10
    ERROR = 0xFF


# 0x11..0x18: slin at 12..192 kHz (Asterisk 22.1+). Known, but not what we negotiate.
OTHER_AUDIO_TYPES = frozenset(range(0x11, 0x19))


class FrameError(Exception):
    """The peer broke the framing (unknown type, bad length, oversized payload)."""


@dataclass(frozen=True)
class Frame:
    kind: int
    payload: bytes = b""

    @property
    def type(self) -> FrameType | None:
        try:
            return FrameType(self.kind)
        except ValueError:
            return None


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    if not 0 <= kind <= 0xFF:
        raise ValueError("frame type is one byte")
    if len(payload) > 0xFFFF:
        raise ValueError("payload longer than the 16-bit length field")
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


def encode_uuid(value: uuid_module.UUID) -> bytes:
    return encode_frame(FrameType.UUID, value.bytes)


def encode_audio(pcm: bytes) -> bytes:
    return encode_frame(FrameType.AUDIO, pcm)


HANGUP_FRAME = encode_frame(FrameType.HANGUP)


def check_frame(kind: int, length: int, max_payload: int = MAX_PAYLOAD) -> None:
    """Validate a header before reading its payload (so a huge length is never read)."""
    if length > max_payload:
        raise FrameError(f"frame of {length} bytes exceeds {max_payload}")
    if kind == FrameType.UUID and length != 16:
        raise FrameError(f"UUID frame of {length} bytes")
    if kind == FrameType.DTMF and length != 1:
        raise FrameError(f"DTMF frame of {length} bytes")
    if kind == FrameType.AUDIO and length % 2:
        raise FrameError("audio frame with an odd byte count")
    if kind not in FrameType.__members__.values() and kind not in OTHER_AUDIO_TYPES:
        raise FrameError(f"unknown frame type 0x{kind:02x}")


class FrameDecoder:
    """Incremental decoder: feed() any chunks, get whole frames. Raises FrameError."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= HEADER_BYTES:
            kind = self._buffer[0]
            length = int.from_bytes(self._buffer[1:3], "big")
            check_frame(kind, length, self.max_payload)
            if len(self._buffer) < HEADER_BYTES + length:
                break
            frames.append(Frame(kind, bytes(self._buffer[HEADER_BYTES : HEADER_BYTES + length])))
            del self._buffer[: HEADER_BYTES + length]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame: non-zero at EOF means the peer died mid-frame."""
        return len(self._buffer)


async def read_frame(reader: asyncio.StreamReader, max_payload: int = MAX_PAYLOAD) -> Frame | None:
    """One frame, or None at a clean EOF (between frames). EOF mid-frame is a FrameError."""
    try:
        header = await reader.readexactly(HEADER_BYTES)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("connection closed inside a frame header") from exc
        return None
    kind = header[0]
    length = int.from_bytes(header[1:3], "big")
    check_frame(kind, length, max_payload)
    try:
        payload = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as exc:
        raise FrameError(f"connection closed after {len(exc.partial)}/{length} bytes") from exc
    return Frame(kind, payload)


def dtmf_digit(payload: bytes) -> str | None:
    digit = payload[:1].decode("ascii", errors="replace")
    return digit if digit and digit in "0123456789*#ABCD" else None


class AudioSocketSession:
    """One call's audio connection. Read with frames(); talk with play(); end with close()."""

    def __init__(
        self, call_uuid: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.uuid = call_uuid
        self.reader = reader
        self.writer = writer
        self.closed = asyncio.Event()
        self.frames_received = 0
        self._write_lock = asyncio.Lock()

    async def frames(self, read_timeout: float = 5.0) -> AsyncIterator[Frame]:
        """Frames until EOF; a silent socket for `read_timeout` s ends the iteration too.

        Asterisk sends a frame every 20 ms while the channel is up, so a long gap means the
        channel or the connection is gone, not that the caller is quiet.
        """
        while not self.closed.is_set():
            try:
                async with asyncio.timeout(read_timeout):
                    frame = await read_frame(self.reader)
            except TimeoutError:
                return
            if frame is None:
                return
            self.frames_received += 1
            yield frame

    async def play(self, pcm: bytes, stop: asyncio.Event | None = None) -> int:
        """Send slin audio paced at real time; stop at once when `stop` is set. Frames sent.

        Pacing against the loop clock (not sleep(0.02) per frame) keeps the rate right when a
        frame is late; Asterisk plays what it receives immediately, so sending faster would
        queue audio we could then not take back on barge-in.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        for offset in range(0, len(pcm), SLIN_FRAME_BYTES):
            if (stop is not None and stop.is_set()) or self.closed.is_set():
                break
            chunk = pcm[offset : offset + SLIN_FRAME_BYTES]
            if len(chunk) < SLIN_FRAME_BYTES:
                chunk = chunk + b"\x00" * (SLIN_FRAME_BYTES - len(chunk))
            if not await self._send(encode_audio(chunk)):
                break
            sent += 1
            delay = start + sent * FRAME_SECONDS - loop.time()
            if stop is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(delay, 0)):
                        await stop.wait()
            elif delay > 0:
                await asyncio.sleep(delay)
        return sent

    async def _send(self, data: bytes) -> bool:
        async with self._write_lock:
            if self.writer.is_closing():
                return False
            try:
                self.writer.write(data)
                await self.writer.drain()
            except (ConnectionError, OSError):
                return False
        return True

    async def close(self) -> None:
        """Say hang-up (so AudioSocket returns 0 and the AGI goes on), then close."""
        if self.closed.is_set():
            return
        await self._send(HANGUP_FRAME)
        self.closed.set()
        self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()


class AudioSocketServer:
    """Accepts Asterisk's connections and hands each to the AGI coroutine that expects it."""

    def __init__(self, *, uuid_timeout: float = UUID_TIMEOUT) -> None:
        self.uuid_timeout = uuid_timeout
        self.log = structlog.get_logger("hotline.audiosocket")
        self._server: asyncio.Server | None = None
        self._pending: dict[str, asyncio.Future[AudioSocketSession]] = {}
        self._host = "127.0.0.1"

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        """`host:port` as the AudioSocket app wants it."""
        return f"{self._host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def start(self, host: str, port: int, *, advertise: str | None = None) -> None:
        """Listen on host:port; `advertise`: the host Asterisk is told to connect to (default:
        `host`; HOTLINE_AUDIOSOCKET_ADVERTISE_HOST)."""
        self._host = advertise or host
        self._server = await asyncio.start_server(
            self._on_connection, host, port, backlog=LISTEN_BACKLOG
        )
        self.log.info("audiosocket_listening", host=host, port=self.port, address=self.address)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    def expect(
        self, call_uuid: str | None = None
    ) -> tuple[str, asyncio.Future[AudioSocketSession]]:
        """Register a fresh UUID (or the one given); the future resolves when Asterisk connects."""
        key = str(uuid_module.UUID(call_uuid)) if call_uuid else str(uuid_module.uuid4())
        future: asyncio.Future[AudioSocketSession] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        return key, future

    def forget(self, call_uuid: str) -> None:
        future = self._pending.pop(call_uuid, None)
        if future is not None and not future.done():
            future.cancel()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        log = self.log.bind(peer=str(writer.get_extra_info("peername")))
        try:
            async with asyncio.timeout(self.uuid_timeout):
                first = await read_frame(reader)
        except (TimeoutError, FrameError, ConnectionError) as exc:
            log.warning("audiosocket_no_uuid", error=str(exc) or type(exc).__name__)
            writer.close()
            return
        if first is None or first.kind != FrameType.UUID:
            log.warning("audiosocket_first_frame_not_uuid", kind=first.kind if first else None)
            writer.close()
            return
        call_uuid = str(uuid_module.UUID(bytes=first.payload))
        future = self._pending.pop(call_uuid, None)
        if future is None or future.done():
            # Nobody waits for it (a late connection after a timeout, or a stranger).
            log.warning("audiosocket_unexpected_uuid", uuid=call_uuid)
            writer.write(HANGUP_FRAME)
            writer.close()
            return
        session = AudioSocketSession(call_uuid, reader, writer)
        future.set_result(session)
        # The session's owner reads and closes it; keep this handler alive until then so the
        # server's wait_closed() accounts for it.
        await session.closed.wait()
