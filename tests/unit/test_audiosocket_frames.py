"""AudioSocket framing and the session/server over a real local TCP socket (no Asterisk).

The peer here plays Asterisk's part byte for byte; the real Asterisk is in
tests/integration/test_audiosocket_call.py.
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from typing import Any

import pytest

from agi_scripts.audiosocket import (
    HANGUP_FRAME,
    MAX_PAYLOAD,
    AudioSocketServer,
    Frame,
    FrameDecoder,
    FrameError,
    FrameType,
    dtmf_digit,
    encode_audio,
    encode_frame,
    encode_uuid,
    read_frame,
)
from agi_scripts.listen_capture import capture_utterance
from agi_scripts.listen_types import EndedBy
from agi_scripts.vad import EndOfSpeechDetector, VadConfig


def test_encode_matches_the_wire_format() -> None:
    assert encode_frame(FrameType.HANGUP) == b"\x00\x00\x00"
    assert encode_frame(FrameType.DTMF, b"5") == b"\x03\x00\x015"
    assert encode_audio(b"\x01\x02" * 160)[:3] == b"\x10\x01\x40"
    call = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert encode_uuid(call) == b"\x01\x00\x10" + call.bytes
    with pytest.raises(ValueError):
        encode_frame(0x100)
    with pytest.raises(ValueError):
        encode_frame(FrameType.AUDIO, bytes(70_000))


def test_decoder_reassembles_frames_split_anywhere() -> None:
    wire = encode_uuid(uuid.uuid4()) + encode_audio(bytes(320)) + encode_frame(FrameType.DTMF, b"#")
    for cut in range(len(wire)):
        decoder = FrameDecoder()
        frames = decoder.feed(wire[:cut]) + decoder.feed(wire[cut:])
        assert [f.kind for f in frames] == [FrameType.UUID, FrameType.AUDIO, FrameType.DTMF]
        assert decoder.pending == 0
    decoder = FrameDecoder()
    assert decoder.feed(wire[:5]) == []
    assert decoder.pending == 5


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x10\xff\xff", "exceeds"),  # 64 KiB audio: refused before it is read
        (b"\x01\x00\x05abcde", "UUID frame"),
        (b"\x03\x00\x02ab", "DTMF frame"),
        (b"\x10\x00\x03abc", "odd"),
        (b"\x42\x00\x00", "unknown frame type 0x42"),
    ],
)
def test_decoder_refuses_malformed_frames(wire: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        FrameDecoder().feed(wire)


def test_other_slin_rates_and_errors_decode_as_frames() -> None:
    frames = FrameDecoder().feed(
        encode_frame(0x12, bytes(640)) + encode_frame(FrameType.ERROR, b"\x02")
    )
    assert [f.kind for f in frames] == [0x12, 0xFF]
    assert frames[0].type is None and frames[1].type == FrameType.ERROR


def test_dtmf_digit() -> None:
    assert dtmf_digit(b"7") == "7"
    assert dtmf_digit(b"#") == "#"
    assert dtmf_digit(b"x") is None
    assert dtmf_digit(b"") is None


async def _reader_with(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def test_read_frame_eof_between_and_inside_frames() -> None:
    reader = await _reader_with(encode_audio(bytes(4)))
    assert await read_frame(reader) == Frame(FrameType.AUDIO, bytes(4))
    assert await read_frame(reader) is None
    with pytest.raises(FrameError, match="header"):
        await read_frame(await _reader_with(b"\x10\x01"))
    with pytest.raises(FrameError, match="closed after 2/320"):
        await read_frame(await _reader_with(b"\x10\x01\x40ab"))
    with pytest.raises(FrameError, match="exceeds"):
        await read_frame(await _reader_with(b"\x10" + (MAX_PAYLOAD + 2).to_bytes(2, "big")))


async def _serve() -> AudioSocketServer:
    server = AudioSocketServer(uuid_timeout=0.5)
    await server.start("127.0.0.1", 0)
    return server


async def test_session_is_handed_to_whoever_expects_its_uuid() -> None:
    server = await _serve()
    try:
        call_uuid, connected = server.expect()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(encode_uuid(uuid.UUID(call_uuid)) + encode_audio(bytes(320)))
        writer.write(encode_frame(FrameType.DTMF, b"3"))
        session = await asyncio.wait_for(connected, 2)
        assert session.uuid == call_uuid
        frames = []
        async for frame in session.frames(read_timeout=1):
            frames.append(frame)
            if frame.kind == FrameType.DTMF:
                break
        assert [f.kind for f in frames] == [FrameType.AUDIO, FrameType.DTMF]
        await session.close()
        # We told Asterisk to hang up the AudioSocket (app returns 0), then closed.
        assert await reader.read() == HANGUP_FRAME
        writer.close()
    finally:
        await server.stop()


async def test_strangers_and_silent_peers_are_turned_away() -> None:
    server = await _serve()
    try:
        # A UUID nobody expects: told to hang up, closed.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(encode_uuid(uuid.uuid4()))
        assert await asyncio.wait_for(reader.read(), 2) == HANGUP_FRAME
        writer.close()
        # Audio before the UUID: closed without a word.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(encode_audio(bytes(320)))
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
        # Says nothing: closed after uuid_timeout.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
        # The expected session is still served after all that.
        call_uuid, connected = server.expect()
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(encode_uuid(uuid.UUID(call_uuid)))
        session = await asyncio.wait_for(connected, 2)
        await session.close()
        writer.close()
    finally:
        await server.stop()


async def test_play_is_paced_and_stops_at_once_on_barge_in() -> None:
    server = await _serve()
    try:
        call_uuid, connected = server.expect()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(encode_uuid(uuid.UUID(call_uuid)))
        session = await asyncio.wait_for(connected, 2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await session.play(bytes(320 * 10)) == 10
        # Paced at real time (200 ms of audio), not dumped at once; generous on a loaded machine.
        assert 0.18 <= loop.time() - started < 1.0
        decoder = FrameDecoder()
        received: list[Frame] = []
        while len(received) < 10:
            received += decoder.feed(await reader.read(4096))
        assert all(f.kind == FrameType.AUDIO and len(f.payload) == 320 for f in received)

        stop = asyncio.Event()
        loop.call_later(0.1, stop.set)
        started = loop.time()
        sent = await session.play(bytes(320 * 500), stop)  # a 10 s prompt
        # Stopped within a frame or so of the barge-in, nowhere near the prompt's 10 s.
        assert loop.time() - started < 1.0
        assert 1 <= sent <= 50
        # A short tail frame is padded to a whole 20 ms frame.
        assert await session.play(b"\x01\x00" * 10) == 1
        await session.close()
        writer.close()
    finally:
        await server.stop()


# --- listen()'s capture loop against a peer playing Asterisk's part -----------------------

LOUD = struct.pack("<160h", *([6000, -6000] * 80))
QUIET = bytes(320)


async def _capture_with(wire: bytes, *, prompt: bytes = b"", close: bool = True) -> Any:
    server = await _serve()
    try:
        call_uuid, connected = server.expect()
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(encode_uuid(uuid.UUID(call_uuid)) + wire)
        await writer.drain()
        if close:
            writer.close()
        session = await asyncio.wait_for(connected, 2)
        detector = EndOfSpeechDetector(VadConfig(no_speech_timeout_ms=3000, max_utterance_ms=2000))
        capture = await asyncio.wait_for(
            capture_utterance(session, prompt, detector, None, None), 5
        )
        await session.close()
        if not close:
            writer.close()
        return capture
    finally:
        await server.stop()


def _audio(*frames: bytes) -> bytes:
    return b"".join(encode_audio(f) for f in frames)


async def test_capture_ends_after_speech_and_quiet() -> None:
    capture = await _capture_with(_audio(*[QUIET] * 10, *[LOUD] * 20, *[QUIET] * 30))
    assert capture.ended_by == EndedBy.SPEECH_ENDED
    assert capture.speech_ms == 400
    assert len(capture.pcm) == 320 * 55  # stopped on the 25th quiet frame


async def test_capture_connection_dropped_mid_utterance() -> None:
    capture = await _capture_with(
        _audio(*[QUIET] * 10, *[LOUD] * 10) + b"\x10\x01\x40" + LOUD[:100]
    )
    assert capture.ended_by == EndedBy.DROPPED
    assert capture.speech_ms == 200
    assert len(capture.pcm) == 320 * 20  # the half frame is not kept


@pytest.mark.parametrize(
    ("tail", "ended_by"),
    [
        (encode_frame(FrameType.ERROR, b"\x04"), EndedBy.ERROR),
        (encode_frame(0x12, bytes(640)), EndedBy.ERROR),  # slin16: not the codec we asked for
        (encode_frame(FrameType.HANGUP), EndedBy.HANGUP),
        (b"\x10\xff\xf0", EndedBy.DROPPED),  # a 64 KiB frame is refused unread
        (b"\x7f\x00\x00", EndedBy.DROPPED),  # garbage type
    ],
)
async def test_capture_ends_on_hostile_or_final_frames(tail: bytes, ended_by: EndedBy) -> None:
    capture = await _capture_with(_audio(*[QUIET] * 5) + tail + _audio(*[LOUD] * 20))
    assert capture.ended_by == ended_by
    assert len(capture.pcm) == 320 * 5


async def test_capture_dtmf_ends_listening_with_the_key_and_stops_the_prompt() -> None:
    capture = await _capture_with(
        _audio(*[QUIET] * 5) + encode_frame(FrameType.DTMF, b"9"),
        prompt=bytes(320 * 200),
        close=False,
    )
    assert (capture.ended_by, capture.dtmf) == (EndedBy.DTMF, "9")
    assert capture.prompt_frames_sent < 10


async def test_capture_endless_noise_is_capped() -> None:
    capture = await _capture_with(_audio(*[QUIET] * 10, *[LOUD] * 200))
    assert capture.ended_by == EndedBy.MAX_LENGTH
    assert capture.speech_ms == 2000
