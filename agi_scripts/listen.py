"""Hear the caller: the one step a menu calls to get an utterance, and the engine's speech input.

listen() picks the way and SpeechMenu puts it behind a flow's `ask` node. Two ways to get the
caller's speech out of Asterisk:
- stream (default): `EXEC AudioSocket <uuid>,host:port` from the AGI. Asterisk connects to our
  AudioSocketServer and sends 20 ms slin frames; we play the prompt back over the same socket
  (so it stops the moment the caller speaks: barge-in), run the energy end-of-speech detector,
  and feed the recogniser while the caller talks, so the final result is ready right after the
  silence window. Then we send AudioSocket's hang-up frame: EXEC returns 0 and the AGI goes on.
  (listen_stream.py: the EXEC and the connection; listen_capture.py: the session heard.)
- record (settings.speech_mode == "record", or the stream could not be set up): STREAM FILE
  the prompt, then `RECORD FILE` with Asterisk's silence detection into recordings/utterances/
  (bind-mounted into the sandbox), then recognise the file. Slower (whole-second silence
  window, no barge-in) but needs nothing beyond AGI (listen_record.py).

Either way the utterance is saved as an 8 kHz mono wav under recordings/utterances/
(utterance_files.py); what it is and how it ended is listen_types.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agi_scripts.agi import AgiChannel
from agi_scripts.agi_environment import AgiEnvironment
from agi_scripts.agi_protocol import CallerHangup
from agi_scripts.audiosocket import AudioSocketServer
from agi_scripts.listen_record import listen_recording
from agi_scripts.listen_stream import listen_streaming
from agi_scripts.listen_types import (
    EndedBy,
    ListenContext,
    RecogniserLike,
    StreamUnavailable,
    Utterance,
)
from call_router.asterisk_paths import asterisk_paths

if TYPE_CHECKING:
    from agi_scripts.flows.runtime import SpeechResult
    from agi_scripts.speech import Recogniser


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
                return await listen_streaming(
                    agi, ctx, server, prompt=prompt, language=language, grammar=grammar,
                    no_speech_timeout=no_speech_timeout, on_audio=on_audio,
                    recogniser=recogniser, intents=intents,
                )  # fmt: skip
            except StreamUnavailable as exc:
                log.warning("listen_stream_failed", error=str(exc))
    return await listen_recording(
        agi, ctx, prompt=prompt, language=language, grammar=grammar,
        no_speech_timeout=no_speech_timeout, recogniser=recogniser, intents=intents,
    )  # fmt: skip


# --- the flow engine's speech input ---------------------------------------------------------


@dataclass
class _CallScope:
    settings: Any
    log: Any
    linkedid: str | None
    env: AgiEnvironment


class SpeechMenu:
    """agi_scripts.flows.runtime.SpeechInput backed by listen() and speech.understand().

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
