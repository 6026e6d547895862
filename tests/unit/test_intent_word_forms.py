"""The ru/en vocabularies cover the word forms callers say (text side: no ru/en model here).

Many phrasings per intent, in the cases, numbers and verb forms people use. Each must be
classified to its intent, and each must contain a word form that is literally in the
recogniser's keyword grammar: Vosk hears only the exact words of a grammar, so a form the
stemmer would fold but the grammar lacks is a form no caller could be heard saying.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from call_router.intents import Phrasebook, classify, load_phrasebook, normalise

FLOWS = Path(__file__).resolve().parents[2] / "ivr_flows"

PHRASINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "ru": {
        "water": (
            "у меня нет воды",
            "воду отключили с утра",
            "кран сломался",
            "из крана ничего не идёт",
            "течёт с потолка",
            "нас затопило сверху",
            "соседи залили квартиру",
            "прорвало трубу в ванной",
            "слабый напор",
            "нужен сантехник",
            "вызовите сантехника",
            "что-то с водой",
            "протечка на кухне",
        ),
        "heating": (
            "не работает отопление",
            "когда включат отопление",
            "батареи еле тёплые",
            "батарею прорвало",
            "в квартире холодно",
            "радиатор не греет",
            "проблема с отоплением",
            "нет тепла",
            "у нас холодные радиаторы",
        ),
        "electricity": (
            "нет света",
            "пропал свет во всём доме",
            "отключили электричество",
            "розетка искрит",
            "в розетке нет тока",
            "выбило пробки",
            "нужен электрик",
            "вызовите электрика",
            "сгорела проводка",
            "что-то со щитком",
            "скачет напряжение",
        ),
        "lift": (
            "лифт не работает",
            "застрял в лифте",
            "лифт стоит на пятом этаже",
            "двери лифта не закрываются",
            "проблема с лифтом",
            "почините лифты",
        ),
        "operator": (
            "соедините с оператором",
            "позовите оператора",
            "хочу поговорить с человеком",
            "живой человек",
            "дайте диспетчера",
            "нужен специалист",
            "переключите на координатора",
        ),
        "gas": (
            "пахнет газом",
            "запах газа в подъезде",
            "утечка газа",
            "не горит газовая плита",
            "плита не включается",
        ),
        "meters": (
            "передать показания",
            "хочу передать показания счётчиков",
            "сломался счётчик",
            "замена счётчика",
            "поверка счётчиков",
        ),
        "billing": (
            "вопрос по квитанции",
            "не пришла квитанция",
            "неправильный счёт",
            "почему такой долг",
            "сделать перерасчёт",
            "не прошла оплата",
            "большие начисления",
        ),
        "sewage": (
            "засор канализации",
            "забилась канализация",
            "засорился унитаз",
            "засор в стояке",
        ),
    },
    "en": {
        "water": (
            "there is no water",
            "the tap is broken",
            "my taps are dripping",
            "a pipe burst",
            "the pipes are leaking",
            "water leaked through the ceiling",
            "our flat is flooded",
            "low water pressure",
            "i need a plumber",
            "the faucet leaks",
        ),
        "heating": (
            "the heating is off",
            "no heating since yesterday",
            "the radiators are cold",
            "my radiator does not work",
            "the boiler broke down",
            "it is freezing in here",
            "the heater is broken",
            "there is no heat",
        ),
        "electricity": (
            "there is no power",
            "power cut in the building",
            "the lights are out",
            "the light went off",
            "a socket is sparking",
            "the fuses blew",
            "i need an electrician",
            "there is a blackout",
            "the electricity is off",
        ),
        "lift": (
            "the lift is broken",
            "stuck in the lift",
            "the elevator is not working",
            "both elevators are down",
            "the lifts do not move",
        ),
        "operator": (
            "talk to a person",
            "speak to an operator",
            "i want a human",
            "put me through to someone",
            "a real person please",
            "connect me with the dispatcher",
        ),
        "gas": (
            "i smell gas",
            "smell of gas in the hallway",
            "the gas stove is off",
        ),
        "meters": (
            "submit readings",
            "i want to give my meter readings",
            "the meter is broken",
            "replace the meter",
        ),
        "billing": (
            "question about my bill",
            "the bills are wrong",
            "i was charged twice",
            "my payment did not go through",
            "where is my invoice",
            "i want a refund",
        ),
        "sewage": (
            "the toilet is blocked",
            "blocked drain",
            "the drains are clogged",
            "sewage smell",
        ),
    },
}

CASES = [
    (language, intent, text)
    for language, intents in PHRASINGS.items()
    for intent, texts in intents.items()
    for text in texts
]


@pytest.fixture(scope="module")
def books() -> dict[str, Phrasebook]:
    return {language: load_phrasebook(FLOWS, language) for language in PHRASINGS}


def test_every_intent_has_many_phrasings_in_both_languages() -> None:
    for language in ("ru", "en"):
        for intent in ("water", "heating", "electricity", "lift", "operator"):
            assert len(PHRASINGS[language][intent]) >= 5, (language, intent)


@pytest.mark.parametrize(("language", "intent", "text"), CASES)
def test_a_phrasing_is_classified_to_its_intent(
    books: dict[str, Phrasebook], language: str, intent: str, text: str
) -> None:
    match = classify(text, phrasebook=books[language])
    assert (match.intent, match.reason) == (intent, "matched"), match


@pytest.mark.parametrize(("language", "intent", "text"), CASES)
def test_the_grammar_has_the_word_form_the_phrasing_says(
    books: dict[str, Phrasebook], language: str, intent: str, text: str
) -> None:
    book = books[language]
    grammar = set(book.grammar_words([intent], fillers=False))
    said = [token for token in normalise(text).split() if token in grammar]
    assert said, f"no word of {text!r} is in the {language} {intent} grammar"
    assert all(book.spot(token)[0].intent == intent for token in said)
