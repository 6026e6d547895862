"""Prompt building: real espeak-ng, real files in a temporary recordings folder."""

from __future__ import annotations

import array
import math
import shutil
import wave
from pathlib import Path

import pytest

from call_router.flows.prompts import (
    MANIFEST_FILE,
    PromptError,
    build_prompts,
    load_prompt_texts,
    missing_prompts,
)
from call_router.settings import PROJECT_ROOT, Settings
from tests.conftest import require

LANGUAGES = {"ru", "en"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    flows = tmp_path / "flows"
    flows.mkdir()
    for path in (PROJECT_ROOT / "ivr_flows").glob("*.yaml"):
        shutil.copy(path, flows / path.name)
    return Settings(recordings_dir=tmp_path / "recordings", flows_dir=flows)


def rms(path: Path) -> float:
    with wave.open(str(path)) as wav:
        samples = array.array("h", wav.readframes(wav.getnframes()))
    return math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))


PROMPT_NAMES = ("greeting", "menu", "invalid", "no_input", "transfer", "coordinator")


def test_every_prompt_has_every_language() -> None:
    # Texts come from prompts.yaml (shared) and each flow file's `prompts:`; only the
    # language offers ("For English, press 9") exist in one language.
    texts = load_prompt_texts(PROJECT_ROOT / "ivr_flows")
    names = {t.name for t in texts}
    assert set(PROMPT_NAMES) <= names
    one_language = {"english_offer": "en", "russian_offer": "ru"}
    assert {(t.language, t.name) for t in texts} == {
        (lang, name)
        for name in names
        for lang in ([one_language[name]] if name in one_language else LANGUAGES)
    }
    menu_en = next(t.text for t in texts if t.key == "en/menu")
    for key in "123450":
        assert key in menu_en


def test_a_prompt_in_a_language_without_a_voice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prompts.yaml").write_text(
        "languages: {ru: {voice: ru}, en: {voice: en}}\nprompts:\n  bye: {ru: 'x', en: 'y'}\n"
    )
    (tmp_path / "main.yaml").write_text(
        "start: a\nprompts: {hello: {de: 'x'}}\nnodes: {a: {type: hangup, prompt: hello}}\n"
    )
    with pytest.raises(PromptError, match="main.yaml: prompt 'hello' is in 'de'"):
        load_prompt_texts(tmp_path)


def test_two_files_giving_one_prompt_different_texts_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prompts.yaml").write_text(
        "languages: {en: {voice: en}}\nprompts:\n  bye: {en: 'Goodbye'}\n"
    )
    (tmp_path / "main.yaml").write_text(
        "start: a\nprompts: {bye: {en: 'Bye'}}\nnodes: {a: {type: hangup, prompt: bye}}\n"
    )
    with pytest.raises(PromptError, match="also defined, differently, in prompts.yaml"):
        load_prompt_texts(tmp_path)


def test_build_writes_telephone_wavs_and_keeps_studio_files(settings: Settings) -> None:
    require(shutil.which("espeak-ng") is not None, "espeak-ng is not installed")
    root = settings.recordings_dir / "prompts"
    studio = root / "en" / "greeting.wav"
    studio.parent.mkdir(parents=True)
    studio.write_bytes(b"RIFF studio recording")
    assert "en/greeting" not in missing_prompts(settings)
    assert "ru/greeting" in missing_prompts(settings)

    built = build_prompts(settings)

    assert len(built) == len(load_prompt_texts(settings.flows_dir)) - 1
    assert studio.read_bytes() == b"RIFF studio recording"
    assert missing_prompts(settings) == []
    for path in built:
        with wave.open(str(path)) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
            assert wav.getnframes() > 8000 * 0.5  # at least half a second of speech
        assert rms(path) > 300, f"{path} is silent"

    # Nothing changed: nothing rebuilt. force rebuilds ours only.
    assert build_prompts(settings) == []
    forced = build_prompts(settings, force=True)
    assert studio not in forced and len(forced) == len(built)

    # A studio recording replacing a generated file is kept even when the text changes.
    replaced = root / "ru" / "menu.wav"
    replaced.write_bytes(b"RIFF new studio menu")
    for file, old, new in (
        ("prompts.yaml", "Sorry, that key is not in the menu.", "That key is not in the menu."),
        ("hotline.yaml", "нажмите звёздочку", "нажмите звёздочку, пожалуйста"),
    ):
        yaml_path = settings.flows_dir / file
        text = yaml_path.read_text(encoding="utf-8")
        assert old in text
        yaml_path.write_text(text.replace(old, new), encoding="utf-8")
    rebuilt = build_prompts(settings)
    assert rebuilt == [root / "en" / "invalid.wav"]
    assert replaced.read_bytes() == b"RIFF new studio menu"
    assert (root / MANIFEST_FILE).is_file()


def test_missing_espeak_is_a_clear_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(PromptError, match="espeak-ng is not installed"):
        build_prompts(settings)
