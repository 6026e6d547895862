"""Route, confirm, or ask again: the speech menu's decision from two recogniser passes. Pure.

The grammar pass (keywords + filler words, n-best) is careful: fillers catch the words around a
keyword and most non-requests, so what it routes is seldom wrong, but a filler can also swallow
a real keyword. The keywords-only pass cannot lose a keyword to a filler, but it forces every
sound onto some keyword; Vosk's confidence in that word is the margin. Together:

- both passes name the same intent, the grammar pass above its threshold → route;
- otherwise a keyword heard with enough confidence (or the grammar pass' own doubtful
  candidate) → offer it: "you said heating? press 1" — a wrong guess costs the caller one
  question, never a wrong queue;
- otherwise → not understood, ask again.

The thresholds were decided on the bench's tuning corpora (bench/asr), never on its held-out
split; BENCHMARKS.md has the numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from call_router.intents import UNKNOWN_WORD, IntentMatch, Phrasebook

# Vosk's confidence in the keyword the keywords-only pass picked, below which it is not even
# offered (sounds forced onto a keyword score low).
KEYWORD_OFFER_CONFIDENCE = 0.5
# The grammar pass' confidence (call_router.intents.classify) needed to route without asking,
# on top of all passes agreeing.
ROUTE_CONFIDENCE = 0.6


@dataclass(frozen=True)
class KeywordGuess:
    intent: str
    confidence: float  # Vosk's word confidence (0-1)
    word: str


def keyword_guess(
    words: Sequence[tuple[str, float]],
    phrasebook: Phrasebook,
    allowed: Iterable[str] | None = None,
) -> KeywordGuess | None:
    """The first keyword of an allowed intent the pass heard."""
    guesses = keyword_guesses(words, phrasebook, allowed)
    return guesses[0] if guesses else None


def keyword_guesses(
    words: Sequence[tuple[str, float]],
    phrasebook: Phrasebook,
    allowed: Iterable[str] | None = None,
) -> list[KeywordGuess]:
    """Every keyword of an allowed intent the pass heard, in the order heard."""
    allowed_set = set(allowed) if allowed is not None else None
    guesses = []
    for word, confidence in words:
        if word == UNKNOWN_WORD:
            continue
        hits = phrasebook.spot(word)
        hits = [h for h in hits if allowed_set is None or h.intent in allowed_set]
        if hits and hits[0].score >= 1.0:
            guesses.append(KeywordGuess(hits[0].intent, float(confidence), word))
    return guesses


def decide(
    grammar: IntentMatch,
    keywords: Sequence[KeywordGuess],
    menu: KeywordGuess | None = None,
    *,
    keyword_pass: bool = True,
    menu_intents: Iterable[str] = (),
    route_confidence: float = ROUTE_CONFIDENCE,
    offer_confidence: float = KEYWORD_OFFER_CONFIDENCE,
) -> IntentMatch:
    """The menu's answer: `intent` set → route; `intent` None with a `candidate` and reason
    "confirm" → ask the caller to confirm it; neither → not understood.

    `grammar` is the filler grammar's classification; `keywords` the keywords-only pass'
    keywords in the order heard (empty: it heard none, or did not run: `keyword_pass` False);
    `menu` the menu-words pass' first word, which can only name `menu_intents` (empty: the
    pass did not run)."""
    if grammar.reason == "no_speech":
        return grammar
    chosen = grammar.intent
    checkable = set(menu_intents)
    if (
        chosen is not None
        and grammar.confidence >= route_confidence
        and (not keyword_pass or (keywords and keywords[0].intent == chosen))
        and (not checkable or (chosen in checkable and menu is not None and menu.intent == chosen))
    ):
        return grammar
    if (
        chosen is not None
        and chosen not in checkable
        and (menu is None or grammar.confidence >= menu.confidence)
    ):
        # Gas, meters, bills ...: the menu pass cannot check them, so the grammar's sure
        # answer is confirmed rather than routed, and offered before a less sure menu word.
        return _offer(grammar, chosen)
    for guess in (menu, keywords[0] if keywords else None):
        if guess is not None and guess.confidence >= offer_confidence:
            confidence = round(guess.confidence, 4)
            return IntentMatch(None, confidence, guess.word, "confirm", guess.intent)
    offer = chosen or grammar.candidate
    if offer is not None:
        return _offer(grammar, offer)
    return IntentMatch(None, grammar.confidence, grammar.matched, grammar.reason, None)


def _offer(grammar: IntentMatch, candidate: str) -> IntentMatch:
    return IntentMatch(None, grammar.confidence, grammar.matched, "confirm", candidate)
