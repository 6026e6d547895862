"""Listening without AudioSocket: the prompt, then RECORD FILE with Asterisk's silence detection.

Slower than the stream (a whole-second silence window, no barge-in) but needs nothing beyond
AGI: the recording lands under recordings/utterances/ (bind-mounted into the sandbox) and is
recognised as a file.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from pathlib import Path

from agi_scripts.agi import AgiChannel
from agi_scripts.agi_protocol import quote_argument
from agi_scripts.audiosocket import SLIN_FRAME_BYTES
from agi_scripts.listen_types import (
    DTMF_KEYS,
    SAMPLE_RATE,
    EndedBy,
    ListenContext,
    RecogniserLike,
    Utterance,
)
from agi_scripts.utterance_files import next_utterance_path, read_wav_pcm
from agi_scripts.vad import EndOfSpeechDetector, VadConfig
from call_router.asterisk_paths import asterisk_paths, asterisk_view


async def listen_recording(
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
    target = await asyncio.to_thread(next_utterance_path, settings, ctx)
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
