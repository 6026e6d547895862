"""The callers' utterances as files (agi_scripts/utterance_files.py)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agi_scripts.agi_environment import AgiEnvironment
from agi_scripts.utterance_files import save_utterance, utterances_dir

PCM = b"\x00\x00" * 160


def _call(settings: Any, linkedid: str) -> Any:
    return SimpleNamespace(settings=settings, log=None, linkedid=linkedid, env=AgiEnvironment())


async def test_saving_an_utterance_touches_no_file_on_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by playing attacker (2026-12-06): each utterance listed the whole folder (every
    # caller's speech of the retention period, ~100 ms at 100 000 files) on the event loop,
    # and every other caller's menu waited meanwhile.
    settings = SimpleNamespace(recordings_dir=tmp_path)
    folder = utterances_dir(settings)
    folder.mkdir(parents=True)
    for i in range(200):
        (folder / f"1763{i:06d}.1-1.wav").touch()
    loop_thread = threading.get_ident()
    on_loop: list[str] = []

    def watched(name: str) -> None:
        real = getattr(Path, name)

        def call(self: Path, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == loop_thread:
                on_loop.append(name)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, name, call)

    for name in ("glob", "iterdir", "exists", "mkdir", "stat"):
        watched(name)
    first = await save_utterance(settings, _call(settings, "1763920000.42"), PCM)
    second = await save_utterance(settings, _call(settings, "1763920000.42"), PCM)
    assert on_loop == []
    assert first is not None and first.name == "1763920000.42-1.wav" and first.exists()
    assert second is not None and second.name == "1763920000.42-2.wav"
    # A file the call already has (its menu served again after a restart) is never overwritten.
    other = await save_utterance(settings, _call(settings, "1763000001.1"), PCM)
    assert other is not None and other.name == "1763000001.1-2.wav"
