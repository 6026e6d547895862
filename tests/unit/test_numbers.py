"""Caller ID normalisation: one spelling per caller, hostile input made harmless."""

from __future__ import annotations

import pytest

from call_router.numbers import (
    ANONYMOUS,
    MAX_NAME_LENGTH,
    clean_caller_name,
    is_anonymous,
    normalize_number,
)


@pytest.mark.parametrize(
    "raw",
    ["+7 495 123-45-67", "8 495 1234567", "84951234567", "4951234567", "(495) 123 45 67",
     "007 495 123 45 67", "+74951234567"],
)  # fmt: skip
def test_every_russian_spelling_is_one_caller(raw: str) -> None:
    assert normalize_number(raw) == "+74951234567"


def test_mobile_and_foreign_numbers_become_e164() -> None:
    assert normalize_number("8-916-123-45-67") == "+79161234567"
    assert normalize_number("+1 (202) 555-0143") == "+12025550143"
    assert normalize_number("2025550143", country="US") == "+12025550143"


def test_internal_extensions_stay_digits() -> None:
    assert normalize_number("1001") == "1001"
    assert normalize_number("500100") == "500100"


@pytest.mark.parametrize(
    "raw",
    [None, "", "   ", "anonymous", "Anonymous", "restricted", "UNAVAILABLE", "unknown",
     "abc", "1", "12345678901234567", "1" * 200, "+7 495 123\n45 67", "+7495'; DROP TABLE",
     "٤٩٥١٢٣٤٥٦٧", "+"],
)  # fmt: skip
def test_missing_or_garbage_numbers_are_anonymous(raw: str | None) -> None:
    assert normalize_number(raw) == ANONYMOUS
    assert is_anonymous(raw)


def test_real_numbers_are_not_anonymous() -> None:
    assert not is_anonymous("+74951234567")
    assert not is_anonymous("1001")


def test_normalized_numbers_fit_the_column() -> None:
    assert len(normalize_number("+" + "9" * 15)) <= 32


def test_names_lose_control_characters_and_keep_cyrillic() -> None:
    assert clean_caller_name('"Иван\r\nПетров"') == "Иван Петров"
    assert clean_caller_name("Анна\x00\x07\x1b[31m") == "Анна[31m"
    assert clean_caller_name("evil\u202eeman\u200b") == "evileman"
    assert clean_caller_name("  José   García  ") == "José García"


def test_names_are_capped_and_empty_names_are_none() -> None:
    assert len(clean_caller_name("Я" * 500) or "") == MAX_NAME_LENGTH
    assert clean_caller_name(None) is None
    assert clean_caller_name(" \n\t ") is None
    assert clean_caller_name("anonymous") is None
    assert clean_caller_name('""') is None
