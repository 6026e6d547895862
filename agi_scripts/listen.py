"""Hear the caller: the one step a menu calls to get an utterance (audio + recognition).

Two ways to get the caller's speech out of Asterisk:
- stream (default): `EXEC AudioSocket <uuid>,host:port` from the AGI. Asterisk connects to our
  AudioSocketServer and sends 20 ms slin frames; we play the prompt back over the same socket
  (so it stops the moment the caller speaks: barge-in), run the energy end-of-speech detector,
  and feed the recogniser while the caller talks, so the final result is ready right after the
  silence window. Then we send AudioSocket's hang-up frame: EXEC returns 0 and the AGI goes on.
- record (settings.speech_mode == "record", or the stream could not be set up): STREAM FILE
  the prompt, then `RECORD FILE` with Asterisk's silence detection into recordings/utterances/
  (bind-mounted into the sandbox), then recognise the file. Slower (whole-second silence
  window, no barge-in) but needs nothing beyond AGI.

Either way the utterance is saved as an 8 kHz mono wav under recordings/utterances/.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agi_scripts.agi import AgiChannel, AgiEnvironment, AgiError, CallerHangup, quote_argument
from agi_scripts.audiosocket import (
    OTHER_AUDIO_TYPES,
    SLIN_FRAME_BYTES,
    AudioSocketServer,
    AudioSocketSession,
    FrameError,
    FrameType,
    dtmf_digit,
)
from agi_scripts.vad import (
    BYTES_PER_MS,
    FINAL_EVENTS,
    EndOfSpeechDetector,
    SpeechSegmenter,
    VadConfig,
    VadEvent,
)
from call_router.asterisk_paths import asterisk_paths, asterisk_view

if TYPE_CHECKING:
    from agi_scripts.flows.runtime import SpeechResult
    from agi_scripts.speech import Recogniser, RecognitionResult

SAMPLE_RATE = 8000
DTMF_KEYS = "0123456789*#"
# Asterisk connects to the AudioSocket server within milliseconds of EXEC.
CONNECT_TIMEOUT = 3.0
# Frames are handed to the recogniser in batches: one executor hop per 100 ms, not per 20 ms.
FEED_BATCH_BYTES = 5 * SLIN_FRAME_BYTES
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class EndedBy(StrEnum):
    SPEECH_ENDED = "speech_ended"
    NO_SPEECH = "no_speech_timeout"
    MAX_LENGTH = "max_length"
    DTMF = "dtmf"
    HANGUP = "hangup"
    # The audio connection died (EOF or garbage) while the channel was still up.
    DROPPED = "dropped"
    # Asterisk sent an error frame, or audio in a codec we did not ask for.
    ERROR = "error"


class ListenContext(Protocol):
    """What listen() uses of the call (agi_scripts.call_context.CallContext has it all)."""

    settings: Any  # call_router.settings.Settings
    log: Any  # structlog BoundLogger bound to the call
    linkedid: str | None
    env: AgiEnvironment


class RecognitionStreamLike(Protocol):
    async def feed(self, pcm: bytes) -> str | None: ...
    async def finish(self) -> RecognitionResult: ...


class RecogniserLike(Protocol):
    """What listen() needs of agi_scripts.speech.Recogniser."""

    def available(self, language: str) -> bool: ...
    async def recognise_pcm(
        self,
        pcm: bytes,
        *,
        language: str,
        sample_rate: int = 8000,
        grammar: Any = None,
        intents: Sequence[str] | None = None,
    ) -> RecognitionResult: ...
    def stream(
        self,
        *,
        language: str,
        sample_rate: int = 8000,
        grammar: Any = None,
        intents: Sequence[str] | None = None,
    ) -> RecognitionStreamLike: ...


@dataclass(frozen=True)
class Utterance:
    pcm: bytes
    path: Path | None
    dtmf: str | None
    ended_by: str
    speech_ms: int
    result: RecognitionResult | None
    end_of_speech_to_result_ms: float | None
    mode: str = "stream"
    # Prompt frames actually played (barge-in stops them early) and whether the caller
    # interrupted the prompt.
    prompt_frames_sent: int = 0
    barged_in: bool = False
    # The call it was heard on (set by SpeechMenu), so on_utterance can store it on that call.
    linkedid: str | None = None

    @property
    def audio_ms(self) -> int:
        return len(self.pcm) // BYTES_PER_MS


class StreamUnavailable(Exception):  # noqa: N818 - a condition, handled by falling back
    """AudioSocket could not be set up for this call: use RECORD FILE instead."""


async def listen(
    agi: AgiChannel,
    ctx: ListenContext,
    *,
    prompt: Path | None,
    language: str,
    grammar: Sequence[str] | None = None,
    no_speech_timeout: float = 5.0,
    on_audio: Callable[[bytes], None] | None = None,
    recogniser: RecogniserLike | None = None,
    audiosocket: AudioSocketServer | None = None,
    mode: str | None = None,
    intents: Sequence[str] | None = None,
) -> Utterance:
    """Play `prompt` (8 kHz wav on the host, under recordings/) and hear the caller's answer.

    Returns the utterance; `result` is None when nothing was said, a key was pressed, or no
    recogniser is available for `language` (the menu then falls back to the keypad).
    Raises CallerHangup only when the caller was already gone before we could listen.
    """
    settings = ctx.settings
    server = audiosocket if audiosocket is not None else getattr(ctx, "audiosocket", None)
    if recogniser is None:
        recogniser = getattr(ctx, "recogniser", None)
    if recogniser is not None and not recogniser.available(language):
        recogniser = None
    chosen = mode or settings.speech_mode
    log = ctx.log.bind(step="listen", language=language)
    if chosen == "stream":
        if server is None or not server.running:
            log.warning("listen_stream_unavailable", reason="no AudioSocket server")
        else:
            try:
                return await _listen_streaming(
                    agi, ctx, server, prompt=prompt, language=language, grammar=grammar,
                    no_speech_timeout=no_speech_timeout, on_audio=on_audio,
                    recogniser=recogniser, intents=intents,
                )  # fmt: skip
            except StreamUnavailable as exc:
                log.warning("listen_stream_failed", error=str(exc))
    return await _listen_recording(
        agi, ctx, prompt=prompt, language=language, grammar=grammar,
        no_speech_timeout=no_speech_timeout, recogniser=recogniser, intents=intents,
    )  # fmt: skip


# --- streaming ----------------------------------------------------------------------------


def vad_config(settings: Any, prompt_ms: int, no_speech_timeout: float) -> VadConfig:
    # The no-speech clock counts audio time from the start of the prompt: the caller gets the
    # whole prompt plus `no_speech_timeout` (barge-in may start speech earlier, of course).
    # The other rules are the ones recordings are cut by (speech.utterance_vad).
    from agi_scripts.speech import utterance_vad

    return utterance_vad(settings, no_speech_timeout_ms=prompt_ms + int(no_speech_timeout * 1000))


async def _listen_streaming(
    agi: AgiChannel,
    ctx: ListenContext,
    server: AudioSocketServer,
    *,
    prompt: Path | None,
    language: str,
    grammar: Sequence[str] | None,
    no_speech_timeout: float,
    on_audio: Callable[[bytes], None] | None,
    recogniser: RecogniserLike | None,
    intents: Sequence[str] | None = None,
) -> Utterance:
    settings = ctx.settings
    prompt_pcm = load_prompt_pcm(prompt) if prompt is not None else b""
    config = vad_config(settings, len(prompt_pcm) // BYTES_PER_MS, no_speech_timeout)
    # EXEC blocks the AGI until AudioSocket returns: bound it by everything we may wait for.
    exec_timeout = (config.no_speech_timeout_ms + config.max_utterance_ms) / 1000 + 30
    stream = _open_stream(ctx, recogniser, language, grammar, intents)
    call_uuid, connected = server.expect()
    # channel_command: AudioSocket returns -1 both when the caller hung up and when the socket
    # failed; it tells the two apart (CallerHangup vs AgiError on a live channel).
    exec_task = asyncio.create_task(
        agi.channel_command(f"EXEC AudioSocket {call_uuid},{server.address}", timeout=exec_timeout)
    )
    waiters: set[asyncio.Future[Any]] = {connected, exec_task}
    try:
        await asyncio.wait(waiters, timeout=CONNECT_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        server.forget(call_uuid)
        exec_task.cancel()
        raise
    if not connected.done():
        server.forget(call_uuid)
        await _settle_failed_exec(agi, exec_task)
    session = connected.result()
    ctx.log.debug("audiosocket_connected", uuid=call_uuid)
    try:
        capture = await capture_utterance(
            session, prompt_pcm, EndOfSpeechDetector(config), on_audio, stream
        )
    finally:
        # Our hang-up frame makes AudioSocket return 0; EXEC's reply must be read before the
        # next AGI command, whatever happened here.
        await session.close()
        exec_outcome = await _exec_outcome(ctx, exec_task)
    ended_by = EndedBy.HANGUP if exec_outcome == "hangup" else capture.ended_by
    if capture.recognition_error is not None:
        ctx.log.warning("listen_recognition_failed", error=capture.recognition_error)
    if capture.stream_error is not None:
        ctx.log.warning("audiosocket_stream_broken", error=capture.stream_error)
    path = await save_utterance(settings, ctx, capture.pcm)
    return Utterance(
        pcm=capture.pcm,
        path=path,
        dtmf=capture.dtmf,
        ended_by=ended_by,
        speech_ms=capture.speech_ms,
        result=capture.result,
        end_of_speech_to_result_ms=capture.latency_ms,
        mode="stream",
        prompt_frames_sent=capture.prompt_frames_sent,
        barged_in=capture.barged_in,
    )


def _open_stream(
    ctx: ListenContext,
    recogniser: RecogniserLike | None,
    language: str,
    grammar: Sequence[str] | None,
    intents: Sequence[str] | None = None,
) -> RecognitionStreamLike | None:
    if recogniser is None:
        return None
    try:
        return recogniser.stream(
            language=language, sample_rate=SAMPLE_RATE, grammar=grammar, intents=intents
        )
    except Exception as exc:  # a broken model must cost the speech, not the call
        ctx.log.warning("listen_recogniser_failed", error=str(exc))
        return None


async def _exec_outcome(ctx: ListenContext, exec_task: asyncio.Task[Any]) -> str:
    try:
        reply = await exec_task
    except CallerHangup:
        return "hangup"
    except AgiError as exc:
        # -1 on a live channel: the socket died under AudioSocket (DROPPED/ERROR already).
        ctx.log.warning("audiosocket_exec_failed", error=str(exc))
        return "failed"
    ctx.log.debug("audiosocket_exec_returned", result=reply.result)
    return "ok"


async def _settle_failed_exec(agi: AgiChannel, exec_task: asyncio.Task[Any]) -> None:
    """AudioSocket did not connect in time: find out why, leave the AGI usable, fall back."""
    if exec_task.done():
        try:
            reply = exec_task.result()  # CallerHangup propagates: nothing to fall back to
        except AgiError as exc:
            if agi.desynchronised:
                raise
            raise StreamUnavailable(f"AudioSocket failed before connecting: {exc}") from exc
        raise StreamUnavailable(f"AudioSocket returned {reply.result} before connecting")
    # Still running without a connection: Asterisk's own connect attempt is slow. Its reply
    # will come; without it the AGI stream is out of step, so wait for it (bounded).
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT * 3):
            reply = await asyncio.shield(exec_task)
    except TimeoutError as exc:
        exec_task.cancel()
        raise AgiError("AudioSocket neither connected nor returned") from exc
    except AgiError as exc:
        if agi.desynchronised:
            raise
        raise StreamUnavailable(f"AudioSocket failed without connecting: {exc}") from exc
    raise StreamUnavailable(f"AudioSocket returned {reply.result} without connecting")


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


# --- RECORD FILE fallback -------------------------------------------------------------------


async def _listen_recording(
    agi: AgiChannel,
    ctx: ListenContext,
    *,
    prompt: Path | None,
    language: str,
    grammar: Sequence[str] | None,
    no_speech_timeout: float,
    recogniser: RecogniserLike | None,
    intents: Sequence[str] | None = None,
) -> Utterance:
    settings = ctx.settings
    paths = asterisk_paths(settings)

    def view(host: Path) -> str:
        return asterisk_view(settings, paths, host)

    if prompt is not None:
        key = await agi.stream_file(view(prompt.with_suffix("")), escape_digits=DTMF_KEYS)
        if key:
            return Utterance(b"", None, key, EndedBy.DTMF, 0, None, None, mode="record")
    target = next_utterance_path(settings, ctx)
    # (no_speech_timeout has no RECORD FILE equivalent: its silence window is the only clock.)
    # RECORD FILE's silence window counts from the start (not from the end of speech) and in
    # whole seconds: 1 s would cut a caller who draws breath before answering.
    silence_s = max(2, math.ceil(settings.speech_silence_ms / 1000))
    max_ms = int(settings.speech_max_seconds * 1000)
    reply = await agi.command(
        f"RECORD FILE {quote_argument(view(target.with_suffix('')))} wav "
        f"{quote_argument(DTMF_KEYS)} {max_ms} 0 s={silence_s}",
        timeout=max_ms / 1000 + 15,
    )
    returned_at = time.monotonic()
    if reply.value == -1:
        ended_by = EndedBy.HANGUP
    elif reply.data == "dtmf":
        ended_by = EndedBy.DTMF
    else:
        ended_by = EndedBy.SPEECH_ENDED
    dtmf = chr(reply.value) if ended_by == EndedBy.DTMF and reply.value else None
    pcm = await asyncio.to_thread(read_wav_pcm, target) if target.exists() else b""
    detector = EndOfSpeechDetector(VadConfig(no_speech_timeout_ms=10**9, max_utterance_ms=10**9))
    for offset in range(0, len(pcm), SLIN_FRAME_BYTES):
        detector.push(pcm[offset : offset + SLIN_FRAME_BYTES])
    speech_ms = detector.speech_ms
    if ended_by == EndedBy.SPEECH_ENDED and speech_ms == 0:
        ended_by = EndedBy.NO_SPEECH
    result = None
    latency = None
    if recogniser is not None and speech_ms > 0 and ended_by != EndedBy.DTMF:
        from agi_scripts.speech import utterance_audio

        try:
            # Cut as a live stream is: the same audio gives the same answer either way.
            segment = utterance_audio(settings, pcm) or pcm
            result = await recogniser.recognise_pcm(
                segment, language=language, sample_rate=SAMPLE_RATE, grammar=grammar,
                intents=intents,
            )  # fmt: skip
            latency = (time.monotonic() - returned_at) * 1000
        except Exception as exc:  # a broken model must cost the speech, not the call
            ctx.log.warning("listen_recognition_failed", error=str(exc))
    return Utterance(
        pcm=pcm, path=target if target.exists() else None, dtmf=dtmf, ended_by=ended_by,
        speech_ms=speech_ms, result=result, end_of_speech_to_result_ms=latency, mode="record",
    )  # fmt: skip


# --- files --------------------------------------------------------------------------------


def utterances_dir(settings: Any) -> Path:
    return Path(settings.recordings_dir) / "utterances"


def next_utterance_path(settings: Any, ctx: ListenContext) -> Path:
    """recordings/utterances/<linkedid>-<n>.wav, n counting this call's utterances from 1."""
    folder = utterances_dir(settings)
    # Residents' voices: the hotline's own, whatever the umask of the process that runs us.
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    call = _SAFE_NAME.sub("_", ctx.linkedid or ctx.env.uniqueid or "call")[:64]
    n = 1 + sum(1 for _ in folder.glob(f"{call}-*.wav"))
    while (folder / f"{call}-{n}.wav").exists():
        n += 1
    return folder / f"{call}-{n}.wav"


async def save_utterance(settings: Any, ctx: ListenContext, pcm: bytes) -> Path | None:
    if not pcm:
        return None
    path = next_utterance_path(settings, ctx)
    await asyncio.to_thread(write_wav, path, pcm)
    return path


def write_wav(path: Path, pcm: bytes) -> None:
    tmp = path.with_suffix(".part")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm)
    tmp.replace(path)


def read_wav_pcm(path: Path) -> bytes:
    """Any wav/audio file as 8 kHz mono 16-bit slin (pydub converts what Asterisk wrote)."""
    from pydub import AudioSegment  # type: ignore[import-untyped]

    audio = AudioSegment.from_file(path)
    audio = audio.set_frame_rate(SAMPLE_RATE).set_channels(1).set_sample_width(2)
    return bytes(audio.raw_data)


def load_prompt_pcm(path: Path) -> bytes:
    stat = path.stat()
    return _cached_prompt(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _cached_prompt(path: str, mtime_ns: int, size: int) -> bytes:
    # Keyed by mtime and size: a re-recorded prompt is picked up without a restart.
    return read_wav_pcm(Path(path))


# --- the flow engine's speech input ---------------------------------------------------------


@dataclass
class _CallScope:
    settings: Any
    log: Any
    linkedid: str | None
    env: AgiEnvironment


class SpeechMenu:
    """agi_scripts.flows.engine.SpeechInput backed by listen() and speech.understand().

    Built once per process (settings, recogniser, AudioSocket server); each call is one
    `ask` node. Returns None (the engine switches to the keypad) when the language has no
    model, a key was pressed, or the audio path broke; SpeechResult(intent=None) when the
    caller said nothing or nothing we understood (the engine asks again).
    """

    def __init__(
        self,
        settings: Any,
        recogniser: Recogniser,
        audiosocket: AudioSocketServer | None,
        *,
        log: Any = None,
        on_utterance: Callable[[Utterance, Any], Any] | None = None,
    ) -> None:
        import structlog

        self.settings = settings
        self.recogniser = recogniser
        self.audiosocket = audiosocket
        self.log = log or structlog.get_logger("hotline.listen")
        # Called with (utterance, Understanding | None), e.g. to store them on the call.
        self.on_utterance = on_utterance

    def host_prompt(self, prompt: str) -> Path | None:
        """The host wav behind an Asterisk-side prompt path (recordings/.../name, no suffix)."""
        inside = asterisk_paths(self.settings).recordings.rstrip("/") + "/"
        if not prompt.startswith(inside):
            return None
        path = Path(self.settings.recordings_dir) / (prompt[len(inside) :] + ".wav")
        return path if path.is_file() else None

    async def __call__(
        self,
        agi: AgiChannel,
        *,
        prompt: str,
        language: str,
        intents: Sequence[str],
        timeout: float,
    ) -> SpeechResult | None:
        from agi_scripts.flows.runtime import SpeechResult
        from agi_scripts.speech import understand

        if not self.recogniser.available(language):
            return None
        prompt_path = self.host_prompt(prompt)
        if prompt_path is None:
            self.log.warning("listen_prompt_not_on_host", prompt=prompt)
            return None
        linkedid = await agi.get_variable("CHANNEL(linkedid)")
        scope = _CallScope(self.settings, self.log.bind(linkedid=linkedid), linkedid, agi.env)
        utterance = await listen(
            agi, scope, prompt=prompt_path, language=language,
            intents=intents,
            no_speech_timeout=float(self.settings.menu_timeout),
            recogniser=self.recogniser, audiosocket=self.audiosocket,
        )  # fmt: skip
        understood = None
        if utterance.result is not None:
            understood = await understand(
                self.recogniser, utterance.result, language=language, intents=intents
            )
        if self.on_utterance is not None:
            utterance = replace(utterance, linkedid=linkedid or None)
            await _maybe_await(self.on_utterance(utterance, understood))
        if utterance.ended_by == EndedBy.HANGUP:
            raise CallerHangup("caller hung up while speaking")
        if utterance.ended_by == EndedBy.DTMF and utterance.dtmf:
            # A key instead of words: the menu takes it as if pressed at the keypad prompt.
            return SpeechResult(intent=None, key=utterance.dtmf)
        if utterance.ended_by in (EndedBy.DTMF, EndedBy.ERROR, EndedBy.DROPPED):
            return None
        if understood is None:
            return SpeechResult(intent=None)
        doubtful = understood.match.reason == "confirm"
        return SpeechResult(
            intent=understood.intent,
            text=understood.transcript,
            confidence=understood.confidence,
            candidate=understood.match.candidate if doubtful else None,
            runner_up=understood.match.runner_up if doubtful else None,
        )


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value):
        await value
