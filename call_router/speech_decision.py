"""Route, confirm, or ask again: the speech menu's decision from two recogniser passes. Pure.

The grammar pass (keywords + filler words, n-best) is careful: fillers catch the words around a
keyword and most non-requests, so what it routes is seldom wrong, but a filler can also swallow
a real keyword. The keywords-only pass cannot lose a keyword to a filler, but it forces every
sound onto some keyword; Vosk's confidence in that word is the margin. Together:

- both passes name the same intent, the grammar pass above its threshold → route;
- otherwise a keyword heard with enough confidence (or the grammar pass' own doubtful
  candidate) → offer it: "you said heating? press 1" — a wrong guess costs the caller one
  question, never a wrong queue;
- otherwise the intent with the most evidence across the passes (`ranked_intents`), if any;
- and whatever was offered, the next intent by that evidence is the runner-up: offered once
  more if the caller refuses the first guess ("asked twice"), before the keypad.

The thresholds were decided on the bench's tuning corpora (bench/asr), never on its held-out
split; BENCHMARKS.md has the numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from call_router.intents import UNKNOWN_WORD, IntentMatch, Phrasebook

# Vosk's confidence in the keyword the keywords-only pass picked, below which it is not even
# offered (sounds forced onto a keyword score low).
KEYWORD_OFFER_CONFIDENCE = 0.5
# The grammar pass' confidence (call_router.intents.classify) needed to route without asking,
# on top of all passes agreeing.
ROUTE_CONFIDENCE = 0.6
# Evidence of a keyword heard after the first one in a hypothesis, relative to the first: a
# sentence's other words land on keywords too, but the caller's word is usually first.
LATER_KEYWORD_WEIGHT = 0.3


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


def ranked_intents(
    keyword_hypotheses: Sequence[tuple[str, float]],
    menu_words: Sequence[tuple[str, float]],
    grammar: IntentMatch,
    phrasebook: Phrasebook,
    allowed: Iterable[str] | None = None,
) -> list[str]:
    """Intents by the evidence of all passes, most first: the keywords-only pass' n-best
    (each hypothesis' posterior weight to the intents of its keywords), the menu-words pass'
    words (Vosk's confidence) and the grammar pass' answer or candidate (its confidence). A
    keyword after a hypothesis' first counts LATER_KEYWORD_WEIGHT as much."""
    allowed_set = set(allowed) if allowed is not None else None
    evidence: dict[str, float] = {}

    def add(intent: str, weight: float) -> None:
        if allowed_set is None or intent in allowed_set:
            evidence[intent] = evidence.get(intent, 0.0) + weight

    for text, weight in keyword_hypotheses:
        heard = keyword_guesses([(w, 1.0) for w in text.split()], phrasebook)
        for rank, intent in enumerate(dict.fromkeys(g.intent for g in heard)):
            add(intent, weight * (1.0 if rank == 0 else LATER_KEYWORD_WEIGHT))
    menu = keyword_guesses(menu_words, phrasebook)
    for rank, intent in enumerate(dict.fromkeys(g.intent for g in menu)):
        confidence = next(g.confidence for g in menu if g.intent == intent)
        add(intent, confidence * (1.0 if rank == 0 else LATER_KEYWORD_WEIGHT))
    answer = grammar.intent or grammar.candidate
    if answer is not None:
        add(answer, grammar.confidence)
    return sorted(evidence, key=lambda intent: -evidence[intent])


def decide(
    grammar: IntentMatch,
    keywords: Sequence[KeywordGuess],
    menu: KeywordGuess | None = None,
    *,
    keyword_pass: bool = True,
    menu_intents: Iterable[str] = (),
    ranked: Sequence[str] = (),
    route_confidence: float = ROUTE_CONFIDENCE,
    offer_confidence: float = KEYWORD_OFFER_CONFIDENCE,
) -> IntentMatch:
    """The menu's answer: `intent` set → route; `intent` None with a `candidate` and reason
    "confirm" → ask the caller to confirm it; neither → not understood.

    `grammar` is the filler grammar's classification; `keywords` the keywords-only pass'
    keywords in the order heard (empty: it heard none, or did not run: `keyword_pass` False);
    `menu` the menu-words pass' first word, which can only name `menu_intents` (empty: the
    pass did not run); `ranked` every pass' intents by evidence (`ranked_intents`): what is
    offered when nothing else is, and the runner-up of every offer."""
    if grammar.reason == "no_speech":
        return grammar
    match = _first_answer(
        grammar, keywords, menu, keyword_pass=keyword_pass, menu_intents=menu_intents,
        route_confidence=route_confidence, offer_confidence=offer_confidence,
    )  # fmt: skip
    if match.intent is not None:
        return match
    if match.reason != "confirm" and ranked:
        match = IntentMatch(None, match.confidence, match.matched, "confirm", ranked[0])
    if match.reason != "confirm":
        return match
    runner_up = next((i for i in ranked if i != match.candidate), None)
    return replace(match, runner_up=runner_up)


def _first_answer(
    grammar: IntentMatch,
    keywords: Sequence[KeywordGuess],
    menu: KeywordGuess | None,
    *,
    keyword_pass: bool,
    menu_intents: Iterable[str],
    route_confidence: float,
    offer_confidence: float,
) -> IntentMatch:
    """The passes' one answer: route, offer a guess, or not understood (see the module doc)."""
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
