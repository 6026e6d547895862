"""The flow engine over the real TCP AGI protocol, against the fake Asterisk of
test_agi_protocol.py, with flows written into a temporary folder like a supervisor would.
(The built-in `hotline` flow's paths are covered in test_agi_protocol.py.)
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agi_scripts.agi import AgiChannel
from agi_scripts.flows.actions import MeterActions
from agi_scripts.flows.engine import FlowEngine
from agi_scripts.flows.runtime import SpeechResult
from agi_scripts.flows.services import DbLookups, FlowServices
from agi_scripts.server import AgiServer
from call_router import channel_vars
from call_router.db import Database
from call_router.flows.loader import FlowRegistry
from call_router.settings import PROJECT_ROOT, QUEUES, Settings
from tests.unit.conftest import menu_settings, started_agi
from tests.unit.test_agi_protocol import (
    LINKEDID,
    RECORDINGS,
    FakeAsterisk,
    call_row,
    environment,
    event_kinds,
    run_call,
)

PROMPTS = """\
languages: {ru: {voice: ru}, en: {voice: en}}
prompts:
  hello: {ru: "Здравствуйте", en: "Hello"}
  menu: {ru: "Меню", en: "Menu"}
  sorry: {ru: "Извините", en: "Sorry"}
  closed: {ru: "Мы закрыты", en: "We are closed"}
  account: {ru: "Номер счёта", en: "Account"}
  problem: {ru: "Что случилось", en: "What happened"}
  said_heating: {ru: "Вы сказали: отопление", en: "You said heating"}
  said_water: {ru: "Вы сказали: вода", en: "You said water"}
  confirm: {ru: "Верно — 1, выбрать снова — 2", en: "Right, 1. Choose again, 2"}
  bye: {ru: "До свидания", en: "Goodbye"}
"""

CALENDAR = """\
timezone: Europe/Moscow
week: {mon: "08:00-20:00", tue: "08:00-20:00", wed: "08:00-20:00", thu: "08:00-20:00",
       fri: "08:00-20:00", sat: closed, sun: closed}
holidays: [2026-12-31]
"""

HOURS_FLOW = """\
start: hours
nodes:
  hours:
    type: condition
    branches:
      - {if: {business_hours: true}, next: menu}
    else: closed
  closed: {type: play, prompt: closed, next: after_hours}
  after_hours: {type: route, queue: duty, priority: 5, intent: after_hours}
  menu:
    type: menu
    prompt: menu
    invalid_prompt: sorry
    options:
      1: {next: water}
      6: {next: lift}
    on_failure: coordinator
  water: {type: route, queue: plumbing, intent: water}
  lift: {type: route, queue: lift, intent: lift}
  coordinator: {type: route, queue: coordinator}
"""

ASK_FLOW = """\
start: problem
nodes:
  problem:
    type: ask
    prompt: problem
    confirm: confirm
    invalid_prompt: sorry
    choices:
      heating: {key: "3", next: heating, confirm_prompt: said_heating}
      water: {key: "1", next: water, confirm_prompt: said_water}
    on_failure: coordinator
  heating: {type: route, queue: heating, intent: heating}
  water: {type: route, queue: plumbing, intent: water}
  coordinator: {type: route, queue: coordinator}
"""

COLLECT_FLOW = """\
start: account
nodes:
  account:
    type: collect
    prompt: account
    var: account
    min_length: 6
    max_length: 12
    checksum: luhn
    invalid_prompt: sorry
    retries: 1
    next: known
    on_failure: coordinator
  known:
    type: condition
    branches:
      - {if: {var: {name: account, present: true}}, next: meters}
    else: coordinator
  meters: {type: route, queue: meters, intent: meters}
  coordinator: {type: route, queue: coordinator}
"""

VOICEMAIL_FLOW = """\
start: closed
nodes:
  closed: {type: play, prompt: closed, next: message}
  message: {type: voicemail, prompt: sorry, max_seconds: 60, silence_seconds: 3, queue: heating}
"""

REPEAT_FLOW = """\
start: again
nodes:
  again:
    type: condition
    branches:
      - {if: {repeat_caller: true}, next: coordinator}
    else: bye
  bye: {type: hangup, prompt: bye}
  coordinator: {type: route, queue: coordinator, priority: 7}
"""


def hangup_ok(cmd: str) -> list[str] | None:
    # res_agi answers HANGUP with result=1, then the channel is gone.
    return ["200 result=1", "HANGUP"] if cmd == "HANGUP" else None


def prompt(name: str, lang: str = "en") -> str:
    return f"{RECORDINGS}/prompts/{lang}/{name}"


def moscow(text: str) -> Callable[[], datetime]:
    from zoneinfo import ZoneInfo

    at = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Moscow")).astimezone(UTC)
    return lambda: at


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return menu_settings(tmp_path, flows_dir=tmp_path / "flows", default_language="ru")


class Stack:
    """A FastAGI server over one temporary flows folder, rebuilt per test scenario."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.servers: list[AgiServer] = []

    async def serve(
        self,
        flow: str | None,
        *,
        clock: Callable[[], datetime] | None = None,
        speech: object = None,
        calendar: str | None = None,
    ) -> AgiServer:
        """Serve `flow` as the hotline flow; None: the built-in ivr_flows/ as shipped."""
        folder = self.settings.flows_dir
        if flow is None:
            shutil.copytree(PROJECT_ROOT / "ivr_flows", folder, dirs_exist_ok=True)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "prompts.yaml").write_text(PROMPTS, encoding="utf-8")
            (folder / "hotline.yaml").write_text(textwrap.dedent(flow), encoding="utf-8")
        if calendar:
            (folder / "calendar.yaml").write_text(calendar, encoding="utf-8")
        registry = FlowRegistry(folder, queues=QUEUES)
        assert registry.last_errors == [], registry.last_errors
        services = FlowServices(
            registry=registry,
            speech=speech,  # type: ignore[arg-type]
            lookups=DbLookups(self.db, "RU"),
            actions=MeterActions(self.db, "RU"),
            numbers={"gas_emergency_number": "104"},
        )
        if clock is not None:
            services.clock = clock
        server = await started_agi(self.settings, self.db, services)
        self.servers.append(server)
        return server


@pytest.fixture
async def stack(settings: Settings, db: Database) -> AsyncIterator[Stack]:
    s = Stack(settings, db)
    yield s
    for server in s.servers:
        await server.stop(grace=1.0)


# --- conditions: business hours with an injected clock ----------------------------------------


async def test_in_business_hours_the_menu_runs(stack: Stack, db: Database) -> None:
    server = await stack.serve(HOURS_FLOW, clock=moscow("2026-11-23 12:00"), calendar=CALENDAR)
    fake = FakeAsterisk(keys=[("6", False)])
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "lift"
    assert fake.set_vars[channel_vars.MENU_CHOICE] == "6"
    # Every step is on the call's timeline; the last one is the route.
    with db.session() as session:
        from sqlalchemy import select

        from call_router.models import Call

        call = session.scalars(select(Call).where(Call.linkedid == LINKEDID)).one()
        steps = [item for item in call.timeline if item.kind == "flow_step"]
        assert [s.data["node"] for s in steps] == ["hours", "menu", "lift"]
        assert steps[1].data["choice"] == "6"


@pytest.mark.parametrize("when", ["2026-11-23 21:00", "2026-11-29 12:00", "2026-12-31 12:00"])
async def test_after_hours_weekends_and_holidays_go_to_duty(stack: Stack, when: str) -> None:
    server = await stack.serve(HOURS_FLOW, clock=moscow(when), calendar=CALENDAR)
    fake = FakeAsterisk(keys=[("1", False)])
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "duty"
    assert fake.set_vars[channel_vars.PRIORITY] == "5"
    assert fake.played == [prompt("closed")]
    assert fake.count("GET DATA") == 0


# --- ask: speech input injected, keypad fallback, confirmation ----------------------------------


class FakeSpeech:
    def __init__(self, answers: Sequence[SpeechResult | None]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, str, list[str]]] = []

    async def __call__(
        self,
        agi: AgiChannel,
        *,
        prompt: str,
        language: str,
        intents: Sequence[str],
        timeout: float,
    ) -> SpeechResult | None:
        self.asked.append((prompt, language, list(intents)))
        return self.answers.pop(0) if self.answers else None


async def test_ask_by_speech_is_confirmed_then_routed(stack: Stack) -> None:
    speech = FakeSpeech([SpeechResult("heating", "у меня холодные батареи", 0.9)])
    server = await stack.serve(ASK_FLOW, speech=speech)
    fake = FakeAsterisk(keys=[("1", False)])  # "1": yes, that is right
    await run_call(server, fake)
    assert speech.asked == [(prompt("problem"), "en", ["heating", "water"])]
    assert fake.played == [prompt("said_heating"), prompt("confirm")]
    assert fake.set_vars[channel_vars.QUEUE] == "heating"
    assert fake.set_vars[channel_vars.INTENT] == "heating"


async def test_ask_choose_again_falls_back_to_the_keypad(stack: Stack, db: Database) -> None:
    speech = FakeSpeech([SpeechResult("heating", "горячая вода", 0.4)])
    server = await stack.serve(ASK_FLOW, speech=speech)
    fake = FakeAsterisk(keys=[("2", False), ("1", False)])  # "no", then key 1 = water
    await run_call(server, fake)
    assert fake.played[-1] == prompt("problem")  # asked again, by keypad
    assert fake.set_vars[channel_vars.QUEUE] == "plumbing"
    assert event_kinds(db)["speech"]["text"] == "горячая вода"


async def test_a_doubtful_guess_is_offered_and_routed_when_confirmed(
    stack: Stack, db: Database
) -> None:
    # Not understood for sure, but the recogniser's low-margin guess is "heating": the caller
    # is asked "you said heating? press 1" instead of "sorry, once more".
    speech = FakeSpeech([SpeechResult(None, "난방 어요", 0.5, candidate="heating")])
    server = await stack.serve(ASK_FLOW, speech=speech)
    fake = FakeAsterisk(keys=[("1", False)])
    await run_call(server, fake)
    assert fake.played == [prompt("said_heating"), prompt("confirm")]
    assert fake.set_vars[channel_vars.QUEUE] == "heating"
    assert event_kinds(db)["speech"]["candidate"] == "heating"


async def test_a_doubtful_guess_refused_goes_to_the_keypad(stack: Stack) -> None:
    speech = FakeSpeech([SpeechResult(None, "난방", 0.5, candidate="heating")])
    server = await stack.serve(ASK_FLOW, speech=speech)
    fake = FakeAsterisk(keys=[("2", False), ("1", False)])  # "no", then key 1 = water
    await run_call(server, fake)
    assert fake.played[-1] == prompt("problem")
    assert fake.set_vars[channel_vars.QUEUE] == "plumbing"


async def test_a_refused_guess_is_followed_by_the_runner_up(stack: Stack, db: Database) -> None:
    speech = FakeSpeech([SpeechResult(None, "난방", 0.5, candidate="heating", runner_up="water")])
    server = await stack.serve(ASK_FLOW, speech=speech)
    fake = FakeAsterisk(keys=[("2", False), ("1", False)])  # not heating; water, yes
    await run_call(server, fake)
    assert fake.played == [
        prompt("said_heating"),
        prompt("confirm"),
        prompt("said_water"),
        prompt("confirm"),
    ]
    assert fake.set_vars[channel_vars.QUEUE] == "plumbing"
    assert event_kinds(db)["speech"]["runner_up"] == "water"


async def test_both_guesses_refused_go_to_the_keypad(stack: Stack) -> None:
    speech = FakeSpeech([SpeechResult(None, "난방", 0.5, candidate="heating", runner_up="water")])
    server = await stack.serve(ASK_FLOW, speech=speech)
    fake = FakeAsterisk(keys=[("2", False), ("2", False), ("3", False)])  # no, no, key 3
    await run_call(server, fake)
    assert fake.played[-1] == prompt("problem")  # asked again, by keypad
    assert fake.set_vars[channel_vars.QUEUE] == "heating"


async def test_a_doubtful_guess_is_not_offered_without_a_confirm_step(stack: Stack) -> None:
    flow = ASK_FLOW.replace("    confirm: confirm\n", "")
    speech = FakeSpeech([SpeechResult(None, "난방", 0.5, candidate="heating")] * 2)
    server = await stack.serve(flow, speech=speech)
    fake = FakeAsterisk()
    await run_call(server, fake)
    assert prompt("said_heating") not in fake.played
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"


async def test_a_sure_answer_is_said_back_and_routed_when_only_doubts_are_confirmed(
    stack: Stack,
) -> None:
    flow = ASK_FLOW.replace(
        "    confirm: confirm\n", "    confirm: confirm\n    confirm_sure: false\n"
    )
    speech = FakeSpeech([SpeechResult("heating", "난방", 0.9)])
    server = await stack.serve(flow, speech=speech)
    fake = FakeAsterisk()
    await run_call(server, fake)
    assert fake.played == [prompt("said_heating")]  # no "press 1 if right"
    assert fake.set_vars[channel_vars.QUEUE] == "heating"


async def test_ask_without_a_recogniser_is_a_keypad_menu(stack: Stack) -> None:
    server = await stack.serve(ASK_FLOW, speech=None)
    fake = FakeAsterisk(keys=[("3", False)])
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "heating"


async def test_ask_not_understood_twice_goes_to_the_coordinator(stack: Stack) -> None:
    speech = FakeSpeech([SpeechResult(None, "ммм"), SpeechResult(None, "э-э")])
    server = await stack.serve(ASK_FLOW, speech=speech)
    fake = FakeAsterisk()
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"
    assert fake.count("GET DATA") == 0


async def test_a_broken_recogniser_falls_back_to_the_keypad(stack: Stack) -> None:
    async def broken(agi: AgiChannel, **_: object) -> SpeechResult | None:
        raise RuntimeError("vosk model missing")

    server = await stack.serve(ASK_FLOW, speech=broken)
    fake = FakeAsterisk(keys=[("1", False)])
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "plumbing"


# --- collect: length and checksum rules ----------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "queue"),
    [
        ([("79927398713", False)], "meters"),  # valid Luhn
        ([("7992739871#", False), ("79927398713#", False)], "meters"),  # bad, then good
        ([("123", False), ("", True)], "coordinator"),  # too short, then silence
        ([("1" * 5000, False), ("*#*#", False)], "coordinator"),  # garbage and symbols
    ],
)
async def test_collect_digits(
    stack: Stack, db: Database, keys: list[tuple[str, bool]], queue: str
) -> None:
    server = await stack.serve(COLLECT_FLOW)
    fake = FakeAsterisk(keys=keys)
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == queue
    assert all(c.endswith(" 1000 13") for c in fake.commands if c.startswith("GET DATA"))
    if len(keys) > 1:
        assert prompt("sorry") in fake.played
        assert "collect_invalid" in event_kinds(db)


def long_collect_flow(min_length: int, max_length: int) -> str:
    """COLLECT_FLOW with other lengths, no checksum and no second try."""
    return (
        COLLECT_FLOW.replace("min_length: 6", f"min_length: {min_length}")
        .replace("max_length: 12", f"max_length: {max_length}")
        .replace("    checksum: luhn\n", "")
        .replace("retries: 1", "retries: 0")
    )


@pytest.mark.parametrize(
    ("lo", "hi", "keys", "queue"),
    [
        (1, 16, "1" * 17, "coordinator"),  # one key too many: refused, not cut to 16 and taken
        (18, 20, "1" * 18, "meters"),  # longer than a menu choice, as long as the node allows
        (1, 32, "1" * 33, "coordinator"),
    ],
)
async def test_collect_length_rules_hold_beyond_a_menu_choices_length(
    stack: Stack, lo: int, hi: int, keys: str, queue: str
) -> None:
    # Found by playing attacker (2026-12-06): entries were cut to 16 keys (a menu choice's
    # length) before the node's own rules were checked.
    server = await stack.serve(long_collect_flow(lo, hi))
    fake = FakeAsterisk(keys=[(keys, False)])
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == queue


# --- repeat caller, hang-up node --------------------------------------------------------------


async def test_repeat_caller_within_24_hours_gets_priority(stack: Stack, db: Database) -> None:
    server = await stack.serve(REPEAT_FLOW)
    first = FakeAsterisk(override=hangup_ok)
    await run_call(server, first)
    assert first.commands[-1] == "HANGUP"  # first call: the flow says goodbye and hangs up
    assert first.played == [prompt("bye")]
    again = FakeAsterisk(variables={"CHANNEL(linkedid)": "1763920000.99"})
    await run_call(server, again, environment(agi_uniqueid="1763920000.99"))
    assert again.set_vars[channel_vars.QUEUE] == "coordinator"
    assert again.set_vars[channel_vars.PRIORITY] == "7"


async def test_anonymous_caller_is_never_a_repeat_caller(stack: Stack) -> None:
    server = await stack.serve(REPEAT_FLOW)
    env = environment(agi_callerid="unknown", agi_calleridname="unknown")
    await run_call(server, FakeAsterisk(override=hangup_ok), env)
    fake = FakeAsterisk(variables={"CHANNEL(linkedid)": "2.2"}, override=hangup_ok)
    await run_call(server, fake, {**env, "agi_uniqueid": "2.2"})
    assert fake.commands[-1] == "HANGUP"


# --- failures never drop the caller --------------------------------------------------------------


async def test_engine_failure_sends_the_caller_to_the_coordinator(
    stack: Stack, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(self: FlowEngine, node: object) -> None:
        raise RuntimeError("bug in a node")

    monkeypatch.setattr(FlowEngine, "_route", boom)
    server = await stack.serve(HOURS_FLOW)
    fake = FakeAsterisk(keys=[("1", False)])
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"
    assert fake.set_vars[channel_vars.MENU_CHOICE] == "1"
    assert event_kinds(db)["flow_error"]["node"] == "water"
    call = call_row(db)
    assert call is not None and call.queue == "coordinator"


async def test_missing_flow_sends_the_caller_to_the_coordinator(
    stack: Stack, settings: Settings
) -> None:
    server = await stack.serve(HOURS_FLOW)
    (settings.flows_dir / "hotline.yaml").unlink()
    assert server.app.flows is not None
    server.app.flows.registry.reload()
    fake = FakeAsterisk()
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"


async def test_hangup_records_the_node_the_caller_left(stack: Stack, db: Database) -> None:
    server = await stack.serve(COLLECT_FLOW)
    fake = FakeAsterisk(keys=[("12", False)], hangup_on=("GET DATA", 2))
    await run_call(server, fake)
    left = event_kinds(db)["hangup_in_menu"]
    assert left["node"] == "account"
    assert left["summary"] == "abandoned in menu at node account"


async def test_a_supervisor_edit_is_live_for_the_next_call(
    stack: Stack, settings: Settings
) -> None:
    server = await stack.serve(HOURS_FLOW)
    path = settings.flows_dir / "hotline.yaml"
    path.write_text(
        path.read_text().replace("6: {next: lift}", "6: {next: lift}\n      7: {next: water}")
    )
    assert server.app.flows is not None
    assert server.app.flows.registry.reload() == []
    fake = FakeAsterisk(keys=[("7", False)])
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "plumbing"


# --- voicemail ----------------------------------------------------------------------------------


def recorder(reply: list[str]) -> Callable[[str], list[str] | None]:
    def answer(cmd: str) -> list[str] | None:
        if cmd.startswith("RECORD FILE"):
            return reply
        return hangup_ok(cmd)

    return answer


def message_wav(path: Path, *, quiet_ms: int, speech_ms: int) -> None:
    """What Asterisk leaves: silence, a voice (a tone stands in for it), silence."""
    from pydub import AudioSegment
    from pydub.generators import Sine

    voice = Sine(440).to_audio_segment(duration=speech_ms, volume=-12)
    quiet = AudioSegment.silent(duration=quiet_ms, frame_rate=8000)
    path.parent.mkdir(parents=True, exist_ok=True)
    (quiet + voice + quiet).set_frame_rate(8000).set_channels(1).export(path, format="wav")


async def test_voicemail_is_recorded_and_opens_a_callback(
    stack: Stack, db: Database, settings: Settings
) -> None:
    server = await stack.serve(VOICEMAIL_FLOW)
    host_file = settings.recordings_dir / "voicemail" / f"{LINKEDID}-2.wav"

    def record(cmd: str) -> list[str] | None:
        if cmd.startswith("RECORD FILE"):
            # 2 s of silence, 1 s of voice, 2 s of silence: as Asterisk would have written it.
            message_wav(host_file, quiet_ms=2000, speech_ms=1000)
        return recorder(["200 result=0 (timeout) endpos=40000"])(cmd)

    fake = FakeAsterisk(override=record)
    await run_call(server, fake)
    recorded = next(c for c in fake.commands if c.startswith("RECORD FILE"))
    assert recorded == (f'RECORD FILE "{RECORDINGS}/voicemail/{LINKEDID}-2" wav "#" 60000 BEEP s=3')
    assert fake.commands[-1] == "HANGUP"
    left = event_kinds(db)["voicemail"]
    # Leading and trailing silence trimmed (a quarter second kept either side of the voice).
    assert left == {
        "file": f"voicemail/{LINKEDID}-2.wav",
        "seconds": 1.5,
        "queue": "heating",
        "trimmed_seconds": 3.5,
        "silent": False,
    }
    from pydub import AudioSegment

    assert abs(len(AudioSegment.from_file(host_file)) - 1500) <= 20
    from sqlalchemy import select

    from call_router.callback_models import CallbackAttempt
    from call_router.models import Callback

    with db.session() as session:
        entries = session.scalars(select(Callback)).all()
        assert [(e.caller_number, e.reason, e.queue) for e in entries] == [
            ("+79161234567", "voicemail", "heating")
        ]
        assert entries[0].note == f"voicemail: voicemail/{LINKEDID}-2.wav"
        linked = session.scalars(
            select(CallbackAttempt).where(CallbackAttempt.action == "voicemail")
        ).all()
        assert [(a.callback_id, a.data) for a in linked] == [
            (entries[0].id, {"file": f"voicemail/{LINKEDID}-2.wav"})
        ]


async def test_hangup_while_recording_still_keeps_the_message(stack: Stack, db: Database) -> None:
    server = await stack.serve(VOICEMAIL_FLOW)
    fake = FakeAsterisk(override=recorder(["HANGUP", "200 result=-1 endpos=24000"]))
    await run_call(server, fake)
    events = event_kinds(db)
    assert events["voicemail"]["file"] == f"voicemail/{LINKEDID}-2.wav"
    assert events["voicemail"]["seconds"] is None  # Asterisk said HANGUP before the length
    assert events["hangup_in_menu"]["node"] == "message (after voicemail)"


# --- the built-in flow after hours ---------------------------------------------------------------

CLOSED_NIGHTS = """\
timezone: Europe/Moscow
week: {mon: "08:00-20:00", tue: "08:00-20:00", wed: "08:00-20:00", thu: "08:00-20:00",
       fri: "08:00-20:00"}
"""


@pytest.fixture
async def built_in_at_night(
    settings: Settings, db: Database, tmp_path: Path
) -> AsyncIterator[AgiServer]:
    """The repo's ivr_flows with real hours, at 23:00 on a Monday (an injected clock)."""
    folder = tmp_path / "built_in"
    shutil.copytree(PROJECT_ROOT / "ivr_flows", folder)
    (folder / "calendar.yaml").write_text(CLOSED_NIGHTS)
    registry = FlowRegistry(folder, queues=QUEUES)
    assert registry.last_errors == []
    services = FlowServices(
        registry=registry,
        clock=moscow("2026-11-23 23:00"),
        lookups=DbLookups(db, "RU"),
        numbers={"gas_emergency_number": "104"},
    )
    server = await started_agi(settings, db, services)
    yield server
    await server.stop(grace=1.0)


async def test_after_hours_emergency_reaches_the_duty_team_first(
    built_in_at_night: AgiServer,
) -> None:
    fake = FakeAsterisk(keys=[("1", False)])
    await run_call(built_in_at_night, fake)
    assert fake.played[0] == prompt("after_hours")
    assert fake.set_vars[channel_vars.QUEUE] == "duty"
    assert fake.set_vars[channel_vars.PRIORITY] == "10"
    assert fake.set_vars[channel_vars.INTENT] == "emergency"


async def test_after_hours_silence_goes_to_duty_not_a_recorder(
    built_in_at_night: AgiServer,
) -> None:
    fake = FakeAsterisk()
    await run_call(built_in_at_night, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "duty"


async def test_after_hours_message_is_left_for_a_callback(
    built_in_at_night: AgiServer, db: Database
) -> None:
    fake = FakeAsterisk(
        keys=[("2", False)], override=recorder(["200 result=35 (dtmf) endpos=80000"])
    )
    await run_call(built_in_at_night, fake)
    assert channel_vars.QUEUE not in fake.set_vars
    assert fake.played[-2:] == [prompt("leave_message"), prompt("message_saved")]
    assert fake.commands[-1] == "HANGUP"
    assert event_kinds(db)["voicemail"]["seconds"] == 10.0


# --- incidents ------------------------------------------------------------------------------------


@pytest.fixture
async def built_in(settings: Settings, db: Database) -> AsyncIterator[AgiServer]:
    """The repo's ivr_flows with the database lookups (incidents, repeat callers)."""
    registry = FlowRegistry(PROJECT_ROOT / "ivr_flows", queues=QUEUES)
    services = FlowServices(
        registry=registry,
        lookups=DbLookups(db, "RU"),
        numbers={"gas_emergency_number": "104"},
    )
    server = await started_agi(settings, db, services)
    yield server
    await server.stop(grace=1.0)


def add_incident(db: Database, **kw: object) -> int:
    from call_router.flow_models import Incident

    with db.session() as session:
        incident = Incident(
            category=kw.get("category", "hot_water"),
            areas=kw.get("areas", []),
            message={"ru": "x", "en": "y"},
            ended_at=kw.get("ended_at"),
            expected_end=kw.get("expected_end"),
        )
        session.add(incident)
        session.flush()
        return incident.id


async def test_an_active_incident_is_heard_before_the_menu(
    built_in: AgiServer, db: Database
) -> None:
    heard = add_incident(db)
    add_incident(db, areas=["Lenina 5"])  # the caller's area is unknown: not announced
    add_incident(db, ended_at=datetime(2026, 1, 1, tzinfo=UTC))  # over
    fake = FakeAsterisk(keys=[("1", False), ("2", False)])  # "different problem", electricity
    await run_call(built_in, fake)
    assert fake.played[:5] == [
        prompt("greeting"),
        prompt("russian_offer", "ru"),
        prompt(f"incident_{heard}"),
        prompt("different_problem"),
        prompt("menu"),
    ]
    assert fake.set_vars[channel_vars.QUEUE] == "electricity"
    assert event_kinds(db)["incident_announced"]["incidents"] == [heard]


async def test_a_caller_who_hangs_up_after_the_announcement_counts_as_helped(
    built_in: AgiServer, db: Database
) -> None:
    from hotline.cli_incidents import _effect

    heard = add_incident(db)
    fake = FakeAsterisk(hangup_on=("GET DATA", 1))  # gone during "press 1 if different"
    await run_call(built_in, fake)
    assert event_kinds(db)["hangup_in_menu"]["node"] == "incidents"
    assert channel_vars.QUEUE not in fake.set_vars
    with db.session() as session:
        assert _effect(session) == ({heard: 1}, {heard: 1})


async def test_without_incidents_the_menu_comes_straight_after_the_greeting(
    built_in: AgiServer,
) -> None:
    fake = FakeAsterisk(keys=[("3", False)])
    await run_call(built_in, fake)
    assert fake.played[:3] == [prompt("greeting"), prompt("russian_offer", "ru"), prompt("menu")]
    assert fake.set_vars[channel_vars.QUEUE] == "heating"


AREA_FLOW = """\
start: area
nodes:
  area:
    type: collect
    prompt: account
    var: area
    max_length: 4
    next: incidents
    on_failure: menu
  incidents:
    type: incident
    different_prompt: sorry
    expected_prompt: closed
    next: menu
  menu:
    type: menu
    prompt: menu
    options: {1: {next: water}}
    on_failure: water
  water: {type: route, queue: plumbing, intent: water}
"""


def saying(cmd: str) -> list[str] | None:
    """res_agi's answer to the SAY commands: spoken, no key pressed."""
    return ["200 result=0"] if cmd.startswith("SAY ") else hangup_ok(cmd)


async def test_incidents_of_the_callers_area_with_the_expected_end_spoken(
    stack: Stack, db: Database
) -> None:
    """`area` is a call variable (here keyed in; a lookup could `set` it): incidents of that
    area are heard, others not; the expected end is spoken by Asterisk in the call's zone."""
    ends = datetime(2099, 1, 1, 15, 0, tzinfo=UTC)  # 18:00 in Moscow
    ours = add_incident(db, areas=["12"], expected_end=ends)
    add_incident(db, areas=["34"])
    server = await stack.serve(AREA_FLOW, calendar=CALENDAR)
    fake = FakeAsterisk(keys=[("12", False), ("", True), ("1", False)], override=saying)
    await run_call(server, fake)
    assert prompt(f"incident_{ours}") in fake.played
    assert fake.played.index(prompt("closed")) == fake.played.index(prompt(f"incident_{ours}")) + 1
    said = [c for c in fake.commands if c.startswith("SAY DATETIME")]
    epoch = int(ends.timestamp())
    assert said == [f'SAY DATETIME {epoch} "1" IMp Europe/Moscow']  # English: 6 p.m.
    assert event_kinds(db)["incident_announced"]["incidents"] == [ours]


async def test_the_expected_end_is_said_the_russian_way(stack: Stack, db: Database) -> None:
    add_incident(db, expected_end=datetime(2099, 1, 1, 15, 0, tzinfo=UTC))
    server = await stack.serve(AREA_FLOW, calendar=CALENDAR)
    fake = FakeAsterisk(
        keys=[("99", False)], override=saying, variables={"CHANNEL(language)": "ru"}
    )
    await run_call(server, fake)
    assert [c.split(" ")[4] for c in fake.commands if c.startswith("SAY DATETIME")] == ["HM"]


# --- gas: the gas emergency service, over the trunk --------------------------------------------


def dialling(status: str) -> Callable[[str], list[str] | None]:
    def answer(cmd: str) -> list[str] | None:
        if cmd.startswith("EXEC Dial"):
            return ["200 result=0"]
        if cmd == "GET VARIABLE DIALSTATUS":
            return [f"200 result=1 ({status})"]
        return hangup_ok(cmd)

    return answer


async def test_a_gas_smell_at_night_is_put_through_to_the_gas_service(
    built_in_at_night: AgiServer, db: Database
) -> None:
    fake = FakeAsterisk(keys=[("3", False)], override=dialling("ANSWER"))
    await run_call(built_in_at_night, fake)
    assert 'EXEC Dial "PJSIP/104@pstn,30"' in fake.commands
    assert fake.played[-1] == prompt("gas_transfer")
    assert fake.commands[-1] == "HANGUP"
    assert channel_vars.QUEUE not in fake.set_vars
    assert event_kinds(db)["transfer"] == {"node": "gas", "number": "104", "status": "ANSWER"}


async def test_when_the_gas_service_does_not_answer_the_duty_team_does(
    built_in_at_night: AgiServer, db: Database
) -> None:
    fake = FakeAsterisk(keys=[("3", False)], override=dialling("NOANSWER"))
    await run_call(built_in_at_night, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "duty"
    assert fake.set_vars[channel_vars.PRIORITY] == "10"
    assert event_kinds(db)["transfer"]["status"] == "NOANSWER"


async def test_a_gas_smell_said_in_the_day_is_confirmed_and_put_through(
    stack: Stack, db: Database
) -> None:
    speech = FakeSpeech([SpeechResult("gas", "пахнет газом", 0.8)])
    server = await stack.serve(None, speech=speech)
    fake = FakeAsterisk(keys=[("1", False)], override=dialling("ANSWER"))
    await run_call(server, fake)
    # Spoken-only choices are offered to the recogniser; the language switch (9) is not.
    assert "gas" in speech.asked[0][2] and "other_language" not in speech.asked[0][2]
    assert prompt("said_gas") in fake.played
    assert 'EXEC Dial "PJSIP/104@pstn,30"' in fake.commands


async def test_a_caller_who_ends_the_transferred_call_is_not_an_abandonment(
    built_in_at_night: AgiServer, db: Database
) -> None:
    def answer(cmd: str) -> list[str] | None:
        if cmd.startswith("EXEC Dial"):
            return ["HANGUP", "200 result=-1"]
        return dialling("ANSWER")(cmd)

    fake = FakeAsterisk(keys=[("3", False)], override=answer)
    await run_call(built_in_at_night, fake)
    events = event_kinds(db)
    assert events["transfer"]["status"] == "ANSWER"
    assert "hangup_in_menu" not in events


# --- the hotline menu by speech or keypad ------------------------------------------------------


async def test_a_key_pressed_instead_of_speaking_is_the_choice(stack: Stack) -> None:
    speech = FakeSpeech([SpeechResult(None, key="3")])
    server = await stack.serve(None, speech=speech)
    fake = FakeAsterisk()
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "heating"
    assert fake.count("GET DATA") == 0
    # With speech, the menu asks for words first; the keypad menu text is for the rest.
    assert speech.asked[0][0] == prompt("menu_spoken")


async def test_saying_meter_readings_leads_into_the_meters_flow(stack: Stack, db: Database) -> None:
    speech = FakeSpeech([SpeechResult("meters", "показания счётчиков", 0.9)])
    server = await stack.serve(None, speech=speech)
    fake = FakeAsterisk(keys=[("1", False)])  # "right"; then silence at the payer code
    await run_call(server, fake)
    assert prompt("said_meters") in fake.played
    assert prompt("meters_payer") in fake.played
    steps = event_kinds(db)
    assert steps["menu_result"]["intent"] == "meters"  # the meters flow's coordinator route


async def test_not_understood_twice_in_the_hotline_goes_to_the_coordinator(stack: Stack) -> None:
    speech = FakeSpeech([SpeechResult(None, "ммм"), SpeechResult(None, "")])
    server = await stack.serve(None, speech=speech)
    fake = FakeAsterisk()
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"


# --- odd keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "queue", "choice"),
    [
        ([("#", False), ("1", False)], "plumbing", "1"),  # `#` is not an option: a retry
        ([("*", False), ("6", False)], "lift", "6"),  # `*` repeats without counting
        ([("A", False), ("#", False)], "coordinator", "#"),  # fourth-column keys, then `#`
        ([("1", True)], "plumbing", "1"),  # a key, then the timeout flag: still the key
        ([("9" * 300, False), ("", True)], "coordinator", "9" * 16),  # bounded in the log
    ],
)
async def test_odd_keys_get_a_sensible_next_step(
    stack: Stack, db: Database, keys: list[tuple[str, bool]], queue: str, choice: str
) -> None:
    server = await stack.serve(HOURS_FLOW)
    fake = FakeAsterisk(keys=keys)
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == queue
    assert fake.set_vars[channel_vars.MENU_CHOICE] == choice
    call = call_row(db)
    assert call is not None and call.queue == queue


# --- language chosen in the menu, remembered per number ------------------------------------------


async def test_language_choice_is_remembered_for_the_next_call(
    built_in: AgiServer, db: Database
) -> None:
    ru = {"CHANNEL(language)": "ru"}
    first = FakeAsterisk(keys=[("9", False), ("2", False)], variables=dict(ru))
    await run_call(built_in, first)
    assert first.played[:3] == [
        prompt("greeting", "ru"),
        prompt("english_offer"),
        prompt("menu", "ru"),
    ]
    assert first.played[3] == prompt("menu")  # 9: the menu again, in English
    assert first.set_vars[channel_vars.QUEUE] == "electricity"
    call = call_row(db)
    assert call is not None and call.language == "en"

    again = FakeAsterisk(keys=[("3", False)], variables={**ru, "CHANNEL(linkedid)": "3.3"})
    await run_call(built_in, again, environment(agi_uniqueid="3.3"))
    assert again.played[0] == prompt("greeting")  # English from the first word
    assert again.set_vars[channel_vars.QUEUE] == "heating"


async def test_anonymous_callers_language_is_not_remembered(
    built_in: AgiServer, db: Database
) -> None:
    env = environment(agi_callerid="unknown")
    ru = {"CHANNEL(language)": "ru"}
    await run_call(
        built_in.port, FakeAsterisk(keys=[("9", False), ("2", False)], variables=dict(ru)), env
    )
    again = FakeAsterisk(keys=[("3", False)], variables={**ru, "CHANNEL(linkedid)": "4.4"})
    await run_call(built_in, again, {**env, "agi_uniqueid": "4.4"})
    assert again.played[0] == prompt("greeting", "ru")
