"""Listening over AudioSocket: the EXEC from the AGI, Asterisk's connection, and its outcome.

`EXEC AudioSocket <uuid>,host:port` blocks the AGI while Asterisk streams the caller's audio to
our AudioSocketServer; listen_capture.py hears it. Our hang-up frame makes EXEC return 0 and the
AGI goes on. When AudioSocket cannot be set up, StreamUnavailable sends listen() to RECORD FILE.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agi_scripts.agi import AgiChannel
from agi_scripts.agi_protocol import AgiError, CallerHangup
from agi_scripts.audiosocket import AudioSocketServer
from agi_scripts.listen_capture import capture_utterance
from agi_scripts.listen_types import (
    SAMPLE_RATE,
    EndedBy,
    ListenContext,
    RecogniserLike,
    RecognitionStreamLike,
    StreamUnavailable,
    Utterance,
)
from agi_scripts.utterance_files import load_prompt_pcm, save_utterance
from agi_scripts.vad import BYTES_PER_MS, EndOfSpeechDetector, VadConfig

# Asterisk connects to the AudioSocket server within milliseconds of EXEC.
CONNECT_TIMEOUT = 3.0


def vad_config(settings: Any, prompt_ms: int, no_speech_timeout: float) -> VadConfig:
    # The no-speech clock counts audio time from the start of the prompt: the caller gets the
    # whole prompt plus `no_speech_timeout` (barge-in may start speech earlier, of course).
    # The other rules are the ones recordings are cut by (speech.utterance_vad).
    from agi_scripts.speech import utterance_vad

    return utterance_vad(settings, no_speech_timeout_ms=prompt_ms + int(no_speech_timeout * 1000))


async def listen_streaming(
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
