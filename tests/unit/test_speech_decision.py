"""Route, confirm or ask again, from the three recogniser passes (call_router.speech_decision)."""

from __future__ import annotations

from pathlib import Path

import pytest

from call_router.intents import CORE_INTENTS, IntentMatch, Phrasebook, classify, load_phrasebook
from call_router.speech_decision import KeywordGuess, decide, keyword_guesses, ranked_intents

FLOWS = Path(__file__).resolve().parents[2] / "ivr_flows"


@pytest.fixture(scope="module")
def ko() -> Phrasebook:
    return load_phrasebook(FLOWS, "ko")


def passes(
    ko: Phrasebook, grammar: str, keywords: list[tuple[str, float]], menu: list[tuple[str, float]]
) -> IntentMatch:
    found = keyword_guesses(menu, ko)
    return decide(
        classify(grammar, phrasebook=ko),
        keyword_guesses(keywords, ko),
        found[0] if found else None,
        menu_intents=CORE_INTENTS,
    )


def test_all_passes_agreeing_route(ko: Phrasebook) -> None:
    match = passes(ko, "난방 안 돼요", [("난방", 1.0)], [("난방", 0.9)])
    assert (match.intent, match.reason) == ("heating", "matched")


def test_a_keyword_swallowed_by_a_filler_is_offered_not_lost(ko: Phrasebook) -> None:
    # The case: the bare «전기» came out of the filler grammar as «어요».
    match = passes(ko, "어요", [("전기", 0.9)], [("전기", 1.0)])
    assert (match.intent, match.reason, match.candidate) == (None, "confirm", "electricity")


def test_passes_disagreeing_ask_the_caller_to_confirm_the_menu_word(ko: Phrasebook) -> None:
    match = passes(ko, "난방 아요", [("난방", 1.0)], [("물", 0.95)])
    assert (match.intent, match.reason, match.candidate) == (None, "confirm", "water")


def test_a_sure_answer_the_menu_pass_cannot_check_is_confirmed(ko: Phrasebook) -> None:
    match = passes(ko, "가스 냄새", [("난방", 1.0), ("가스", 1.0)], [("난방", 0.8)])
    assert (match.intent, match.reason, match.candidate) == (None, "confirm", "gas")


def test_weak_keywords_and_no_grammar_intent_are_not_understood(ko: Phrasebook) -> None:
    match = passes(ko, "안녕하세요", [("난방", 0.2)], [("난방", 0.3)])
    assert (match.intent, match.candidate) == (None, None)


def test_no_speech_stays_no_speech() -> None:
    silent = IntentMatch(None, 0.0, None, "no_speech")
    assert decide(silent, [KeywordGuess("water", 1.0, "물")], None) is silent


def test_without_the_extra_passes_the_grammar_alone_decides(ko: Phrasebook) -> None:
    sure = decide(classify("난방", phrasebook=ko), [], None, keyword_pass=False)
    assert sure.intent == "heating"
    doubtful = classify("난방 전기", phrasebook=ko)
    assert decide(doubtful, [], None, keyword_pass=False).intent is None


NOTHING = IntentMatch(None, 0.0, None, "no_keyword")


def test_intents_are_ranked_by_the_evidence_of_every_pass(ko: Phrasebook) -> None:
    # The n-best's first keywords (0.6 heating, 0.4 water), the menu word (water 0.5): water.
    nbest = [("보일러 물", 0.6), ("물", 0.4)]
    assert ranked_intents(nbest, [("물", 0.5)], NOTHING, ko) == ["water", "heating"]
    # A keyword after a hypothesis' first counts less: here it is all electricity has.
    assert ranked_intents([("난방 전기", 1.0)], [], NOTHING, ko) == ["heating", "electricity"]
    grammar = IntentMatch(None, 0.9, "가스", "below_threshold", candidate="gas")
    assert ranked_intents(nbest, [], grammar, ko)[0] == "gas"


def test_the_ranking_keeps_to_the_question_s_intents(ko: Phrasebook) -> None:
    nbest = [("보일러", 0.7), ("물", 0.3)]
    assert ranked_intents(nbest, [], NOTHING, ko, allowed=["water", "gas"]) == ["water"]


def test_an_offer_carries_the_next_intent_by_evidence_as_runner_up(ko: Phrasebook) -> None:
    match = decide(
        classify("난방 아요", phrasebook=ko),
        keyword_guesses([("난방", 1.0)], ko),
        KeywordGuess("water", 0.95, "물"),
        menu_intents=CORE_INTENTS,
        ranked=["water", "heating", "lift"],
    )
    assert (match.reason, match.candidate, match.runner_up) == ("confirm", "water", "heating")


def test_with_nothing_else_to_offer_the_best_ranked_intent_is_offered(ko: Phrasebook) -> None:
    match = decide(NOTHING, [], None, menu_intents=CORE_INTENTS, ranked=["lift", "water"])
    assert (match.intent, match.reason, match.candidate, match.runner_up) == (
        None,
        "confirm",
        "lift",
        "water",
    )
    alone = decide(NOTHING, [], None, menu_intents=CORE_INTENTS, ranked=["lift"])
    assert (alone.candidate, alone.runner_up) == ("lift", None)


def test_a_routed_answer_has_no_runner_up(ko: Phrasebook) -> None:
    match = decide(
        classify("난방 안 돼요", phrasebook=ko),
        keyword_guesses([("난방", 1.0)], ko),
        KeywordGuess("heating", 0.9, "난방"),
        menu_intents=CORE_INTENTS,
        ranked=["heating", "water"],
    )
    assert (match.intent, match.runner_up) == ("heating", None)
