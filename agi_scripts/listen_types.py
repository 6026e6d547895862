"""What listening needs and yields: the call and recogniser it uses, the utterance, how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agi_scripts.agi_environment import AgiEnvironment
from agi_scripts.vad import BYTES_PER_MS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agi_scripts.speech import RecognitionResult

SAMPLE_RATE = 8000
DTMF_KEYS = "0123456789*#"


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
