"""Decoding one utterance: Vosk passes fed as the audio arrives → a RecognitionResult.

The passes (agi_scripts.speech explains why each exists): the grammar pass (keywords + fillers,
n-best), the keywords-only pass (word confidences, and its n-best), the menu-words pass, the
free-form pass. Deterministic: a fixed dither sequence counted from the utterance start, audio
decoded in fixed blocks counted from the start, whatever chunks it arrives in.
"""

from __future__ import annotations

import asyncio
import json
import math
import operator
import random
import sys
from array import array
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from agi_scripts.vad import FRAME_BYTES, frame_rms, has_speech_dynamics

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2
# Nobody describes a burst pipe in more than this; decoding more only costs CPU.
MAX_UTTERANCE_SECONDS = 30.0
# Audio is decoded in blocks of this size counted from the start of the utterance, however it
# arrives: Vosk's endpointer looks at block boundaries, so the same audio fed in other chunks
# could be split into other segments and end with other n-best scores.
DECODE_BLOCK_BYTES = 1600  # 100 ms
# Hypotheses kept from the keywords-only pass' n-best (later guesses to offer).
KEYWORD_ALTERNATIVES = 10


def _dither_table(length: int = 2 * SAMPLE_RATE, seed: int = 0x5EED) -> array[int]:
    """Kaldi's dither (Gaussian, std 1 sample step), as whole steps from a fixed seed."""
    rng = random.Random(seed)
    return array("h", (max(-2, min(2, round(rng.gauss(0.0, 1.0)))) for _ in range(length)))


# The noise every utterance gets, sample n of the utterance getting DITHER[n % len]: digital
# silence (exact zeros) is not what the model was trained on (Kaldi dithers by default);
# measured on the corpus, decoding zeros undithered made misroutes 30 instead of 24.
DITHER = _dither_table()


def dithered(pcm: bytes, first_sample: int) -> bytes:
    """16-bit little-endian PCM plus DITHER, counted from sample `first_sample` of the
    utterance (so feeding in any chunk sizes gives the same samples)."""
    usable = len(pcm) - len(pcm) % SAMPLE_WIDTH
    samples = array("h")
    samples.frombytes(pcm[:usable])
    if sys.byteorder == "big":
        samples.byteswap()
    count = len(samples)
    start = first_sample % len(DITHER)
    noise = DITHER[start : start + count]
    while len(noise) < count:
        noise += DITHER[: count - len(noise)]
    if samples and (max(samples) > 32765 or min(samples) < -32766):
        mixed = array(
            "h", (max(-32768, min(32767, a + b)) for a, b in zip(samples, noise, strict=True))
        )
    else:
        mixed = array("h", map(operator.add, samples, noise))
    if sys.byteorder == "big":
        mixed.byteswap()
    return mixed.tobytes() + pcm[usable:]


class Word(NamedTuple):
    word: str
    conf: float  # Vosk's word confidence; with n-best on, the hypothesis' posterior instead
    start: float
    end: float


@dataclass(frozen=True)
class RecognitionResult:
    transcript: str  # the best hypothesis of the pass the classifier trusts (grammar if run)
    words: list[Word]
    alternatives: list[str]  # the other n-best hypotheses, best first
    weights: list[float]  # posterior weights of [transcript, *alternatives]
    grammar_transcript: str | None
    free_transcript: str | None
    duration: float  # seconds of audio decoded
    truncated: bool = False  # audio beyond MAX_UTTERANCE_SECONDS was ignored
    # Whether the decoded audio rises and falls like speech (vad.has_speech_dynamics); steady
    # noise or a tone is forced onto some grammar word, and must not be routed.
    speech_like: bool = True
    # The keywords-only pass (no fillers): its words with Vosk's word confidence.
    keyword_words: list[Word] = field(default_factory=list)
    # The menu-words pass (one word per core intent, nothing else): its words, confidences.
    menu_words: list[Word] = field(default_factory=list)
    # Which of those passes ran (an empty word list may mean "heard nothing").
    keyword_pass: bool = False
    menu_pass: bool = False
    # The keywords-only grammar's n-best hypotheses, best first, and their posterior weights:
    # the second and third guesses a doubtful first offer falls back on.
    keyword_alternatives: list[str] = field(default_factory=list)
    keyword_weights: list[float] = field(default_factory=list)


@dataclass
class _Pass:
    recognizer: Any
    segments: list[dict[str, Any]] = field(default_factory=list)


class RecognitionStream:
    """One utterance being decoded as it arrives. Feeds are serialised; decoding is pooled."""

    def __init__(
        self,
        model: Any,
        pool: ThreadPoolExecutor,
        *,
        sample_rate: int,
        grammar: Sequence[str],
        alternatives: int,
        free_pass: bool,
        keywords: Sequence[str] = (),
        menu: Sequence[str] = (),
    ) -> None:
        import vosk

        self._pool = pool
        self._sample_rate = sample_rate
        self._max_bytes = int(MAX_UTTERANCE_SECONDS * sample_rate) * SAMPLE_WIDTH
        self._bytes = 0
        self._samples = 0  # samples decoded so far: where the dither sequence is
        self._levels: list[float] = []  # RMS of each 20 ms frame, for speech_like
        self._frame_tail = b""
        self._block = bytearray()  # audio waiting to fill a DECODE_BLOCK_BYTES block
        self._truncated = False
        self._lock = asyncio.Lock()
        self._grammar: _Pass | None = None
        self._free: _Pass | None = None
        self._keywords: _Pass | None = None
        self._keyword_nbest: _Pass | None = None
        if grammar:
            # Vosk reads the grammar as raw UTF-8: \u escapes would not match any word.
            grammar_json = json.dumps(list(grammar), ensure_ascii=False)
            rec = vosk.KaldiRecognizer(model, sample_rate, grammar_json)
            rec.SetWords(True)
            rec.SetMaxAlternatives(alternatives)
            self._grammar = _Pass(rec)
        self._menu: _Pass | None = None
        # No n-best in these: one hypothesis carries per-word confidences (the margin).
        if keywords:
            self._keywords = _Pass(_word_recogniser(model, sample_rate, keywords))
            nbest = _word_recogniser(model, sample_rate, keywords)
            nbest.SetMaxAlternatives(KEYWORD_ALTERNATIVES)
            self._keyword_nbest = _Pass(nbest)
        if menu:
            self._menu = _Pass(_word_recogniser(model, sample_rate, menu))
        if free_pass:
            rec = vosk.KaldiRecognizer(model, sample_rate)
            rec.SetWords(True)
            self._free = _Pass(rec)

    async def feed(self, pcm: bytes) -> str | None:
        """Decode more audio; returns the partial transcript so far, if any."""
        room = self._max_bytes - self._bytes
        if room <= 0:
            self._truncated = True
            return None
        if len(pcm) > room:
            pcm = pcm[: room - room % SAMPLE_WIDTH]
            self._truncated = True
        self._bytes += len(pcm)
        async with self._lock:
            self._block += pcm
            whole = len(self._block) - len(self._block) % DECODE_BLOCK_BYTES
            if not whole:
                return None
            blocks = bytes(self._block[:whole])
            del self._block[:whole]
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._accept_blocks, blocks)

    def _accept_blocks(self, pcm: bytes) -> str | None:
        partial = None
        for offset in range(0, len(pcm), DECODE_BLOCK_BYTES):
            partial = self._accept(pcm[offset : offset + DECODE_BLOCK_BYTES])
        return partial

    def _accept(self, pcm: bytes) -> str | None:
        self._measure(pcm)
        pcm = dithered(pcm, self._samples)
        self._samples += len(pcm) // SAMPLE_WIDTH
        partial: str | None = None
        for current in self._passes():
            if current is None:
                continue
            # True means Vosk's endpointer closed a segment (a pause): keep it, go on.
            if current.recognizer.AcceptWaveform(pcm):
                current.segments.append(json.loads(current.recognizer.Result()))
            elif partial is None:
                partial = json.loads(current.recognizer.PartialResult()).get("partial") or None
        return partial

    def _passes(self) -> tuple[_Pass | None, ...]:
        return (self._grammar, self._free, self._keywords, self._keyword_nbest, self._menu)

    async def finish(self) -> RecognitionResult:
        async with self._lock:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._finish)

    def _measure(self, pcm: bytes) -> None:
        """Frame levels as the audio passes, so finish() does not have to go over it again."""
        audio = self._frame_tail + pcm
        whole = len(audio) - len(audio) % FRAME_BYTES
        self._levels.extend(
            frame_rms(audio[i : i + FRAME_BYTES]) for i in range(0, whole, FRAME_BYTES)
        )
        self._frame_tail = audio[whole:]

    def _speech_like(self) -> bool:
        if self._sample_rate != SAMPLE_RATE:
            return True  # the level rule is tuned for telephone audio
        return has_speech_dynamics(levels=self._levels)

    def _finish(self) -> RecognitionResult:
        if self._block:
            self._accept(bytes(self._block))
            self._block.clear()
        for current in self._passes():
            if current is not None:
                current.segments.append(json.loads(current.recognizer.FinalResult()))
        duration = self._bytes / SAMPLE_WIDTH / self._sample_rate
        speech_like = self._speech_like()
        free_text = _join_best(self._free.segments) if self._free is not None else None
        if self._grammar is None:
            words = _words(self._free.segments) if self._free is not None else []
            return RecognitionResult(
                free_text or "",
                words,
                [],
                [1.0],
                None,
                free_text,
                duration,
                self._truncated,
                speech_like,
            )
        hypotheses, weights = _nbest(self._grammar.segments)
        keyword_alternatives, keyword_weights = (
            _nbest(self._keyword_nbest.segments) if self._keyword_nbest is not None else ([], [])
        )
        return RecognitionResult(
            transcript=hypotheses[0],
            words=_words(self._grammar.segments, weights[0]),
            alternatives=hypotheses[1:],
            weights=weights,
            grammar_transcript=hypotheses[0],
            free_transcript=free_text,
            duration=duration,
            truncated=self._truncated,
            speech_like=speech_like,
            keyword_words=_words(self._keywords.segments) if self._keywords is not None else [],
            menu_words=_words(self._menu.segments) if self._menu is not None else [],
            keyword_pass=self._keywords is not None,
            menu_pass=self._menu is not None,
            keyword_alternatives=keyword_alternatives,
            keyword_weights=keyword_weights,
        )


def _word_recogniser(model: Any, sample_rate: int, words: Sequence[str]) -> Any:
    import vosk

    rec = vosk.KaldiRecognizer(model, sample_rate, json.dumps(list(words), ensure_ascii=False))
    rec.SetWords(True)
    return rec


def _alternatives(segment: dict[str, Any]) -> list[dict[str, Any]]:
    """A Vosk result as a list of hypotheses, whether n-best was on or not."""
    if "alternatives" in segment:
        return list(segment["alternatives"])
    return [segment]


def _join_best(segments: Sequence[dict[str, Any]]) -> str:
    texts = (_alternatives(s)[0].get("text", "") if _alternatives(s) else "" for s in segments)
    return " ".join(t for t in texts if t).strip()


def _posteriors(scores: Sequence[float]) -> list[float]:
    """Vosk's n-best scores are log-likelihood-like: softmax them into weights."""
    if not scores:
        return [1.0]
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def _nbest(segments: Sequence[dict[str, Any]]) -> tuple[list[str], list[float]]:
    """Whole-utterance hypotheses: the i-th best of every segment joined, weights averaged.

    Vosk's endpointer may cut an utterance at a pause; joining by rank is an approximation of
    the true n-best over the whole utterance, good enough for voting.
    """
    spoken = [s for s in segments if any(a.get("text") for a in _alternatives(s))]
    if not spoken:
        return [""], [1.0]
    per_segment = []
    for segment in spoken:
        alts = _alternatives(segment)
        scores = [float(a.get("confidence", 0.0)) for a in alts]
        per_segment.append((alts, _posteriors(scores) if "alternatives" in segment else [1.0]))
    depth = max(len(alts) for alts, _ in per_segment)
    hypotheses: list[str] = []
    weights: list[float] = []
    for rank in range(depth):
        texts, ws = [], []
        for alts, posts in per_segment:
            i = min(rank, len(alts) - 1)
            texts.append(alts[i].get("text", ""))
            ws.append(posts[i] if rank < len(alts) else 0.0)
        hypotheses.append(" ".join(t for t in texts if t).strip())
        weights.append(sum(ws) / len(ws))
    return hypotheses, weights


def _words(segments: Sequence[dict[str, Any]], posterior: float | None = None) -> list[Word]:
    words: list[Word] = []
    for segment in segments:
        alts = _alternatives(segment)
        if not alts:
            continue
        for item in alts[0].get("result", []):
            conf = item.get("conf", posterior if posterior is not None else 1.0)
            words.append(Word(item["word"], float(conf), float(item["start"]), float(item["end"])))
    return words
