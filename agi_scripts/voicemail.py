"""Voicemail audio after Asterisk recorded it: silence trimmed, length bounded (pydub).

Callers start talking a second after the tone and leave the line open after the last word;
an operator listening to a hundred messages a night should hear words, not hiss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydub import AudioSegment
from pydub.silence import detect_leading_silence

# Quieter than this (dBFS) counts as silence; phone-line noise sits well below it.
SILENCE_DBFS = -45.0
# Kept on either side of the speech, so the first and last syllables are not clipped.
MARGIN_MS = 250


@dataclass(frozen=True)
class Trimmed:
    seconds: float  # what is left
    removed_seconds: float
    silent: bool  # nothing but silence was recorded


def trim_voicemail(path: Path, max_seconds: float, silence_dbfs: float = SILENCE_DBFS) -> Trimmed:
    """Trim leading/trailing silence and cut at `max_seconds`, rewriting `path` (8 kHz mono)."""
    audio = AudioSegment.from_file(path).set_channels(1).set_frame_rate(8000)
    original = len(audio)
    lead = detect_leading_silence(audio, silence_threshold=silence_dbfs, chunk_size=10)
    if lead >= original:
        return Trimmed(original / 1000, 0.0, silent=True)
    tail = detect_leading_silence(audio.reverse(), silence_threshold=silence_dbfs, chunk_size=10)
    start = max(lead - MARGIN_MS, 0)
    end = min(original - tail + MARGIN_MS, original)
    kept = audio[start:end][: int(max_seconds * 1000)]
    tmp = path.with_suffix(".trim.wav")
    kept.export(tmp, format="wav")
    tmp.replace(path)
    return Trimmed(len(kept) / 1000, (original - len(kept)) / 1000, silent=False)
