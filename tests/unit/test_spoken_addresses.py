"""Which building a caller's words name (call_router/spoken_addresses.py): house numbers in
words, the grammar, and the n-best vote that takes a building only on a majority."""

from __future__ import annotations

import pytest

from call_router.spoken_addresses import (
    SpokenBuilding,
    grammar_phrases,
    house_words,
    pick_building,
)

LENINA_5 = SpokenBuilding("11", "Ленина", "5")
LENINA_7 = SpokenBuilding("12", "Ленина", "7а")
MIRA_14 = SpokenBuilding("22", "ул. Мира", "14")
BUILDINGS = [LENINA_5, LENINA_7, MIRA_14]


@pytest.mark.parametrize(
    ("house", "language", "said"),
    [
        ("5", "ru", ("пять",)),
        ("7а", "ru", ("семь",)),
        ("14", "ru", ("четырнадцать",)),
        ("123", "ru", ("сто", "двадцать", "три")),
        ("40", "en", ("forty",)),
        ("101", "en", ("one", "hundred", "one")),
        ("14", "ko", ("십", "사")),
        ("23", "ko", ("이", "십", "삼")),
        ("5", "ko", ("오",)),
        ("a5", "ru", ()),  # no leading number
        ("1000", "ru", ()),  # beyond what is spelled
        ("5", "de", ()),  # no speller: the street alone
    ],
)
def test_house_numbers_in_words(house: str, language: str, said: tuple[str, ...]) -> None:
    assert house_words(house, language) == said


def test_the_grammar_has_each_street_and_each_address_once() -> None:
    assert grammar_phrases(BUILDINGS, "ru") == [
        "ленина",
        "ленина пять",
        "ленина семь",
        "ул мира",
        "ул мира четырнадцать",
    ]


def test_a_street_with_one_building_is_enough_two_need_the_house() -> None:
    assert pick_building(["ул мира"], [1.0], BUILDINGS, "ru") == MIRA_14
    assert pick_building(["ленина"], [1.0], BUILDINGS, "ru") is None
    assert pick_building(["ленина семь"], [1.0], BUILDINGS, "ru") == LENINA_7
    assert pick_building(["дом ленина пять пожалуйста"], [1.0], BUILDINGS, "ru") == LENINA_5


def test_a_building_needs_more_than_half_of_the_weight() -> None:
    split = ["ленина пять", "ленина семь", "ул мира"]
    assert pick_building(split, [0.4, 0.35, 0.25], BUILDINGS, "ru") is None
    assert pick_building(split, [0.6, 0.3, 0.1], BUILDINGS, "ru") == LENINA_5
    # Two hypotheses naming the same building add up.
    same = ["ленина пять", "ленина пять да", "ул мира"]
    assert pick_building(same, [0.3, 0.3, 0.4], BUILDINGS, "ru") == LENINA_5


def test_words_naming_two_buildings_or_none_name_nothing() -> None:
    assert pick_building(["ленина пять ул мира"], [1.0], BUILDINGS, "ru") is None
    assert pick_building(["здравствуйте"], [1.0], BUILDINGS, "ru") is None
    assert pick_building([], [], BUILDINGS, "ru") is None
