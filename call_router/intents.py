"""What the caller asked for: transcript (+ n-best alternatives) → intent and confidence. Pure.

The phrase sets live in `ivr_flows/intents/<lang>.yaml`. A recogniser hears *something* for
every sound, so the classifier is built to doubt: keywords must survive normalisation,
Russian/English word forms are folded with a Snowball stemmer (вода/воды/водой), near misses are
caught with rapidfuzz but scored lower, the n-best alternatives vote, and an optional free-form
pass must not contradict the grammar pass. Below the threshold the answer is "no intent" and the
caller is asked again (then keypad, then the coordinator).

Only `load_phrasebook` touches the file system; everything else works on plain values.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import snowballstemmer
import yaml
from rapidfuzz import fuzz, process

# Every language uses these ids, so a flow routes the same whatever the caller's language.
CORE_INTENTS = ("water", "heating", "electricity", "lift", "operator")
OPTIONAL_INTENTS = ("sewage", "gas", "meters", "billing")
KNOWN_INTENTS = CORE_INTENTS + OPTIONAL_INTENTS

DEFAULT_THRESHOLD = 0.6
# Near misses shorter than this are too easy to hit by chance ("свет" vs "сел").
FUZZY_MIN_LENGTH = 4
FUZZY_CUTOFF = 84.0
# A fuzzy hit is weaker evidence than an exact one, even at a perfect ratio.
FUZZY_WEIGHT = 0.85
# When the recogniser's best hypothesis disagrees with the n-best vote, trust neither fully.
TOP_DISAGREES_FACTOR = 0.75
# A free-form pass that hears another intent halves our belief; one that agrees closes half
# the remaining gap. A free-form pass that hears no keyword says nothing (it is often garbage).
FREE_CONTRADICTS_FACTOR = 0.5
FREE_AGREES_GAIN = 0.5

_PUNCT = re.compile(r"[^\w\s-]+", re.UNICODE)
# Vosk's placeholder for out-of-vocabulary sound; never evidence of anything.
UNKNOWN_WORD = "[unk]"


class PhrasebookError(ValueError):
    """An intent phrase file is missing, malformed or contradicts itself."""


@dataclass(frozen=True)
class IntentMatch:
    intent: str | None
    confidence: float
    matched: str | None  # the keyword/phrase that decided, as written in the phrase file
    reason: str  # matched | below_threshold | no_keyword | ambiguous | empty | no_speech
    # The best guess even when it is below the threshold: what a confirmation prompt offers.
    candidate: str | None = None
    # The next best guess: offered once more when the caller refuses `candidate`.
    runner_up: str | None = None


@dataclass(frozen=True)
class Hit:
    intent: str
    score: float
    matched: str


@dataclass(frozen=True)
class Phrasebook:
    """One language's intents: keywords, multi-word phrases, fillers, grammar particles."""

    language: str
    keywords: Mapping[str, tuple[str, ...]]
    phrases: Mapping[str, tuple[str, ...]]
    fillers: tuple[str, ...] = ()
    particles: tuple[str, ...] = ()
    stemmer: str | None = None
    _index: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False, compare=False)
    _phrase_index: list[tuple[tuple[str, ...], str, str]] = field(
        default_factory=list, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        stem = _stem_function(self.stemmer)
        object.__setattr__(self, "_stem", stem)
        for intent, words in self.keywords.items():
            for word in words:
                for token in normalise(word).split():
                    key = stem(token)
                    owner = self._index.get(key)
                    if owner is not None and owner[0] != intent:
                        raise PhrasebookError(
                            f"{self.language}: keyword {word!r} of {intent!r} has the same "
                            f"stem as {owner[1]!r} of {owner[0]!r}"
                        )
                    # The first form listed (the lemma) names the match.
                    self._index.setdefault(key, (intent, word))
        for intent, phrases in self.phrases.items():
            for phrase in phrases:
                tokens = tuple(stem(token) for token in normalise(phrase).split())
                if tokens:
                    self._phrase_index.append((tokens, intent, phrase))
        # Longest phrases first: "нет горячей воды" beats "нет воды".
        self._phrase_index.sort(key=lambda item: -len(item[0]))

    @property
    def intents(self) -> tuple[str, ...]:
        return tuple(self.keywords)

    def stem(self, token: str) -> str:
        return self._stem(token)  # type: ignore[attr-defined,no-any-return]

    def grammar_words(
        self, intents: Iterable[str] | None = None, *, fillers: bool = True
    ) -> list[str]:
        """Words for a recogniser grammar: the keywords (of `intents`), plus the fillers."""
        wanted = set(intents) if intents is not None else set(self.keywords)
        words: list[str] = []
        for intent, keywords in self.keywords.items():
            if intent in wanted:
                words.extend(w for keyword in keywords for w in normalise(keyword).split())
        if fillers:
            words.extend(normalise(filler) for filler in self.fillers)
        return list(dict.fromkeys(w for w in words if w))

    def menu_intents(self, intents: Iterable[str] | None = None) -> tuple[str, ...]:
        """The core intents (of `intents`): the ones the menu-words grammar can name."""
        wanted = set(intents) if intents is not None else set(self.keywords)
        return tuple(i for i in CORE_INTENTS if i in wanted and self.keywords.get(i))

    def menu_words(self, intents: Iterable[str] | None = None) -> list[str]:
        """The first keyword of each core intent (of `intents`): the five menu words."""
        words = [normalise(self.keywords[i][0]).split()[0] for i in self.menu_intents(intents)]
        return list(dict.fromkeys(words))

    def spot(self, text: str) -> list[Hit]:
        """Every intent the text mentions, with the best evidence for each."""
        tokens = [t for t in normalise(text).split() if t != UNKNOWN_WORD]
        best: dict[str, Hit] = {}

        def keep(hit: Hit) -> None:
            if hit.intent not in best or hit.score > best[hit.intent].score:
                best[hit.intent] = hit

        stems = [self.stem(t) for t in tokens]
        for phrase_tokens, intent, phrase in self._phrase_index:
            if _contains(stems, phrase_tokens):
                keep(Hit(intent, 1.0, phrase))
        for token in tokens:
            hit = self._token_hit(token)
            if hit is not None:
                keep(hit)
        return sorted(best.values(), key=lambda h: -h.score)

    def _token_hit(self, token: str) -> Hit | None:
        for candidate in self._without_particles(token):
            owner = self._index.get(self.stem(candidate))
            if owner is not None:
                return Hit(owner[0], 1.0, owner[1])
        key = self.stem(token)
        if len(key) < FUZZY_MIN_LENGTH or not self._index:
            return None
        found = process.extractOne(
            key, self._index.keys(), scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF
        )
        if found is None:
            return None
        intent, word = self._index[found[0]]
        return Hit(intent, FUZZY_WEIGHT * found[1] / 100.0, word)

    def _without_particles(self, token: str) -> list[str]:
        """The token, then the token with a trailing particle removed (난방이 → 난방)."""
        forms = [token]
        for particle in sorted(self.particles, key=len, reverse=True):
            if token.endswith(particle) and len(token) > len(particle):
                forms.append(token[: -len(particle)])
        return forms


def _contains(tokens: Sequence[str], phrase: Sequence[str]) -> bool:
    n = len(phrase)
    return any(tuple(tokens[i : i + n]) == tuple(phrase) for i in range(len(tokens) - n + 1))


def _stem_function(name: str | None) -> Any:
    if not name:
        return lambda token: token
    try:
        stemmer = snowballstemmer.stemmer(name)
    except KeyError as exc:
        raise PhrasebookError(f"unknown stemmer {name!r}") from exc
    return stemmer.stemWord


def normalise(text: str) -> str:
    """Lower case, NFC, ё→е, punctuation out, single spaces; `[unk]` survives."""
    text = unicodedata.normalize("NFC", text).lower().replace("ё", "е")
    tokens: list[str] = []
    for index, part in enumerate(text.split(UNKNOWN_WORD)):
        if index:
            tokens.append(UNKNOWN_WORD)
        tokens.extend(_PUNCT.sub(" ", part).split())
    return " ".join(tokens)


# --- classification ------------------------------------------------------------------------


def classify(
    transcript: str,
    alternatives: Sequence[str] = (),
    language: str | None = None,
    *,
    phrasebook: Phrasebook,
    threshold: float = DEFAULT_THRESHOLD,
    weights: Sequence[float] | None = None,
    free_transcript: str | None = None,
    allowed: Iterable[str] | None = None,
) -> IntentMatch:
    """The caller's intent, or None with the reason.

    `transcript` is the recogniser's best hypothesis, `alternatives` the rest of its n-best list
    (best first; a copy of the transcript among them is ignored). `weights` are the posterior
    weights of [transcript, *alternatives]; without them the ranks are weighted 1, 1/2, 1/3...
    `free_transcript` is a free-form (no grammar) pass over the same audio, if one was run.
    """
    if language is not None and language != phrasebook.language:
        raise PhrasebookError(f"phrasebook is {phrasebook.language!r}, asked for {language!r}")
    allowed_set = set(allowed) if allowed is not None else None
    hypotheses, hyp_weights = _hypotheses(transcript, alternatives, weights)
    if not any(normalise(h) for h in hypotheses):
        return IntentMatch(None, 0.0, None, "empty")

    votes: dict[str | None, float] = {}
    evidence: dict[str, Hit] = {}
    top_choice: str | None = None
    ambiguous = False
    for index, (hypothesis, weight) in enumerate(zip(hypotheses, hyp_weights, strict=True)):
        hits = phrasebook.spot(hypothesis)
        hit = _decisive_hit(hits, allowed_set)
        ambiguous = ambiguous or (hit is None and len(hits) > 1)
        choice = hit.intent if hit is not None else None
        if index == 0:
            top_choice = choice
        if hit is None:
            votes[None] = votes.get(None, 0.0) + weight
            continue
        votes[hit.intent] = votes.get(hit.intent, 0.0) + weight * hit.score
        # Evidence lost to a near miss still counts as "no intent" for the rest of its weight.
        votes[None] = votes.get(None, 0.0) + weight * (1.0 - hit.score)
        if hit.intent not in evidence or hit.score > evidence[hit.intent].score:
            evidence[hit.intent] = hit

    total = sum(hyp_weights)
    intents = {k: v for k, v in votes.items() if k is not None}
    if not intents:
        return IntentMatch(None, 0.0, None, "ambiguous" if ambiguous else "no_keyword")
    best = max(intents, key=lambda k: intents[k])
    confidence = intents[best] / total
    if top_choice != best:
        confidence *= TOP_DISAGREES_FACTOR

    if free_transcript is not None:
        free_hit = _decisive_hit(phrasebook.spot(free_transcript), allowed_set)
        if free_hit is not None and free_hit.intent == best:
            confidence += (1.0 - confidence) * FREE_AGREES_GAIN * free_hit.score
        elif free_hit is not None:
            confidence *= FREE_CONTRADICTS_FACTOR

    confidence = round(min(confidence, 1.0), 4)
    matched = evidence[best].matched
    if confidence < threshold:
        return IntentMatch(None, confidence, matched, "below_threshold", candidate=best)
    return IntentMatch(best, confidence, matched, "matched", candidate=best)


def _hypotheses(
    transcript: str, alternatives: Sequence[str], weights: Sequence[float] | None
) -> tuple[list[str], list[float]]:
    texts = [transcript, *alternatives]
    if weights is None:
        weights = [1.0 / (rank + 1) for rank in range(len(texts))]
    if len(weights) != len(texts):
        raise ValueError(f"{len(weights)} weights for {len(texts)} hypotheses")
    seen: set[str] = set()
    kept_texts: list[str] = []
    kept_weights: list[float] = []
    for text, weight in zip(texts, weights, strict=True):
        key = normalise(text)
        if key in seen:
            continue
        seen.add(key)
        kept_texts.append(text)
        kept_weights.append(max(float(weight), 0.0))
    if sum(kept_weights) <= 0:
        kept_weights = [1.0] * len(kept_texts)
    return kept_texts, kept_weights


def _decisive_hit(hits: Sequence[Hit], allowed: set[str] | None) -> Hit | None:
    """The one intent a hypothesis names; two equally strong intents decide nothing."""
    if allowed is not None:
        hits = [h for h in hits if h.intent in allowed]
    if not hits:
        return None
    if len(hits) > 1 and hits[1].score >= hits[0].score:
        return None
    return hits[0]


def naive_keyword_intent(transcript: str, phrasebook: Phrasebook) -> str | None:
    """The baseline the benchmark compares against: the first exact keyword wins, no doubt."""
    for token in normalise(transcript).split():
        for intent, keywords in phrasebook.keywords.items():
            if token in (normalise(k) for k in keywords):
                return intent
    return None


# --- phrase files ----------------------------------------------------------------------------


def parse_phrasebook(doc: Any, source: str = "phrasebook") -> Phrasebook:
    """A Phrasebook from a parsed YAML document; every problem is a PhrasebookError."""
    if not isinstance(doc, dict):
        raise PhrasebookError(f"{source}: expected a mapping at the top")
    language = doc.get("language")
    if not isinstance(language, str) or not language:
        raise PhrasebookError(f"{source}: `language` is missing")
    intents = doc.get("intents")
    if not isinstance(intents, dict) or not intents:
        raise PhrasebookError(f"{source}: `intents` must map intent ids to keywords/phrases")
    unknown = [i for i in intents if i not in KNOWN_INTENTS]
    if unknown:
        raise PhrasebookError(
            f"{source}: unknown intent ids {unknown}; known: {', '.join(KNOWN_INTENTS)}"
        )
    missing = [i for i in CORE_INTENTS if i not in intents]
    if missing:
        raise PhrasebookError(f"{source}: intents missing: {', '.join(missing)}")
    keywords: dict[str, tuple[str, ...]] = {}
    phrases: dict[str, tuple[str, ...]] = {}
    for intent, spec in intents.items():
        if not isinstance(spec, dict):
            raise PhrasebookError(f"{source}: intent {intent!r} needs `keywords` (and `phrases`)")
        keywords[intent] = _strings(spec.get("keywords"), f"{source}: {intent}.keywords")
        phrases[intent] = _strings(spec.get("phrases", []), f"{source}: {intent}.phrases")
        if not keywords[intent]:
            raise PhrasebookError(f"{source}: intent {intent!r} has no keywords")
    return Phrasebook(
        language=language,
        keywords=keywords,
        phrases=phrases,
        fillers=_strings(doc.get("fillers", []), f"{source}: fillers"),
        particles=_strings(doc.get("particles", []), f"{source}: particles"),
        stemmer=doc.get("stemmer") or None,
    )


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PhrasebookError(f"{where}: expected a list of words")
    booleans = [v for v in value if isinstance(v, bool)]
    if booleans:
        # YAML 1.1 reads a bare yes/no/on/off as a boolean: the word is lost unless quoted.
        raise PhrasebookError(f"{where}: {booleans} read as booleans; quote yes/no/on/off")
    if not all(isinstance(v, str | int) for v in value):
        raise PhrasebookError(f"{where}: expected a list of words")
    return tuple(str(v).strip() for v in value if str(v).strip())


def load_phrasebook(flows_dir: Path, language: str) -> Phrasebook:
    path = flows_dir / "intents" / f"{language}.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PhrasebookError(f"no intent phrases for language {language!r}: {path}") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise PhrasebookError(f"cannot read {path.name}: {exc}") from exc
    book = parse_phrasebook(doc, path.name)
    if book.language != language:
        raise PhrasebookError(f"{path.name}: says language {book.language!r}, not {language!r}")
    return book
