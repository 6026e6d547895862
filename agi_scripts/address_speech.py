"""The caller's building in words (call_router/spoken_addresses.py decides which): the same
listening path as the speech menu (agi_scripts/listen.py: the prompt, AudioSocket or a
recording, end of speech, Vosk) held to a grammar of the centre's buildings.

`address_grammar` and `building_heard` are the whole of it from audio to building, for a live
call (`AddressListener`) and a file alike (tests/integration/test_spoken_address_vosk.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agi_scripts.agi import AgiChannel, CallerHangup
from agi_scripts.listen import SpeechMenu, _CallScope, listen
from agi_scripts.listen_types import EndedBy
from agi_scripts.speech import UNKNOWN_WORD, Recogniser, RecognitionResult, utterance_audio
from call_router.intents import PhrasebookError
from call_router.spoken_addresses import SpokenBuilding, grammar_phrases, pick_building, words


@dataclass(frozen=True)
class AddressHeard:
    """What the caller said: the building named (None: not understood), or a key pressed."""

    building: SpokenBuilding | None
    text: str = ""
    key: str = ""


def address_grammar(
    recogniser: Recogniser, language: str, buildings: list[SpokenBuilding]
) -> list[str]:
    """The buildings' phrases whose every word the model knows, and the language's filler
    words (so that other talk lands on them, not on an address). Raises SpeechUnavailable."""
    model = recogniser.model(language)

    def known(phrase: str) -> bool:
        return all(model.vosk_model_find_word(word) >= 0 for word in words(phrase))

    phrases = [phrase for phrase in grammar_phrases(buildings, language) if known(phrase)]
    try:
        fillers = [w for w in recogniser.phrasebook(language).fillers if known(w)]
    except PhrasebookError:
        fillers = []
    if model.vosk_model_find_word(UNKNOWN_WORD) >= 0:
        fillers.append(UNKNOWN_WORD)
    return phrases + fillers if phrases else []


def building_heard(
    result: RecognitionResult, buildings: list[SpokenBuilding], language: str
) -> SpokenBuilding | None:
    """The building the recogniser's n-best names (steady noise names none)."""
    if not result.speech_like:
        return None
    hypotheses = [result.transcript, *result.alternatives]
    return pick_building(hypotheses, result.weights, buildings, language)


async def building_in_audio(
    recogniser: Recogniser, pcm: bytes, language: str, buildings: list[SpokenBuilding]
) -> tuple[SpokenBuilding | None, str]:
    """A recording (8 kHz 16-bit mono) of a caller naming their address: the building and the
    transcript, cut and decoded exactly as a live call's audio is."""
    grammar = address_grammar(recogniser, language, buildings)
    segment = utterance_audio(recogniser.settings, pcm)
    if not grammar or segment is None:
        return None, ""
    result = await recogniser.recognise_pcm(segment, language=language, grammar=grammar)
    return building_heard(result, buildings, language), result.transcript


class AddressListener:
    """agi_scripts.flows.runtime.AddressSpeech on the speech menu's listening path."""

    def __init__(self, menu: SpeechMenu) -> None:
        self.menu = menu

    async def __call__(
        self,
        agi: AgiChannel,
        *,
        prompt: str,
        language: str,
        buildings: list[SpokenBuilding],
        timeout: float,
    ) -> AddressHeard | None:
        """None: no speech for this call (no model, no buildings it can say, audio broke)."""
        menu = self.menu
        if not buildings or not menu.recogniser.available(language):
            return None
        grammar = address_grammar(menu.recogniser, language, buildings)
        prompt_path = menu.host_prompt(prompt)
        if not grammar or prompt_path is None:
            return None
        linkedid = await agi.get_variable("CHANNEL(linkedid)")
        scope: Any = _CallScope(menu.settings, menu.log.bind(linkedid=linkedid), linkedid, agi.env)
        utterance = await listen(
            agi, scope, prompt=prompt_path, language=language, grammar=grammar,
            no_speech_timeout=min(timeout, float(menu.settings.menu_timeout)),
            recogniser=menu.recogniser, audiosocket=menu.audiosocket,
        )  # fmt: skip
        if utterance.ended_by == EndedBy.HANGUP:
            raise CallerHangup("caller hung up while saying the address")
        if utterance.ended_by == EndedBy.DTMF and utterance.dtmf:
            return AddressHeard(None, key=utterance.dtmf)
        if utterance.ended_by in (EndedBy.DTMF, EndedBy.ERROR, EndedBy.DROPPED):
            return None
        if utterance.result is None:
            return AddressHeard(None)
        building = building_heard(utterance.result, buildings, language)
        return AddressHeard(building, text=utterance.result.transcript)
