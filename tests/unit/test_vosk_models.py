"""The deterministic model overlay: built from a model folder without touching it, reused,
rebuilt when stale. A fake model folder is enough: this is file layout, not decoding (the real
model decodes deterministically in tests/integration/test_speech_vosk.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agi_scripts.vosk_models import (
    deterministic_model_dir,
    has_no_dither,
    overlay_path,
    without_dither,
)

MFCC = "--use-energy=false\n--dither=1.0\n--num-ceps=40\n"


def fake_model(root: Path) -> Path:
    model = root / "model"
    for folder in ("am", "conf", "graph", "ivector"):
        (model / folder).mkdir(parents=True)
    (model / "am" / "final.mdl").write_bytes(b"weights")
    (model / "conf" / "mfcc.conf").write_text(MFCC)
    (model / "conf" / "model.conf").write_text("--beam=10.0\n")
    return model


def test_the_overlay_turns_dither_off_and_links_the_rest(tmp_path: Path) -> None:
    model = fake_model(tmp_path)
    overlay = deterministic_model_dir(model, tmp_path / "cache")
    assert overlay == overlay_path(model.resolve(), tmp_path / "cache")
    assert has_no_dither(overlay)
    mfcc = (overlay / "conf" / "mfcc.conf").read_text().splitlines()
    assert mfcc == ["--use-energy=false", "--num-ceps=40", "--dither=0"]
    assert not (overlay / "conf" / "mfcc.conf").is_symlink()
    for linked in ("am", "graph", "ivector", "conf/model.conf"):
        assert (overlay / linked).is_symlink(), linked
        assert (overlay / linked).resolve() == (model / linked).resolve()
    # The model itself is untouched.
    assert (model / "conf" / "mfcc.conf").read_text() == MFCC


def test_the_overlay_is_built_once_and_rebuilt_when_the_model_changes(tmp_path: Path) -> None:
    model = fake_model(tmp_path)
    overlay = deterministic_model_dir(model, tmp_path / "cache")
    stamp = (overlay / ".hotline-overlay").stat().st_mtime_ns
    assert deterministic_model_dir(model, tmp_path / "cache") == overlay
    assert (overlay / ".hotline-overlay").stat().st_mtime_ns == stamp  # reused, not rebuilt
    (model / "rescore").mkdir()  # the admin put a bigger model's extra folder in place
    assert deterministic_model_dir(model, tmp_path / "cache") == overlay
    assert (overlay / "rescore").is_symlink()


def test_two_models_get_two_overlays(tmp_path: Path) -> None:
    first = fake_model(tmp_path / "a")
    second = fake_model(tmp_path / "b")
    cache = tmp_path / "cache"
    assert deterministic_model_dir(first, cache) != deterministic_model_dir(second, cache)


def test_without_dither_replaces_any_dither_option() -> None:
    assert without_dither("--dither=0.5\n--x=1") == "--x=1\n--dither=0\n"
    assert without_dither("") == "--dither=0\n"
    assert without_dither("--x=1\n").endswith("--dither=0\n")


def test_a_twin_that_built_the_overlay_first_keeps_it(tmp_path: Path, monkeypatch: Any) -> None:
    """Two FastAGI workers start at once on a fresh cache: both build; the one that renames
    second must not delete the first one's overlay, which that worker may be loading."""
    from agi_scripts import vosk_models

    model = fake_model(tmp_path)
    cache = tmp_path / "cache"
    real_build = vosk_models._build
    twin: dict[str, int] = {}

    def build_while_a_twin_finishes(source: Path, target: Path) -> None:
        real_build(source, target)
        if not twin:  # the twin's whole build lands between our check and our rename
            monkeypatch.setattr(vosk_models, "_build", real_build)
            done = deterministic_model_dir(model, cache)
            twin["inode"] = done.stat().st_ino

    monkeypatch.setattr(vosk_models, "_build", build_while_a_twin_finishes)
    overlay = deterministic_model_dir(model, cache)
    assert overlay.stat().st_ino == twin["inode"]  # the twin's folder, still in place
    assert has_no_dither(overlay)
