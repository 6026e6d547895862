"""One AudioSocket session heard: the prompt with barge-in, end of speech, the recogniser fed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agi_scripts.audiosocket import (
    OTHER_AUDIO_TYPES,
    SLIN_FRAME_BYTES,
    AudioSocketSession,
    FrameError,
    FrameType,
    dtmf_digit,
)
from agi_scripts.listen_types import EndedBy, RecognitionStreamLike
from agi_scripts.vad import (
    BYTES_PER_MS,
    FINAL_EVENTS,
    EndOfSpeechDetector,
    SpeechSegmenter,
    VadEvent,
)

if TYPE_CHECKING:
    from agi_scripts.speech import RecognitionResult

# Frames are handed to the recogniser in batches: one executor hop per 100 ms, not per 20 ms.
FEED_BATCH_BYTES = 5 * SLIN_FRAME_BYTES


@dataclass
class Capture:
    """What one AudioSocket session heard (listen() adds the file and the AGI's view)."""

    pcm: bytes
    ended_by: str
    dtmf: str | None
    speech_ms: int
    result: RecognitionResult | None
    latency_ms: float | None
    prompt_frames_sent: int
    barged_in: bool
    recognition_error: str | None = None
    stream_error: str | None = None


async def capture_utterance(
    session: AudioSocketSession,
    prompt_pcm: bytes,
    detector: EndOfSpeechDetector,
    on_audio: Callable[[bytes], None] | None,
    stream: RecognitionStreamLike | None,
) -> Capture:
    loop = asyncio.get_running_loop()
    stop_prompt = asyncio.Event()
    player = asyncio.create_task(session.play(prompt_pcm, stop_prompt)) if prompt_pcm else None
    max_bytes = detector.config.max_utterance_ms * BYTES_PER_MS + (
        detector.config.no_speech_timeout_ms * BYTES_PER_MS
    )
    feeder = _Feeder(stream) if stream is not None else None
    # The recogniser hears only the utterance (from just before the onset to the end the
    # detector found), cut exactly as a recording of the same audio is: speech.understand.
    segmenter = SpeechSegmenter(detector)
    pcm = bytearray()
    ended_by: str = EndedBy.DROPPED
    dtmf: str | None = None
    barged_in = False
    ended_at: float | None = None
    stream_error: str | None = None
    try:
        async for frame in session.frames():
            if frame.kind == FrameType.AUDIO:
                if len(pcm) + len(frame.payload) > max_bytes:
                    # The detector caps speech; this caps a caller who never goes quiet
                    # before speech starts (e.g. a constant tone just under the threshold).
                    ended_by = EndedBy.MAX_LENGTH
                    ended_at = loop.time()
                    break
                pcm += frame.payload
                if on_audio is not None:
                    on_audio(frame.payload)
                event, heard = segmenter.push(frame.payload)
                if feeder is not None and heard:
                    feeder.push(heard)
                if event == VadEvent.SPEECH_STARTED and not stop_prompt.is_set():
                    barged_in = player is not None and not player.done()
                    stop_prompt.set()
                if event in FINAL_EVENTS:
                    assert event is not None
                    ended_by = EndedBy(event.value)
                    ended_at = loop.time()
                    break
            elif frame.kind == FrameType.DTMF:
                dtmf = dtmf_digit(frame.payload)
                if dtmf is not None:
                    ended_by = EndedBy.DTMF
                    break
            elif frame.kind == FrameType.HANGUP:
                ended_by = EndedBy.HANGUP
                break
            elif frame.kind == FrameType.ERROR or frame.kind in OTHER_AUDIO_TYPES:
                ended_by = EndedBy.ERROR
                break
            # UUID again / SILENCE: nothing to do.
    except (FrameError, ConnectionError) as exc:
        # Broken framing (e.g. an oversized length, refused unread) or a reset connection.
        ended_by = EndedBy.DROPPED
        stream_error = f"{type(exc).__name__}: {exc}"
    finally:
        stop_prompt.set()
        sent = await player if player is not None else 0
    speech_ms = detector.speech_ms
    result = None
    latency = None
    if feeder is not None:
        heard_speech = speech_ms > 0 and ended_by not in (EndedBy.DTMF, EndedBy.NO_SPEECH)
        result = await feeder.finish(recognise=heard_speech)
        if result is not None and ended_at is not None:
            latency = (loop.time() - ended_at) * 1000
    error = str(feeder.error) if feeder is not None and feeder.error is not None else None
    return Capture(
        bytes(pcm), ended_by, dtmf, speech_ms, result, latency, sent, barged_in, error, stream_error
    )


class _Feeder:
    """Feeds the recogniser in its own task so a slow decode never delays the frame reader."""

    def __init__(self, stream: RecognitionStreamLike) -> None:
        self.stream = stream
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._pending = bytearray()
        self.error: Exception | None = None
        self.task = asyncio.create_task(self._run())

    def push(self, pcm: bytes) -> None:
        self._pending += pcm
        if len(self._pending) >= FEED_BATCH_BYTES:
            self.queue.put_nowait(bytes(self._pending))
            self._pending.clear()

    async def _run(self) -> None:
        while (chunk := await self.queue.get()) is not None:
            if self.error is None:
                try:
                    await self.stream.feed(chunk)
                except Exception as exc:  # keep draining: the call goes on without speech
                    self.error = exc

    async def finish(self, *, recognise: bool) -> RecognitionResult | None:
        if self._pending:
            self.queue.put_nowait(bytes(self._pending))
            self._pending.clear()
        self.queue.put_nowait(None)
        await self.task
        if self.error is not None or not recognise:
            return None
        try:
            return await self.stream.finish()
        except Exception as exc:
            self.error = exc
            return None
