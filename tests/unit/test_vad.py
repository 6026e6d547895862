"""The end-of-speech detector, fed plain 20 ms frames: no audio files, no clock."""

from __future__ import annotations

import math
import random
import struct

import pytest

from agi_scripts.vad import (
    FRAME_BYTES,
    EndOfSpeechDetector,
    VadConfig,
    VadEvent,
    frame_rms,
)


def tone(amplitude: float, hz: float = 300.0, frames: int = 1) -> list[bytes]:
    out = []
    for f in range(frames):
        samples = [
            int(amplitude * math.sin(2 * math.pi * hz * (f * 160 + i) / 8000)) for i in range(160)
        ]
        out.append(struct.pack("<160h", *samples))
    return out


def noise(amplitude: float, frames: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [
        struct.pack("<160h", *(int(rng.uniform(-amplitude, amplitude)) for _ in range(160)))
        for _ in range(frames)
    ]


def silence(frames: int) -> list[bytes]:
    return [bytes(FRAME_BYTES)] * frames


def run(detector: EndOfSpeechDetector, frames: list[bytes]) -> list[tuple[int, VadEvent]]:
    events = []
    for index, frame in enumerate(frames):
        event = detector.push(frame)
        if event is not None:
            events.append((index, event))
    return events


def test_rms_of_plain_values() -> None:
    assert frame_rms(b"") == 0.0
    assert frame_rms(bytes(FRAME_BYTES)) == 0.0
    assert frame_rms(struct.pack("<2h", 1000, -1000)) == pytest.approx(1000)
    assert frame_rms(struct.pack("<2h", 3, 4) + b"\x01") == pytest.approx(math.sqrt(12.5))


def test_speech_then_500ms_quiet_ends_the_utterance() -> None:
    detector = EndOfSpeechDetector(VadConfig(silence_ms=500))
    frames = silence(10) + tone(4000, frames=40) + silence(40)
    events = run(detector, frames)
    # Speech is confirmed on its 3rd loud frame; the end on the 25th quiet frame (500 ms).
    assert events == [(12, VadEvent.SPEECH_STARTED), (74, VadEvent.SPEECH_ENDED)]
    assert detector.speech_ms == 800
    assert detector.speech_start_ms == 200
    # Once ended it stays ended.
    assert detector.push(tone(4000)[0]) is None


def test_calibration_frames_never_start_speech() -> None:
    detector = EndOfSpeechDetector(VadConfig(calibration_ms=200))
    events = run(detector, tone(4000, frames=10) + silence(40))
    assert events == []


def test_a_short_pause_inside_speech_does_not_end_it() -> None:
    detector = EndOfSpeechDetector(VadConfig(silence_ms=500))
    frames = silence(10) + tone(4000, frames=20) + silence(20) + tone(4000, frames=20) + silence(30)
    events = run(detector, frames)
    assert [e for _, e in events] == [VadEvent.SPEECH_STARTED, VadEvent.SPEECH_ENDED]
    assert detector.speech_ms == 1200


def test_silence_only_times_out() -> None:
    detector = EndOfSpeechDetector(VadConfig(no_speech_timeout_ms=1000))
    assert run(detector, silence(100)) == [(49, VadEvent.NO_SPEECH)]
    assert detector.speech_ms == 0


def test_a_click_is_not_speech() -> None:
    detector = EndOfSpeechDetector(VadConfig(no_speech_timeout_ms=2000))
    frames = silence(5) + tone(8000, frames=2) + silence(200)
    assert [e for _, e in run(detector, frames)] == [VadEvent.NO_SPEECH]


def test_a_burst_shorter_than_min_speech_is_dropped_and_listening_goes_on() -> None:
    detector = EndOfSpeechDetector(VadConfig(min_speech_ms=200, no_speech_timeout_ms=10_000))
    frames = silence(10) + tone(4000, frames=4) + silence(30) + tone(4000, frames=20) + silence(30)
    events = [e for _, e in run(detector, frames)]
    assert events == [VadEvent.SPEECH_STARTED, VadEvent.SPEECH_STARTED, VadEvent.SPEECH_ENDED]
    assert detector.speech_ms == 400


def test_endless_speech_is_capped() -> None:
    detector = EndOfSpeechDetector(VadConfig(max_utterance_ms=2000))
    events = run(detector, silence(10) + tone(4000, frames=500))
    assert events[-1] == (109, VadEvent.MAX_LENGTH)
    assert detector.speech_ms == 2000


def test_noise_floor_adapts_so_a_noisy_line_is_not_endless_speech() -> None:
    # Line noise at RMS ~580, above the absolute start level (300): with a fixed threshold it
    # would be one utterance running to the cap. The floor follows it, so only speech well
    # above the noise counts, and it still ends when the caller stops.
    detector = EndOfSpeechDetector(VadConfig(no_speech_timeout_ms=60_000))
    assert run(detector, noise(1000, frames=100)) == []
    assert 450 < detector.noise_floor < 650
    events = run(detector, tone(9000, frames=30) + noise(1000, frames=40, seed=2))
    assert [e for _, e in events] == [VadEvent.SPEECH_STARTED, VadEvent.SPEECH_ENDED]
    assert detector.speech_ms == 600


def test_odd_and_empty_frames_are_harmless() -> None:
    detector = EndOfSpeechDetector()
    assert detector.push(b"") is None
    assert detector.push(b"\x01") is None
    assert detector.push(tone(4000)[0][:161]) is None
    assert detector.elapsed_ms == pytest.approx(162 / 16)


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError):
        VadConfig(silence_ms=0)
    with pytest.raises(ValueError):
        VadConfig(end_ratio=5.0, start_ratio=3.0)


def _pcm(levels: list[int], frames_each: int = 10) -> bytes:
    """Square-ish 20 ms frames at the given amplitudes (alternating sign, so RMS = level)."""
    out = bytearray()
    for level in levels:
        for _ in range(frames_each):
            for i in range(160):
                out += int(level if i % 2 else -level).to_bytes(2, "little", signed=True)
    return bytes(out)


def test_steady_noise_or_tone_has_no_speech_dynamics() -> None:
    from agi_scripts.vad import has_speech_dynamics

    assert not has_speech_dynamics(_pcm([3000] * 20))  # hiss / a tone: one level throughout
    assert not has_speech_dynamics(_pcm([0] * 20))  # digital silence
    assert not has_speech_dynamics(_pcm([3000], frames_each=2))  # too short to judge


def test_a_word_over_a_quiet_line_has_speech_dynamics() -> None:
    from agi_scripts.vad import has_speech_dynamics

    assert has_speech_dynamics(_pcm([50, 50, 2500, 4000, 1500, 50, 50]))
    # One short word in a long, quiet recording still counts.
    assert has_speech_dynamics(_pcm([40] * 150 + [3000, 3000] + [40] * 150, frames_each=1))
    # Too quiet to be a caller, however it varies.
    assert not has_speech_dynamics(_pcm([5, 5, 80, 5, 5]))
