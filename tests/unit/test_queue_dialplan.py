"""The queue behaviour in the rendered config: overflow, virtual hold, recording, wrap-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from call_router.settings import QUEUES, Settings
from hotline.asterisk.render import ConfigError
from tests.unit.test_asterisk_render import extensions, rendered, sections


def make(tmp_path: Path, **kw: object) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        recordings_dir=tmp_path / "recordings",
        asterisk_root=tmp_path / "root",
        **kw,  # type: ignore[arg-type]
    )


def test_specialists_overflow_to_the_coordinator_once_then_the_callback_offer(
    tmp_path: Path,
) -> None:
    settings = make(tmp_path, queue_timeout=90, coordinator_timeout=200)
    text = rendered(settings)["extensions.conf"]
    queues = extensions(text, "hotline-queues")
    assert "n,Queue(plumbing,t,,,90)" in queues["plumbing"]
    assert "n,Queue(coordinator,t,,,200)" in queues["coordinator"]
    exit_lines = extensions(text, "hotline-queue-exit")["s"]
    overflow = next(i for i, line in enumerate(exit_lines) if line.startswith("n(overflow)"))
    # Only the coordinator's own queue, or a caller who already overflowed, skips to the offer.
    assert '"${HOTLINE_QUEUE}" = "coordinator"' in exit_lines[overflow]
    assert '"${HOTLINE_OVERFLOW}" != ""' in exit_lines[overflow]
    assert exit_lines[overflow + 3] == "n,Goto(hotline-queues,coordinator,1)"
    offer = next(line for line in exit_lines if line.startswith("n(offer),Read("))
    assert "/callback_offer," in offer
    vhold = extensions(text, "hotline-vhold")
    assert any("UserEvent(HotlineCallbackRequest," in line for line in vhold["1"])
    # A hidden number cannot be called back: back to the queue instead.
    assert vhold["1"][-1] == "n,Goto(hotline-queues,${HOTLINE_QUEUE},1)"


def test_every_queue_offers_virtual_hold_and_takes_wrapup_and_maxlen(tmp_path: Path) -> None:
    settings = make(tmp_path, wrapup_seconds=7, queue_maxlen=12)
    conf = sections(rendered(settings)["queues.conf"])
    for queue in QUEUES:
        options = dict(conf[queue])
        assert options["context"] == "hotline-vhold"
        assert options["wrapuptime"] == "7"
        assert options["maxlen"] == "12"
        # No language folder: Asterisk takes it from prompts/<the caller's language>/.
        assert options["periodic-announce"].endswith("/prompts/queue_callback_offer")
        assert options["periodic-announce-frequency"] == "60"


def test_recording_only_in_the_configured_queues(tmp_path: Path) -> None:
    settings = make(tmp_path, record_queues=["plumbing"])
    text = rendered(settings)["extensions.conf"]
    queues = extensions(text, "hotline-queues")
    assert "n,Gosub(hotline-record,s,1(plumbing))" in queues["plumbing"]
    assert not any("hotline-record" in line for line in queues["lift"])
    record = extensions(text, "hotline-record")["s"]
    assert "n,MixMonitor(${HOTLINE_RECORDINGS}/${HOTLINE_RECORDING_FILE},b)" in record
    assert any("UserEvent(HotlineRecording," in line for line in record)
    with pytest.raises(ConfigError, match="record_queues"):
        rendered(make(tmp_path, record_queues=["nonsense"]))
