"""Property-based fuzzing of AudioSocket framing and the AudioSocket server.

Properties: the decoders raise only FrameError and never hold more than one frame's worth of
a peer's bytes; over a real loopback socket a hostile connection (random types, lengths that
lie, truncated or oversized frames, no UUID frame, frames after hang-up, a reset) never
blocks a well-formed session beside it, and a capture on a hostile session always ends with
a result (the menu then goes on, by voice or keypad) instead of an exception.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from agi_scripts.audiosocket import (
    HEADER_BYTES,
    MAX_PAYLOAD,
    AudioSocketServer,
    AudioSocketSession,
    Frame,
    FrameDecoder,
    FrameError,
    FrameType,
    encode_frame,
    encode_uuid,
    read_frame,
)
from agi_scripts.listen_capture import Capture, capture_utterance
from agi_scripts.listen_types import EndedBy
from agi_scripts.vad import EndOfSpeechDetector, VadConfig
from tests.unit.fuzzing import PURE, SOCKETS

GOOD_BOUND = 10.0
HOSTILE_BOUND = 10.0
LOUD = struct.pack("<160h", *([6000, -6000] * 80))

# --- strategies --------------------------------------------------------------------------

frame_kind = st.one_of(
    st.sampled_from([int(k) for k in FrameType] + [0x11, 0x12, 0x18]), st.integers(0, 255)
)


@st.composite
def raw_frame(draw: st.DrawFn) -> bytes:
    """A frame whose length field may lie (longer or shorter than its payload) or be huge."""
    kind = draw(frame_kind)
    payload = draw(
        st.one_of(
            st.binary(max_size=700),
            st.just(LOUD),
            st.just(b"5"),
            st.binary(min_size=16, max_size=16),
        )
    )
    length = draw(
        st.one_of(
            st.just(len(payload)),
            st.integers(0, 0xFFFF),
            st.just(len(payload) + 1),
            st.just(max(len(payload) - 1, 0)),
            st.just(MAX_PAYLOAD + 1),
        )
    )
    return bytes([kind]) + length.to_bytes(2, "big") + payload


def valid_frames() -> st.SearchStrategy[list[Frame]]:
    return st.lists(
        st.one_of(
            st.builds(Frame, st.just(int(FrameType.AUDIO)), st.just(LOUD)),
            st.builds(Frame, st.just(int(FrameType.DTMF)), st.sampled_from([b"1", b"#", b"x"])),
            st.builds(Frame, st.just(int(FrameType.UUID)), st.binary(min_size=16, max_size=16)),
            st.builds(Frame, st.just(int(FrameType.HANGUP))),
            st.builds(Frame, st.just(int(FrameType.SILENCE)), st.binary(max_size=8)),
        ),
        max_size=10,
    )


# --- pure codec --------------------------------------------------------------------------


@PURE
@given(frames=valid_frames(), cuts=st.lists(st.integers(0, 4000), max_size=8))
def test_decoder_gives_the_same_frames_however_the_bytes_are_split(
    frames: list[Frame], cuts: list[int]
) -> None:
    wire = b"".join(encode_frame(f.kind, f.payload) for f in frames)
    decoder = FrameDecoder()
    got: list[Frame] = []
    start = 0
    for cut in sorted({min(c, len(wire)) for c in cuts}) + [len(wire)]:
        got += decoder.feed(wire[start:cut])
        start = cut
    assert got == frames
    assert decoder.pending == 0


@PURE
@given(chunks=st.lists(st.one_of(raw_frame(), st.binary(max_size=40)), max_size=12))
def test_decoder_raises_only_frame_error_and_holds_at_most_one_frame(
    chunks: list[bytes],
) -> None:
    decoder = FrameDecoder()
    for chunk in chunks:
        try:
            frames = decoder.feed(chunk)
        except FrameError:
            return
        for frame in frames:
            assert len(frame.payload) <= MAX_PAYLOAD
        # A bounded buffer: never more than one (permitted) frame of the peer's bytes.
        assert decoder.pending < HEADER_BYTES + MAX_PAYLOAD + len(chunk)
        assert decoder.pending < HEADER_BYTES + MAX_PAYLOAD or decoder.pending <= len(chunk)


@PURE
@given(chunks=st.lists(st.one_of(raw_frame(), st.binary(max_size=40)), max_size=12))
async def test_read_frame_ends_with_eof_or_frame_error(chunks: list[bytes]) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"".join(chunks))
    reader.feed_eof()
    for _ in range(len(chunks) * 2 + 2):
        try:
            frame = await read_frame(reader)
        except FrameError:
            return
        if frame is None:
            return
        assert len(frame.payload) <= MAX_PAYLOAD
    raise AssertionError("read_frame neither ended nor failed")


# --- sessions over a real socket ---------------------------------------------------------


def _detector() -> EndOfSpeechDetector:
    return EndOfSpeechDetector(VadConfig(no_speech_timeout_ms=3000, max_utterance_ms=2000))


async def _capture(session: AudioSocketSession) -> Capture:
    try:
        async with asyncio.timeout(HOSTILE_BOUND):
            return await capture_utterance(session, b"", _detector(), None, None)
    finally:
        await session.close()


async def _good_session(server: AudioSocketServer) -> float:
    """Asterisk's part for a well-formed call: UUID, 10 frames of speech, hang-up."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    call_uuid, connected = server.expect()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        frames = [encode_frame(FrameType.AUDIO, LOUD) for _ in range(10)]
        writer.write(encode_uuid(uuid.UUID(call_uuid)) + b"".join(frames) + encode_frame(0))
        await writer.drain()
        session = await asyncio.wait_for(connected, GOOD_BOUND)
        capture = await _capture(session)
        assert capture.ended_by == EndedBy.HANGUP
        assert len(capture.pcm) == 10 * len(LOUD)
        async with asyncio.timeout(GOOD_BOUND):
            await reader.read()  # our hang-up frame, then the close
    finally:
        writer.close()
    return loop.time() - started


async def _hostile_session(
    server: AudioSocketServer, opening: str, frames: list[bytes], ending: str
) -> Capture | None:
    call_uuid, connected = server.expect()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    first = {
        "uuid": encode_uuid(uuid.UUID(call_uuid)),
        "stranger": encode_uuid(uuid.uuid4()),
        "none": b"",
        "short_uuid": encode_frame(FrameType.UUID, uuid.UUID(call_uuid).bytes[:8]),
    }[opening]
    capture: Capture | None = None
    session: AudioSocketSession | None = None
    try:
        writer.write(first)
        await writer.drain()
        if opening == "uuid":
            session = await asyncio.wait_for(connected, HOSTILE_BOUND)
        writer.write(b"".join(frames))
        await writer.drain()
        if ending == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.write_eof()
        if session is not None:
            capture = await _capture(session)
        if ending != "reset":
            # The server lets go: of a stranger at once, of a session when it is closed.
            async with asyncio.timeout(HOSTILE_BOUND):
                while await reader.read(65536):
                    pass
    except (ConnectionError, OSError):
        pass
    finally:
        server.forget(call_uuid)
        writer.close()
    return capture


@SOCKETS
@given(
    opening=st.sampled_from(["uuid", "stranger", "none", "short_uuid"]),
    frames=st.lists(raw_frame(), max_size=6),
    ending=st.sampled_from(["close", "reset"]),
)
@example(opening="uuid", frames=[b"\x10\x01\x40" + LOUD[:100]], ending="reset")
@example(opening="uuid", frames=[encode_frame(0), encode_frame(0x10, LOUD)], ending="close")
async def test_hostile_connection_never_blocks_another_session(
    opening: str, frames: list[bytes], ending: str
) -> None:
    server = AudioSocketServer(uuid_timeout=0.5)
    await server.start("127.0.0.1", 0)
    try:
        capture, good_seconds = await asyncio.gather(
            _hostile_session(server, opening, frames, ending), _good_session(server)
        )
        assert good_seconds < GOOD_BOUND
        if opening == "uuid":
            assert isinstance(capture, Capture)
            assert capture.ended_by in set(EndedBy)
        assert server.running
    finally:
        await server.stop()


# --- a connection reset (ECONNRESET) -----------------------------------------------------


class _ClosedWriter:
    def get_extra_info(self, name: str) -> Any:
        return None

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return True

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


def _reset_reader(data: bytes = b"") -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.set_exception(ConnectionResetError(104, "Connection reset by peer"))
    return reader


async def test_reset_mid_utterance_ends_the_capture_as_dropped() -> None:
    """A reset is a dropped connection, like EOF inside a frame: not an exception that
    costs the caller the voice menu."""
    reader = _reset_reader(encode_frame(FrameType.AUDIO, LOUD) + b"\x10\x01")
    session = AudioSocketSession(str(uuid.uuid4()), reader, _ClosedWriter())  # type: ignore[arg-type]
    capture = await capture_utterance(session, b"", _detector(), None, None)
    assert capture.ended_by == EndedBy.DROPPED
    assert capture.stream_error is not None and "ConnectionResetError" in capture.stream_error


async def test_oversized_frame_is_refused_unread_with_a_reason() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(encode_frame(FrameType.AUDIO, LOUD) + b"\x10\xff\xfe" + bytes(1000))
    session = AudioSocketSession(str(uuid.uuid4()), reader, _ClosedWriter())  # type: ignore[arg-type]
    capture = await capture_utterance(session, b"", _detector(), None, None)
    assert capture.ended_by == EndedBy.DROPPED
    assert capture.stream_error == f"FrameError: frame of 65534 bytes exceeds {MAX_PAYLOAD}"
    assert len(reader._buffer) == 1000  # the payload was never read


async def test_reset_before_the_uuid_frame_is_turned_away_quietly() -> None:
    server = AudioSocketServer(uuid_timeout=0.5)
    # The handler runs as the server's task: an escaping error would be "never retrieved".
    await server._on_connection(_reset_reader(b"\x01\x00"), _ClosedWriter())  # type: ignore[arg-type]
