"""The caller's utterances and our prompts as files: 8 kHz mono wavs under recordings/."""

from __future__ import annotations

import asyncio
import re
import wave
from functools import lru_cache
from pathlib import Path
from typing import Any

from agi_scripts.listen_types import SAMPLE_RATE, ListenContext

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def utterances_dir(settings: Any) -> Path:
    return Path(settings.recordings_dir) / "utterances"


def next_utterance_path(settings: Any, ctx: ListenContext) -> Path:
    """recordings/utterances/<linkedid>-<n>.wav, n counting this call's utterances from 1.

    Blocking (a mkdir and a stat per utterance the call already has): called in a thread. The
    folder holds every caller's utterances for the retention period, so it is never listed."""
    folder = utterances_dir(settings)
    # Residents' voices: the hotline's own, whatever the umask of the process that runs us.
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    call = _SAFE_NAME.sub("_", ctx.linkedid or ctx.env.uniqueid or "call")[:64]
    n = 1
    while (folder / f"{call}-{n}.wav").exists():
        n += 1
    return folder / f"{call}-{n}.wav"


async def save_utterance(settings: Any, ctx: ListenContext, pcm: bytes) -> Path | None:
    if not pcm:
        return None
    return await asyncio.to_thread(_save_utterance, settings, ctx, pcm)


def _save_utterance(settings: Any, ctx: ListenContext, pcm: bytes) -> Path:
    path = next_utterance_path(settings, ctx)
    write_wav(path, pcm)
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
