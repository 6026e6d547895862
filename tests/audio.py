"""Test audio: a sine tone written as a 16-bit mono wav (what a phone plays), and how loud the
loudest second of a recording is (what a phone heard)."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path


def write_tone(
    path: Path, seconds: float, hz: float = 1000, *, rate: int = 8000, amplitude: float = 12000
) -> None:
    """`seconds` of a `hz` sine at this peak amplitude, 16-bit mono at `rate` samples/s."""
    frames = b"".join(
        struct.pack("<h", int(amplitude * math.sin(2 * math.pi * hz * n / rate)))
        for n in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


def loudest_second(path: Path) -> float:
    """RMS of the loudest one-second window of a 16-bit wav."""
    with wave.open(str(path)) as recording:
        rate, width = recording.getframerate(), recording.getsampwidth()
        assert width == 2
        samples = struct.unpack(
            f"<{recording.getnframes() * recording.getnchannels()}h",
            recording.readframes(recording.getnframes()),
        )
    windows = [samples[i : i + rate] for i in range(0, max(len(samples) - rate, 1), rate // 2)]
    return max(math.sqrt(sum(v * v for v in w) / len(w)) for w in windows if w)
