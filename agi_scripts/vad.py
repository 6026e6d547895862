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


def has_speech_dynamics(pcm: bytes, *, frame_bytes: int = 320, min_ratio: float = 3.0) -> bool:
    """Does this audio rise and fall like speech, rather than sit steady like noise or a tone?

    Speech alternates loud syllables with quiet gaps (at least at its edges); line noise,
    hiss and music-on-hold tones stay near one level. A recogniser given a steady sound still
    forces it onto some word of its grammar, so such audio must not be routed at all.
    """
    levels = sorted(
        frame_rms(pcm[i : i + frame_bytes])
        for i in range(0, len(pcm) - frame_bytes + 1, frame_bytes)
    )
    if len(levels) < 5:
        return False
    quiet = levels[len(levels) // 10]
    # Near the top, not a percentile: one short word in a long recording is still speech;
    # skipping the single loudest frame ignores one click.
    loud = levels[-2]
    return loud >= VadConfig.min_start_rms and loud >= min_ratio * max(quiet, 1.0)
