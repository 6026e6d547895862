"""The utterance the recogniser hears: cut to the sample the same way from a call's frames and
from a file, whatever the frame phase or the line audio before it. Plain bytes, no Vosk."""

from __future__ import annotations

import math
import random
import struct

import pytest

from agi_scripts.vad import (
    BYTES_PER_MS,
    FRAME_BYTES,
    PREROLL_MS,
    TAIL_MS,
    EndOfSpeechDetector,
    SpeechSegmenter,
    VadConfig,
    loud_from,
    loud_until,
    speech_segment,
)

CONFIG = VadConfig(no_speech_timeout_ms=10**9)


def word(ms: int, amplitude: float = 4000.0, seed: int = 1) -> bytes:
    """A speech-like burst: a tone whose level rises and falls, with a little noise on it."""
    rng = random.Random(seed)
    count = ms * 8
    samples = []
    for i in range(count):
        envelope = math.sin(math.pi * i / count)
        value = amplitude * envelope * math.sin(2 * math.pi * 220 * i / 8000)
        samples.append(int(value + rng.uniform(-30, 30)))
    return struct.pack(f"<{count}h", *samples)


def quiet(ms: int) -> bytes:
    return bytes(ms * BYTES_PER_MS)


def frames_of(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


def streamed(line: bytes) -> tuple[bytes, list[int]]:
    """What a live call hands the recogniser, frame by frame, and the sizes handed per frame."""
    segmenter = SpeechSegmenter(EndOfSpeechDetector(CONFIG))
    handed = bytearray()
    sizes = []
    for frame in frames_of(line):
        _, audio = segmenter.push(frame)
        handed += audio
        sizes.append(len(audio))
        if segmenter.closed:
            break
    assert segmenter.closed
    return bytes(handed), sizes


UTTERANCE = quiet(400) + word(250, seed=2) + quiet(120) + word(300, seed=3) + quiet(900)


def test_a_file_and_a_call_give_the_recogniser_the_same_samples() -> None:
    from_file = speech_segment(UTTERANCE, CONFIG)
    assert from_file is not None
    # The same audio on a line: more quiet before it, shifted by 0-19 ms against the frames.
    for shift_samples in (0, 1, 37, 80, 159):
        line = quiet(1500) + bytes(2 * shift_samples) + UTTERANCE + quiet(1000)
        from_call, _ = streamed(line)
        assert from_call == from_file, shift_samples


def test_the_segment_is_the_speech_with_preroll_and_tail() -> None:
    segment = speech_segment(UTTERANCE, CONFIG)
    assert segment is not None
    onset = loud_from(UTTERANCE, CONFIG.min_start_rms)
    end = loud_until(UTTERANCE, CONFIG.min_end_rms)
    assert onset is not None and end is not None
    assert segment == UTTERANCE[onset - PREROLL_MS * BYTES_PER_MS : end + TAIL_MS * BYTES_PER_MS]


def test_preroll_the_line_did_not_have_is_silence() -> None:
    # Speech right after the 200 ms the detector spends measuring the line.
    short_lead = quiet(220) + word(300) + quiet(900)
    segment = speech_segment(short_lead, CONFIG)
    onset = loud_from(short_lead, CONFIG.min_start_rms)
    assert segment is not None and onset is not None
    missing = PREROLL_MS * BYTES_PER_MS - onset
    assert missing > 0
    assert segment[:missing] == bytes(missing)
    assert segment[missing:].startswith(short_lead[: onset + 100])


def test_a_recording_that_stops_with_the_speech_gets_its_tail_of_silence() -> None:
    cut_short = quiet(400) + word(300)
    segment = speech_segment(cut_short, CONFIG)
    assert segment is not None
    assert segment == speech_segment(cut_short + quiet(2000), CONFIG)


def test_audio_is_held_back_until_the_end_is_known() -> None:
    handed, sizes = streamed(UTTERANCE)
    # Nothing after the final frame, and the tail came out at the end in one piece ...
    assert sizes[-1] > FRAME_BYTES
    # ... a short one: only silence window - tail was held back, so little is left to decode
    # after the end of speech (the latency a caller waits for).
    holdback = SpeechSegmenter(EndOfSpeechDetector(CONFIG)).holdback_bytes
    assert sizes[-1] <= holdback < (CONFIG.silence_ms * BYTES_PER_MS)
    assert sum(sizes) == len(handed)
    # While the caller speaks, audio flows (the recogniser decodes as they talk).
    speaking = sizes[: len(sizes) - CONFIG.silence_ms // 20]
    assert sum(speaking) > 0


@pytest.mark.parametrize(
    "audio",
    [quiet(3000), quiet(400) + word(60) + quiet(2000)],
    ids=["silence", "a click"],
)
def test_no_speech_no_segment(audio: bytes) -> None:
    assert speech_segment(audio, CONFIG) is None


def test_loud_from_and_until_find_the_sample() -> None:
    pcm = quiet(100) + struct.pack("<80h", *([1000] * 80)) + quiet(100)
    start = 100 * BYTES_PER_MS
    assert loud_from(pcm, 999.0) == start
    assert loud_until(pcm, 999.0) == start + 160
    assert loud_from(quiet(100), 10.0) is None and loud_until(quiet(100), 10.0) is None


# --- the fixed dither the recogniser adds instead of Kaldi's random one ---------------------


def test_dither_is_the_same_however_the_audio_is_chunked() -> None:
    from agi_scripts.recognition_stream import DITHER, dithered

    pcm = UTTERANCE
    whole = dithered(pcm, 0)
    chunked = b"".join(dithered(pcm[i : i + 1600], i // 2) for i in range(0, len(pcm), 1600))
    assert whole == chunked
    assert whole != pcm  # silence gets the noise the model expects ...
    assert max(abs(v) for v in DITHER) <= 2  # ... a sample step or two, no more
    assert dithered(pcm, 0) == whole  # and the same every time


def test_dither_never_overflows_full_scale() -> None:
    from agi_scripts.recognition_stream import dithered

    loud = struct.pack("<4h", 32767, -32768, 32767, -32768) * 100
    out = struct.unpack(f"<{len(loud) // 2}h", dithered(loud, 0))
    assert max(out) <= 32767 and min(out) >= -32768
