"""Energy end-of-speech detection over telephone audio (8 kHz, 16-bit little-endian slin).

Pure logic: feed frames in, get events out; no I/O, no clock (time is counted in audio, so a
test with plain byte strings behaves exactly like a call).

Why energy and not a neural VAD: on an IVR the line is quiet between the prompt and the
caller's answer, the decision must be made within one 20 ms frame, and the recogniser's own
final result confirms the words. The rules:
- the first `calibration_ms` only measure the line (no speech can start yet); afterwards the
  noise floor follows quiet frames (an exponential average), so a noisy line does not look
  like endless speech and a quiet one still notices a soft voice;
- speech starts after `start_frames` consecutive frames above max(floor * start_ratio,
  min_start_rms): one click or a DTMF blip is not speech;
- speech ends after `silence_ms` of frames below a lower threshold (hysteresis), provided at
  least `min_speech_ms` was heard — a shorter burst is dropped as noise and we keep waiting;
- nothing heard for `no_speech_timeout_ms` → NO_SPEECH; speech running past
  `max_utterance_ms` → MAX_LENGTH (a caller talking for a minute is cut, not waited for).
"""

from __future__ import annotations

import math
import sys
from array import array
from dataclasses import dataclass
from enum import StrEnum

SAMPLE_RATE = 8000
BYTES_PER_SAMPLE = 2
BYTES_PER_MS = SAMPLE_RATE * BYTES_PER_SAMPLE // 1000  # 16
FRAME_MS = 20
FRAME_BYTES = FRAME_MS * BYTES_PER_MS  # 320


class VadEvent(StrEnum):
    SPEECH_STARTED = "speech_started"
    SPEECH_ENDED = "speech_ended"
    NO_SPEECH = "no_speech_timeout"
    MAX_LENGTH = "max_length"


# Events after which the detector stops listening.
FINAL_EVENTS = frozenset({VadEvent.SPEECH_ENDED, VadEvent.NO_SPEECH, VadEvent.MAX_LENGTH})


@dataclass(frozen=True)
class VadConfig:
    silence_ms: int = 500
    min_speech_ms: int = 120
    max_utterance_ms: int = 15_000
    no_speech_timeout_ms: int = 5_000
    # Speech starts this far above the noise floor (x RMS) ...
    start_ratio: float = 3.0
    # ... and ends below this (hysteresis: trailing syllables are quieter than the onset).
    end_ratio: float = 2.0
    # Absolute floor: comfort noise and digital silence never count as speech. Telephone speech
    # at normal level is RMS ~1000-5000; a quiet line is below 100.
    min_start_rms: float = 300.0
    min_end_rms: float = 200.0
    start_frames: int = 3
    # Starting estimate of the noise floor, before any quiet frame was seen.
    initial_floor: float = 50.0
    # Weight of each quiet frame in the floor average (0.05 → ~0.4 s to adapt).
    floor_alpha: float = 0.05
    # Audio at the start that only measures the line's noise (the mean RMS of these frames
    # becomes the floor). Callers do not answer within 200 ms of a prompt starting.
    calibration_ms: int = 200

    def __post_init__(self) -> None:
        if self.silence_ms <= 0 or self.max_utterance_ms <= 0 or self.no_speech_timeout_ms <= 0:
            raise ValueError("VAD windows must be positive")
        if self.start_frames < 1 or not 0 < self.floor_alpha <= 1:
            raise ValueError("bad VAD start_frames / floor_alpha")
        if self.end_ratio > self.start_ratio:
            raise ValueError("end_ratio must not exceed start_ratio")


def frame_rms(frame: bytes) -> float:
    """Root mean square of 16-bit little-endian samples; an odd trailing byte is ignored."""
    usable = len(frame) - len(frame) % BYTES_PER_SAMPLE
    if usable == 0:
        return 0.0
    samples = array("h")
    samples.frombytes(frame[:usable])
    if sys.byteorder == "big":
        samples.byteswap()
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def frame_ms(frame: bytes) -> float:
    return len(frame) / BYTES_PER_MS


class EndOfSpeechDetector:
    """Feed consecutive frames with push(); it returns at most one event per frame."""

    def __init__(self, config: VadConfig | None = None) -> None:
        self.config = config or VadConfig()
        self.noise_floor = self.config.initial_floor
        self.elapsed_ms = 0.0
        self.speaking = False
        self.done: VadEvent | None = None
        # Where speech started (audio time, ms), and the running counters.
        self.speech_start_ms: float | None = None
        self.speech_end_ms: float | None = None
        self._loud_run = 0
        self._loud_run_ms = 0.0
        self._quiet_ms = 0.0
        self._calibration: list[float] = []

    @property
    def speech_ms(self) -> int:
        """Length of the detected speech, trailing silence excluded."""
        if self.speech_start_ms is None:
            return 0
        end = self.speech_end_ms if self.speech_end_ms is not None else self.elapsed_ms
        return max(0, round(end - self.speech_start_ms))

    def start_threshold(self) -> float:
        return max(self.noise_floor * self.config.start_ratio, self.config.min_start_rms)

    def end_threshold(self) -> float:
        return max(self.noise_floor * self.config.end_ratio, self.config.min_end_rms)

    def push(self, frame: bytes) -> VadEvent | None:
        if self.done is not None or not frame:
            return None
        duration = frame_ms(frame)
        self.elapsed_ms += duration
        rms = frame_rms(frame)
        if not self.speaking:
            return self._while_waiting(rms, duration)
        return self._while_speaking(rms, duration)

    def _while_waiting(self, rms: float, duration: float) -> VadEvent | None:
        cfg = self.config
        if self.elapsed_ms <= cfg.calibration_ms:
            self._calibration.append(rms)
            self.noise_floor = max(
                cfg.initial_floor, sum(self._calibration) / len(self._calibration)
            )
            return None
        if rms >= self.start_threshold():
            self._loud_run += 1
            self._loud_run_ms += duration
            if self._loud_run >= cfg.start_frames:
                self.speaking = True
                self._quiet_ms = 0.0
                self.speech_start_ms = self.elapsed_ms - self._loud_run_ms
                self.speech_end_ms = None
                return VadEvent.SPEECH_STARTED
        else:
            self._loud_run = 0
            self._loud_run_ms = 0.0
            # Only quiet frames teach the floor: speech must not raise it.
            self.noise_floor += cfg.floor_alpha * (rms - self.noise_floor)
        if self.elapsed_ms >= cfg.no_speech_timeout_ms and self.speech_start_ms is None:
            return self._finish(VadEvent.NO_SPEECH)
        return None

    def _while_speaking(self, rms: float, duration: float) -> VadEvent | None:
        cfg = self.config
        assert self.speech_start_ms is not None
        if rms < self.end_threshold():
            if self._quiet_ms == 0.0:
                self.speech_end_ms = self.elapsed_ms - duration
            self._quiet_ms += duration
        else:
            self._quiet_ms = 0.0
            self.speech_end_ms = None
        if self._quiet_ms >= cfg.silence_ms:
            if self.speech_ms >= cfg.min_speech_ms:
                return self._finish(VadEvent.SPEECH_ENDED)
            # A burst too short to be a word: forget it and keep waiting for real speech.
            self.speaking = False
            self.speech_start_ms = None
            self.speech_end_ms = None
            self._loud_run = 0
            self._loud_run_ms = 0.0
            if self.elapsed_ms >= cfg.no_speech_timeout_ms:
                return self._finish(VadEvent.NO_SPEECH)
            return None
        if self.elapsed_ms - self.speech_start_ms >= cfg.max_utterance_ms:
            if self.speech_end_ms is None:
                self.speech_end_ms = self.elapsed_ms
            return self._finish(VadEvent.MAX_LENGTH)
        return None

    def _finish(self, event: VadEvent) -> VadEvent:
        self.done = event
        self.speaking = False
        return event


def has_speech_dynamics(
    pcm: bytes = b"",
    *,
    frame_bytes: int = 320,
    min_ratio: float = 3.0,
    levels: list[float] | None = None,
) -> bool:
    """Does this audio rise and fall like speech, rather than sit steady like noise or a tone?

    Speech alternates loud syllables with quiet gaps (at least at its edges); line noise,
    hiss and music-on-hold tones stay near one level. A recogniser given a steady sound still
    forces it onto some word of its grammar, so such audio must not be routed at all.
    """
    if levels is None:  # `levels`: the frames' RMS, when the caller measured them already
        levels = [
            frame_rms(pcm[i : i + frame_bytes])
            for i in range(0, len(pcm) - frame_bytes + 1, frame_bytes)
        ]
    levels = sorted(levels)
    if len(levels) < 5:
        return False
    quiet = levels[len(levels) // 10]
    # Near the top, not a percentile: one short word in a long recording is still speech;
    # skipping the single loudest frame ignores one click.
    loud = levels[-2]
    return loud >= VadConfig.min_start_rms and loud >= min_ratio * max(quiet, 1.0)


# --- what the recogniser hears ------------------------------------------------------------

# Line audio kept before the speech onset, and after the speech end, in the utterance the
# recogniser decodes: a little silence on both sides, as the model was trained on.
PREROLL_MS = 300
TAIL_MS = 300
# The onset and the end are placed to the sample, not to the 20 ms frame: where a sliding
# window of this many samples (10 ms) first (last) reaches the detector's threshold. Frames are
# cut wherever the line's packets fall; the sliding window depends on the audio alone.
ANCHOR_SAMPLES = 80


class SpeechSegmenter:
    """Cuts the utterance the recogniser hears out of the line audio, frame by frame.

    The segment runs from PREROLL_MS before the speech onset to TAIL_MS after the speech end,
    both placed to the sample by the audio's own level (`loud_from`, `loud_until`), so the
    same audio gives the same samples to decode whether it came as a call's AudioSocket frames
    or as a file (`speech_segment`), whatever the phase of the 20 ms frames or the length of
    the line audio before it. Audio is handed out as it arrives, held back by the detector's
    silence window less the tail: the end is known only once that window has passed, and
    it lies at least `silence_ms - tail_ms` (less a frame) before the audio received then.
    """

    def __init__(
        self,
        detector: EndOfSpeechDetector,
        preroll_ms: int = PREROLL_MS,
        tail_ms: int = TAIL_MS,
    ) -> None:
        self.detector = detector
        self.preroll_bytes = preroll_ms * BYTES_PER_MS
        # When the detector ends the utterance, the last loud stretch ended at most a silence
        # window (and half a frame) ago: audio older than that less the tail is surely in the
        # segment and can be decoded at once. Holding back only the rest keeps the decoding
        # left after the end of speech short.
        self.silence_bytes = detector.config.silence_ms * BYTES_PER_MS
        self.tail_bytes = max(0, min(tail_ms * BYTES_PER_MS, self.silence_bytes - 2 * FRAME_BYTES))
        self.holdback_bytes = self.silence_bytes - self.tail_bytes + 2 * FRAME_BYTES
        self.started = False
        self.closed = False
        self._before = bytearray()  # the latest line audio, until speech starts
        self._segment = bytearray()  # the utterance from its cut start on
        self._handed = 0  # bytes of _segment handed out

    @property
    def segment(self) -> bytes:
        return bytes(self._segment[: self._handed])

    def push(self, frame: bytes) -> tuple[VadEvent | None, bytes]:
        """The detector's event for this frame and the audio to hand to the recogniser."""
        event = self.detector.push(frame)
        if self.closed:
            return event, b""
        if not self.started:
            self._before += frame
            if self.detector.speech_start_ms is None:
                keep = self.preroll_bytes + 200 * BYTES_PER_MS + self._loud_run_bytes()
                del self._before[: max(0, len(self._before) - keep)]
                return event, b""
            self._start()
        else:
            self._segment += frame
        if event in FINAL_EVENTS:
            self.closed = True
            end = len(self._segment)
            if event == VadEvent.SPEECH_ENDED:
                # Only the end of the utterance can hold its last loud stretch.
                region = max(0, end - self.silence_bytes - 200 * BYTES_PER_MS)
                region -= region % BYTES_PER_SAMPLE
                tail = bytes(self._segment[region:])
                last = loud_until(tail, self.detector.end_threshold())
                if last is not None:
                    end = min(end, region + last + self.tail_bytes)
            return event, self._hand_out(max(end, self._handed))
        return event, self._hand_out(len(self._segment) - self.holdback_bytes)

    def _loud_run_bytes(self) -> int:
        return 2 * self.detector.config.start_frames * FRAME_BYTES

    def _start(self) -> None:
        self.started = True
        onset = loud_from(bytes(self._before), self.detector.start_threshold())
        if onset is None:  # cannot happen (a loud frame has a loud half); frames then
            onset = max(0, len(self._before) - self._loud_run_bytes() // 2)
        start = onset - self.preroll_bytes
        # The line began less than the preroll before the onset: silence makes up the rest.
        self._segment = bytearray(max(0, -start)) + self._before[max(0, start) :]
        self._before = bytearray()

    def _hand_out(self, upto: int) -> bytes:
        if upto <= self._handed:
            return b""
        audio = bytes(self._segment[self._handed : upto])
        self._handed = upto
        return audio


def _squares(pcm: bytes) -> list[int]:
    usable = len(pcm) - len(pcm) % BYTES_PER_SAMPLE
    samples = array("h")
    samples.frombytes(pcm[:usable])
    if sys.byteorder == "big":
        samples.byteswap()
    return [s * s for s in samples]


def loud_from(pcm: bytes, rms: float, window: int = ANCHOR_SAMPLES) -> int | None:
    """Byte offset where the first `window`-sample stretch with RMS >= `rms` begins."""
    squares = _squares(pcm)
    need = rms * rms * window
    total = sum(squares[:window])
    for i in range(len(squares) - window + 1):
        if i:
            total += squares[i + window - 1] - squares[i - 1]
        if total >= need:
            return i * BYTES_PER_SAMPLE
    return None


def loud_until(pcm: bytes, rms: float, window: int = ANCHOR_SAMPLES) -> int | None:
    """Byte offset where the last `window`-sample stretch with RMS >= `rms` ends."""
    squares = _squares(pcm)
    need = rms * rms * window
    n = len(squares)
    total = sum(squares[n - window :]) if n >= window else 0
    for end in range(n, window - 1, -1):
        if end < n:
            total += squares[end - window] - squares[end]
        if total >= need:
            return end * BYTES_PER_SAMPLE
    return None


def speech_segment(
    pcm: bytes,
    config: VadConfig | None = None,
    preroll_ms: int = PREROLL_MS,
    tail_ms: int = TAIL_MS,
) -> bytes | None:
    """The part of a recording the recogniser hears, cut exactly as a live call's audio is
    (SpeechSegmenter over 20 ms frames); None when the detector finds no speech.

    A recording that ends before the silence window closed is followed by silence up to the
    window, as the line would have gone on after the caller stopped.
    """
    config = config or VadConfig(no_speech_timeout_ms=10**9)
    segmenter = SpeechSegmenter(EndOfSpeechDetector(config), preroll_ms, tail_ms)
    for offset in range(0, len(pcm), FRAME_BYTES):
        segmenter.push(pcm[offset : offset + FRAME_BYTES])
        if segmenter.closed:
            break
    if not segmenter.started:
        return None
    silence = bytes(FRAME_BYTES)
    for _ in range(config.silence_ms // FRAME_MS + 1):
        if segmenter.closed:
            break
        segmenter.push(silence)
    if segmenter.detector.done not in (VadEvent.SPEECH_ENDED, VadEvent.MAX_LENGTH):
        return None  # only a burst too short to be a word
    return segmenter.segment
