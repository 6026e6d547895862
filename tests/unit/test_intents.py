"""The intent classifier on plain transcripts: word forms, near misses, fillers, n-best, files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from call_router.intents import (
    CORE_INTENTS,
    KNOWN_INTENTS,
    PhrasebookError,
    classify,
    load_phrasebook,
    naive_keyword_intent,
    normalise,
    parse_phrasebook,
)
from call_router.settings import PROJECT_ROOT

FLOWS = PROJECT_ROOT / "ivr_flows"


@pytest.fixture(scope="module")
def ru():  # type: ignore[no-untyped-def]
    return load_phrasebook(FLOWS, "ru")


@pytest.fixture(scope="module")
def ko():  # type: ignore[no-untyped-def]
    return load_phrasebook(FLOWS, "ko")


@pytest.mark.parametrize("language", ["ru", "en", "ko"])
def test_each_language_file_loads_and_covers_the_core_intents(language: str) -> None:
    book = load_phrasebook(FLOWS, language)
    assert book.language == language
    assert set(CORE_INTENTS) <= set(book.intents) <= set(KNOWN_INTENTS)
    words = book.grammar_words()
    assert len(words) == len(set(words))
    assert set(book.fillers) & set(words) == set(book.fillers)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("вода", "water"),
        ("у нас нет воды", "water"),
        ("квартиру залило водой", "water"),
        ("батареи холодные", "heating"),
        ("отопления нет третий день", "heating"),
        ("электричества нет", "electricity"),
        ("лифт не работает", "lift"),
        ("застряли в лифте", "lift"),
        ("соедините с оператором", "operator"),
        ("хочу передать показания счётчиков", "meters"),
        ("пахнет газом в подъезде", "gas"),
    ],
)
def test_russian_word_forms_are_folded_by_the_stemmer(ru, text: str, intent: str) -> None:  # type: ignore[no-untyped-def]
    match = classify(text, phrasebook=ru)
    assert (match.intent, match.reason) == (intent, "matched")
    assert match.confidence == 1.0


def test_yo_and_punctuation_do_not_matter(ru) -> None:  # type: ignore[no-untyped-def]
    assert normalise("Счётчик, ЛИФТ!") == "счетчик лифт"
    assert classify("ПОКАЗАНИЯ СЧЕТЧИКА?", phrasebook=ru).intent == "meters"


def test_a_near_miss_routes_but_with_less_confidence_than_an_exact_word(ru) -> None:  # type: ignore[no-untyped-def]
    near = classify("отапление", phrasebook=ru, threshold=0.5)
    assert near.intent == "heating"
    assert 0.5 < near.confidence < 1.0
    assert near.matched == "отопление"


def test_short_words_are_never_fuzzy_matched(ru) -> None:  # type: ignore[no-untyped-def]
    # "газ" vs "гол": a fuzzy match on three letters would route random words.
    assert classify("гол", phrasebook=ru).intent is None


def test_fillers_and_greetings_are_not_an_intent(ru, ko) -> None:  # type: ignore[no-untyped-def]
    assert classify("алло здравствуйте", phrasebook=ru).reason == "no_keyword"
    assert classify("안녕하세요 여보세요", phrasebook=ko).intent is None


def test_korean_particles_are_stripped(ko) -> None:  # type: ignore[no-untyped-def]
    assert classify("난방이", phrasebook=ko).intent == "heating"
    assert classify("엘리베이터가 고장 났어요", phrasebook=ko).intent == "lift"
    assert classify("상담원 연결", phrasebook=ko).intent == "operator"


def test_two_intents_in_one_sentence_is_ambiguous(ru) -> None:  # type: ignore[no-untyped-def]
    match = classify("нет света и воды", phrasebook=ru)
    assert (match.intent, match.reason) == (None, "ambiguous")


def test_empty_and_unknown_only_transcripts(ru) -> None:  # type: ignore[no-untyped-def]
    assert classify("", phrasebook=ru).reason == "empty"
    assert classify("[unk] [unk]", phrasebook=ru).reason == "no_keyword"


def test_nbest_alternatives_vote(ko) -> None:  # type: ignore[no-untyped-def]
    # The best hypothesis says water, the three next ones say nothing: not confident.
    weak = classify(
        "물 어요", ["어요", "아요 어요", "너무"], phrasebook=ko, weights=[0.4, 0.2, 0.2, 0.2]
    )
    assert weak.intent is None
    assert (weak.reason, weak.candidate) == ("below_threshold", "water")
    assert weak.confidence == pytest.approx(0.4)
    # The whole n-best list agrees: confident.
    strong = classify("물", ["물이", "물 어요"], phrasebook=ko, weights=[0.5, 0.3, 0.2])
    assert (strong.intent, strong.confidence) == ("water", 1.0)


def test_top_hypothesis_disagreeing_with_the_vote_lowers_confidence(ko) -> None:  # type: ignore[no-untyped-def]
    match = classify(
        "난방", ["물", "물이"], phrasebook=ko, weights=[0.3, 0.35, 0.35], threshold=0.5
    )
    assert match.intent == "water"
    assert match.confidence == pytest.approx(0.7 * 0.75)


def test_free_form_pass_agreement_and_contradiction(ko) -> None:  # type: ignore[no-untyped-def]
    base = classify("물", ["어요"], phrasebook=ko, weights=[0.7, 0.3])
    agreed = classify("물", ["어요"], phrasebook=ko, weights=[0.7, 0.3], free_transcript="물이")
    contradicted = classify(
        "물", ["어요"], phrasebook=ko, weights=[0.7, 0.3], free_transcript="난방"
    )
    silent = classify("물", ["어요"], phrasebook=ko, weights=[0.7, 0.3], free_transcript="모 여야")
    assert base.confidence == pytest.approx(0.7)
    assert agreed.confidence == pytest.approx(0.85)
    assert contradicted.intent is None and contradicted.confidence == pytest.approx(0.35)
    assert silent.confidence == base.confidence


def test_threshold_decides(ru) -> None:  # type: ignore[no-untyped-def]
    text, alternatives = "лифт", ["алло"]
    assert classify(text, alternatives, phrasebook=ru, threshold=0.6).intent == "lift"
    below = classify(text, alternatives, phrasebook=ru, threshold=0.7)
    assert (below.intent, below.candidate) == (None, "lift")


def test_allowed_intents_limit_the_answer(ru) -> None:  # type: ignore[no-untyped-def]
    match = classify("лифт не работает", phrasebook=ru, allowed=["water", "heating"])
    assert match.intent is None


def test_naive_baseline_takes_the_first_keyword_without_doubt(ko) -> None:  # type: ignore[no-untyped-def]
    assert naive_keyword_intent("어요 난방 물", ko) == "heating"
    assert naive_keyword_intent("안녕하세요", ko) is None


def test_classifier_refuses_a_phrasebook_of_another_language(ru) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PhrasebookError, match="'ru'"):
        classify("вода", language="ko", phrasebook=ru)


def test_bad_yaml_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "intents").mkdir()
    (tmp_path / "intents" / "xx.yaml").write_text("language: xx\nintents: [water\n")
    with pytest.raises(PhrasebookError, match="cannot read xx.yaml"):
        load_phrasebook(tmp_path, "xx")
    with pytest.raises(PhrasebookError, match="no intent phrases for language 'yy'"):
        load_phrasebook(tmp_path, "yy")


def _doc(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "language": "xx",
        "intents": {intent: {"keywords": [intent]} for intent in CORE_INTENTS},
    }
    doc.update(overrides)
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "expected a mapping"),
        (_doc(language=None), "`language` is missing"),
        (_doc(intents={"water": {"keywords": ["w"]}}), "intents missing: heating"),
        (_doc(intents={**_doc()["intents"], "pizza": {"keywords": ["p"]}}), "unknown intent"),  # type: ignore[dict-item]
        (_doc(intents={**_doc()["intents"], "water": {"keywords": []}}), "has no keywords"),  # type: ignore[dict-item]
        (_doc(fillers="um"), "fillers: expected a list"),
        (_doc(fillers=[True]), "quote yes/no"),
        (_doc(stemmer="klingon"), "unknown stemmer"),
    ],
)
def test_malformed_phrasebooks_are_rejected(doc: object, message: str) -> None:
    with pytest.raises(PhrasebookError, match=message):
        parse_phrasebook(doc, "xx.yaml")


def test_one_stem_for_two_intents_is_rejected() -> None:
    doc = yaml.safe_load(
        """
language: ru
stemmer: russian
intents:
  water: {keywords: [холодная]}
  heating: {keywords: [холодно]}
  electricity: {keywords: [свет]}
  lift: {keywords: [лифт]}
  operator: {keywords: [оператор]}
"""
    )
    with pytest.raises(PhrasebookError, match="same stem"):
        parse_phrasebook(doc)
