"""The FastAGI server over a real TCP socket, against a client that talks like res_agi.

The fake Asterisk sends the environment, then answers each command line the way Asterisk 22
does (including the unsolicited `HANGUP` line and 511 on a dead channel). The call log is the
real one on a SQLite file.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agi_scripts.agi import (
    AgiChannel,
    AgiEnvironment,
    AgiError,
    CallerHangup,
    EnvironmentReadError,
    parse_environment,
    parse_reply_line,
    quote_argument,
    read_environment,
)
from agi_scripts.call_writer import CallWriter
from agi_scripts.server import AgiServer, RouteRegistry, build_app, serve
from call_router import call_log_core, channel_vars
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.models import Call
from call_router.settings import Settings
from tests.unit.conftest import menu_settings, started_agi

# The `menu` node of ivr_flows/hotline.yaml plays at most this often (schema default max_plays).
MAX_MENU_PLAYS = 6
LINKEDID = "1763920000.42"
RECORDINGS = "/var/lib/hotline/recordings"


def environment(**overrides: str) -> dict[str, str]:
    env = {
        "agi_network": "yes",
        "agi_network_script": "hotline",
        "agi_request": "agi://127.0.0.1:4573/hotline",
        "agi_channel": "PJSIP/pstn-00000001",
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": LINKEDID,
        "agi_version": "22.0.0",
        "agi_callerid": "+79161234567",
        "agi_calleridname": "Ivan Petrov",
        "agi_callingpres": "0",
        "agi_dnid": "500100",
        "agi_context": "hotline-ivr",
        "agi_extension": "500100",
        "agi_priority": "3",
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "140000000000",
    }
    env.update(overrides)
    return env


def encode_environment(env: dict[str, str]) -> bytes:
    return "".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


def unquote(arg: str) -> str:
    """res_agi's argument parser for one quoted argument."""
    assert arg.startswith('"') and arg.endswith('"'), arg
    out, escaped = [], False
    for ch in arg[1:-1]:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    return "".join(out)


def variables_set(commands: list[str]) -> list[tuple[str, str]]:
    """(name, value) of every channel variable the commands set, in order (SET VARIABLE and
    Asterisk's MSet, as res_agi and MSet parse them)."""
    found: list[tuple[str, str]] = []
    for cmd in commands:
        if cmd.startswith("SET VARIABLE "):
            name, _, raw = cmd.removeprefix("SET VARIABLE ").partition(" ")
            found.append((name, unquote(raw)))
        elif cmd.startswith("EXEC MSet "):
            for pair in unquote(cmd.removeprefix("EXEC MSet ")).split(","):
                name, _, value = pair.partition("=")
                found.append((name, value))
    return found


@dataclass
class FakeAsterisk:
    """Scripted channel state; `reply` answers one command line like res_agi."""

    variables: dict[str, str] = field(default_factory=dict)
    # Each GET DATA answer: (digits, timed_out). Exhausted → timeout with no digits.
    keys: list[tuple[str, bool]] = field(default_factory=list)
    stream_keys: list[str] = field(default_factory=list)
    # Hang up when this command verb arrives for the Nth time (1-based).
    hangup_on: tuple[str, int] | None = None
    hangup_style: str = "line"  # "line": HANGUP then result=-1; "silent": result=-1 only
    dead: bool = False
    commands: list[str] = field(default_factory=list)
    set_vars: dict[str, str] = field(default_factory=dict)
    # The names of set_vars in the order they were set (SET VARIABLE or MSet).
    set_order: list[str] = field(default_factory=list)
    played: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    override: Callable[[str], list[str] | None] | None = None

    def __post_init__(self) -> None:
        self.variables.setdefault("CHANNEL(linkedid)", LINKEDID)
        self.variables.setdefault("CHANNEL(language)", "en")
        self.variables.setdefault(channel_vars.RECORDINGS, RECORDINGS)

    def count(self, verb: str) -> int:
        return sum(1 for c in self.commands if c.startswith(verb))

    def reply(self, cmd: str) -> list[str]:
        self.commands.append(cmd)
        if self.override is not None and (custom := self.override(cmd)) is not None:
            return custom
        hangup_verb, hangup_nth = self.hangup_on or ("", 0)
        if hangup_verb and cmd.startswith(hangup_verb) and self.count(hangup_verb) == hangup_nth:
            self.dead = True
            return {
                "line": ["HANGUP", "200 result=-1"],
                "silent": ["200 result=-1"],
                # What Asterisk 22 did when the caller hung up during STREAM FILE:
                # -1 now, HANGUP written before the next reply.
                "late_line": ["200 result=-1 endpos=0"],
            }[self.hangup_style]
        prefix: list[str] = []
        if self.dead and self.hangup_style == "late_line" and "HANGUP" not in self.sent:
            self.sent.append("HANGUP")
            prefix = ["HANGUP"]
        return prefix + self._answer(cmd)

    def _answer(self, cmd: str) -> list[str]:
        if self.dead and not cmd.startswith(("GET VARIABLE", "VERBOSE")):
            return ["511 Command Not Permitted on a dead channel or intercepted channel"]
        if cmd == "ANSWER":
            return ["200 result=0"]
        if cmd.startswith("GET VARIABLE "):
            name = cmd.removeprefix("GET VARIABLE ")
            value = self.variables.get(name)
            return ["200 result=0"] if value is None else [f"200 result=1 ({value})"]
        if cmd.startswith(("SET VARIABLE ", "EXEC MSet ")):
            for name, value in variables_set([cmd]):
                self.set_vars[name] = value
                self.set_order.append(name)
            # EXEC answers its application's result: MSet's is 0.
            return ["200 result=1" if cmd.startswith("SET") else "200 result=0"]
        if cmd.startswith("STREAM FILE "):
            self.played.append(unquote(cmd.removeprefix("STREAM FILE ").rsplit(" ", 1)[0]))
            key = self.stream_keys.pop(0) if self.stream_keys else ""
            return [f"200 result={ord(key) if key else 0} endpos=8000"]
        if cmd.startswith("GET DATA "):
            self.played.append(unquote(cmd.removeprefix("GET DATA ").rsplit(" ", 2)[0]))
            digits, timed_out = self.keys.pop(0) if self.keys else ("", True)
            return [f"200 result={digits}" + (" (timeout)" if timed_out else "")]
        if cmd.startswith(("VERBOSE ", "CHANNEL STATUS")):
            return ["200 result=6" if cmd.startswith("CHANNEL") else "200 result=1"]
        return ["510 Invalid or unknown command"]


async def run_call(
    target: int | AgiServer, fake: FakeAsterisk, env: dict[str, str] | None = None
) -> None:
    """One AGI session: send the environment, answer commands until the server hangs up.

    Given the server itself (not just its port), also wait until its call-log writer has
    stored the call's writes (they are queued, never awaited by the menu).
    """
    port = target.port if isinstance(target, AgiServer) else target
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Asterisk sends the channel's language in the environment (agi_language).
    language = fake.variables.get("CHANNEL(language)", "")
    env = {**(env or environment()), "agi_language": language}
    writer.write(encode_environment(env))
    await writer.drain()
    async with asyncio.timeout(20):
        while line := await reader.readline():
            for out in fake.reply(line.decode().rstrip("\n")):
                writer.write(out.encode() + b"\n")
            await writer.drain()
    writer.close()
    if isinstance(target, AgiServer):
        assert await target.writer.idle(timeout=10), "the call-log writer did not catch up"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return menu_settings(tmp_path, default_language="ru")


@pytest.fixture
async def server(settings: Settings, db: Database) -> AsyncIterator[AgiServer]:
    agi_server = await started_agi(settings, db)
    yield agi_server
    await agi_server.stop(grace=1.0)


def call_row(db: Database, linkedid: str = LINKEDID) -> Call | None:
    with db.session() as session:
        return session.scalars(select(Call).where(Call.linkedid == linkedid)).first()


def event_kinds(db: Database, linkedid: str = LINKEDID) -> dict[str, dict[str, object]]:
    """The call's timeline as the API shows it (a row of flow steps: one entry per step): the
    data of each kind's latest entry."""
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.linkedid == linkedid)).one_or_none()
        return {item.kind: dict(item.data) for item in call.timeline} if call else {}


# --- the menu ---------------------------------------------------------------------------


async def test_key_2_routes_to_electricity(server: AgiServer, db: Database) -> None:
    fake = FakeAsterisk(keys=[("2", False)])
    await run_call(server, fake)

    assert fake.commands[0] == "ANSWER"
    assert fake.set_vars[channel_vars.QUEUE] == "electricity"
    assert fake.set_vars[channel_vars.INTENT] == "electricity"
    assert fake.set_vars[channel_vars.MENU_CHOICE] == "2"
    call = call_row(db)
    assert call is not None
    # Set only if the call-log writer had stored the row by the time the menu ended (the menu
    # never waits for the database); then it is this call's row.
    assert fake.set_vars.get(channel_vars.CALL_ID) in (None, str(call.id))
    assert (call.queue, call.intent, call.menu_choice, call.language) == (
        "electricity",
        "electricity",
        "2",
        "en",
    )
    assert call.caller_name == "Ivan Petrov"
    assert fake.played[:3] == [
        f"{RECORDINGS}/prompts/en/greeting",
        f"{RECORDINGS}/prompts/ru/russian_offer",  # "Для русского языка нажмите 9"
        f"{RECORDINGS}/prompts/en/menu",
    ]
    assert fake.played[-1] == f"{RECORDINGS}/prompts/en/transfer"


async def test_key_pressed_during_greeting_skips_the_menu(server: AgiServer) -> None:
    fake = FakeAsterisk(stream_keys=["4"])
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "lift"
    assert fake.count("GET DATA") == 0


async def test_star_repeats_the_menu_without_counting_as_a_failure(server: AgiServer) -> None:
    fake = FakeAsterisk(keys=[("*", False), ("*", False), ("1", False)])
    await run_call(server, fake)
    assert fake.count("GET DATA") == 3
    assert fake.set_vars[channel_vars.QUEUE] == "plumbing"
    assert fake.set_vars[channel_vars.INTENT] == "water"


async def test_endless_star_presses_end_at_the_coordinator(server: AgiServer) -> None:
    fake = FakeAsterisk(keys=[("*", False)] * 50)
    await run_call(server, fake)
    assert fake.count("GET DATA") == MAX_MENU_PLAYS
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"


async def test_invalid_twice_goes_to_the_coordinator(server: AgiServer, db: Database) -> None:
    # Keys 0-7 and 9 (the other language) are in the menu: 8 is not.
    fake = FakeAsterisk(keys=[("8", False), ("8", False)])
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"
    assert fake.set_vars[channel_vars.INTENT] == ""
    assert fake.set_vars[channel_vars.MENU_CHOICE] == "8"
    assert f"{RECORDINGS}/prompts/en/invalid" in fake.played
    assert fake.played[-1] == f"{RECORDINGS}/prompts/en/coordinator"
    call = call_row(db)
    assert call is not None and call.queue == "coordinator"
    assert "menu_invalid" in event_kinds(db)


async def test_silence_goes_to_the_coordinator(server: AgiServer) -> None:
    fake = FakeAsterisk(keys=[])  # every GET DATA times out
    await run_call(server, fake)
    assert fake.count("GET DATA") == 2  # menu_retries=1: one retry
    assert f"{RECORDINGS}/prompts/en/no_input" in fake.played
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"
    assert fake.set_vars[channel_vars.MENU_CHOICE] == ""


async def test_invalid_then_valid_key_routes(server: AgiServer) -> None:
    fake = FakeAsterisk(keys=[("8", False), ("0", False)])
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"
    assert fake.set_vars[channel_vars.INTENT] == "operator"


async def test_very_long_digit_string_is_an_invalid_key(server: AgiServer, db: Database) -> None:
    fake = FakeAsterisk(keys=[("1" * 5000, True), ("3" * 40, False)])
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"
    assert len(fake.set_vars[channel_vars.MENU_CHOICE]) <= 16
    call = call_row(db)
    assert call is not None and len(call.menu_choice or "") <= 16


async def test_unsupported_language_uses_the_default(server: AgiServer) -> None:
    fake = FakeAsterisk(keys=[("5", False)], variables={"CHANNEL(language)": "de"})
    await run_call(server, fake)
    assert fake.played[0] == f"{RECORDINGS}/prompts/ru/greeting"
    assert fake.set_vars[channel_vars.QUEUE] == "meters"


async def test_missing_recordings_global_falls_back_to_settings(
    server: AgiServer, settings: Settings
) -> None:
    fake = FakeAsterisk(keys=[("3", False)])
    del fake.variables[channel_vars.RECORDINGS]
    await run_call(server, fake)
    assert fake.played[0] == f"{settings.recordings_dir}/prompts/en/greeting"
    assert fake.set_vars[channel_vars.QUEUE] == "heating"


async def test_missing_menu_prompt_sends_the_caller_to_the_coordinator(
    server: AgiServer, db: Database
) -> None:
    # Asterisk 22 (checked on the sandbox): a missing file makes STREAM FILE and GET DATA answer
    # -1 while the channel is up (CHANNEL STATUS 6). The caller cannot hear the menu.
    def missing_files(cmd: str) -> list[str] | None:
        if cmd.startswith("STREAM FILE"):
            return ["200 result=-1 endpos=0"]
        if cmd.startswith("GET DATA"):
            return ["200 result=-1"]
        return None

    fake = FakeAsterisk(override=missing_files)
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"
    # greeting, language offer, menu, farewell: each probed once
    assert fake.count("CHANNEL STATUS") == 4
    call = call_row(db)
    assert call is not None and call.queue == "coordinator"
    assert "hangup_in_menu" not in event_kinds(db)


async def test_failed_playback_on_a_live_channel_does_not_stop_the_menu(server: AgiServer) -> None:
    # Should a -1 come while CHANNEL STATUS says the line is up, the menu carries on.
    def missing_greeting(cmd: str) -> list[str] | None:
        return ["200 result=-1 endpos=0"] if cmd.startswith("STREAM FILE") else None

    fake = FakeAsterisk(keys=[("2", False)], override=missing_greeting)
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "electricity"
    assert "CHANNEL STATUS" in fake.commands


# --- hang-ups ---------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["line", "silent", "late_line"])
async def test_hangup_mid_menu_is_recorded_with_the_node(
    server: AgiServer, db: Database, style: str
) -> None:
    fake = FakeAsterisk(keys=[("9", False)], hangup_on=("GET DATA", 2), hangup_style=style)
    await run_call(server, fake)
    assert channel_vars.QUEUE not in fake.set_vars
    events = event_kinds(db)
    assert events["hangup_in_menu"]["node"] == "menu"
    assert events["hangup_in_menu"]["menu_plays"] == 2
    assert "GET DATA returned -1" in str(events["hangup_in_menu"]["reason"]) or style == "line"
    # After the hang-up nothing but the dead-channel probe is sent.
    last_get_data = max(i for i, c in enumerate(fake.commands) if c.startswith("GET DATA"))
    assert all(c == "CHANNEL STATUS" for c in fake.commands[last_get_data + 1 :])


async def test_hangup_during_greeting(server: AgiServer, db: Database) -> None:
    fake = FakeAsterisk(hangup_on=("STREAM FILE", 1))
    await run_call(server, fake)
    assert event_kinds(db)["hangup_in_menu"]["node"] == "greeting"
    assert fake.count("GET DATA") == 0


async def test_hangup_line_before_a_reply_keeps_replies_in_step(server: AgiServer) -> None:
    # Asterisk writes HANGUP before the reply of the command in flight; it is not the reply.
    def hangup_then_ok(cmd: str) -> list[str] | None:
        return ["HANGUP", "200 result=1 (/r)"] if cmd == "GET VARIABLE HOTLINE_RECORDINGS" else None

    fake = FakeAsterisk(override=hangup_then_ok)
    await run_call(server, fake)
    assert fake.commands[-1] == "GET VARIABLE HOTLINE_RECORDINGS"
    assert channel_vars.QUEUE not in fake.set_vars


# --- hostile or broken peers -------------------------------------------------------------


async def test_half_sent_header_is_closed_and_others_are_served(server: AgiServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\nagi_network_script: hotline\n")  # never the blank line
    await writer.drain()

    fake = FakeAsterisk(keys=[("2", False)])
    await run_call(server, fake)  # served while the stalled one waits
    assert fake.set_vars[channel_vars.QUEUE] == "electricity"

    # The server closes it after its header timeout (without one it would wait forever).
    async with asyncio.timeout(15):
        assert await reader.read() == b""
    writer.close()

    # A peer that closes mid-header is also just dropped.
    _, writer2 = await asyncio.open_connection("127.0.0.1", server.port)
    writer2.write(b"agi_network: yes\nagi_chan")
    writer2.close()
    await asyncio.sleep(0.1)
    fake2 = FakeAsterisk(keys=[("3", False)])
    await run_call(server, fake2)
    assert fake2.set_vars[channel_vars.QUEUE] == "heating"


async def test_garbage_environment_lines_are_ignored(server: AgiServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    raw = (
        encode_environment(environment())[:-1]
        + b"garbage without colon\n\xff\xfe\x00binary: \xc3\x28\nagi_weird_key: \xe2\x82\n"
        + b"AGI_UPPER: x\n\n"
    )
    writer.write(raw)
    await writer.drain()
    fake = FakeAsterisk(keys=[("1", False)])
    async with asyncio.timeout(20):
        while line := await reader.readline():
            for out in fake.reply(line.decode().rstrip("\n")):
                writer.write(out.encode() + b"\n")
            await writer.drain()
    writer.close()
    assert fake.set_vars[channel_vars.QUEUE] == "plumbing"


async def test_garbage_reply_leaves_the_call_to_the_dialplan(server: AgiServer) -> None:
    def garbage(cmd: str) -> list[str] | None:
        return ["this is not AGI"] if cmd.startswith("GET DATA") else None

    fake = FakeAsterisk(override=garbage)
    await run_call(server, fake)  # returns: the server closed the session
    assert channel_vars.QUEUE not in fake.set_vars
    # Out of step with Asterisk: nothing more is sent, the dialplan fail-safe takes over.
    assert fake.commands[-1].startswith("GET DATA")


async def test_usage_error_block_is_consumed_whole(server: AgiServer) -> None:
    def usage(cmd: str) -> list[str] | None:
        if cmd.startswith("VERBOSE"):
            return None
        if cmd.startswith("GET DATA"):
            return [
                "520-Invalid command syntax.  Proper usage follows:",
                " Usage: GET DATA <file to be streamed> [timeout] [maxdigits]",
                "520 End of proper usage.",
            ]
        return None

    fake = FakeAsterisk(override=usage)
    await run_call(server, fake)
    # The block was read to its end, so the following commands got their own replies.
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"
    assert fake.set_vars[channel_vars.MENU_CHOICE] == ""


@pytest.mark.parametrize(
    "name",
    [
        'Evil "quoted" name',
        "line\\nbreak escaped",
        "Иван Петров",
        "<script>alert(1)</script>",
        "\x07\x1b[31mred",
    ],
)
async def test_hostile_caller_names_are_stored_clean(
    server: AgiServer, db: Database, name: str
) -> None:
    fake = FakeAsterisk(keys=[("2", False)])
    await run_call(server, fake, environment(agi_calleridname=name))
    assert fake.set_vars[channel_vars.QUEUE] == "electricity"
    call = call_row(db)
    assert call is not None
    stored = call.caller_name or ""
    assert all(ch.isprintable() for ch in stored)
    if name.isprintable():
        assert stored == name  # shown escaped by the dashboard, stored as the caller sent it


async def test_injected_header_line_cannot_change_the_route(server: AgiServer) -> None:
    # A raw line break in a caller name would put a forged key line into the environment.
    env = environment(agi_calleridname="x\nagi_network_script: evil")
    fake = FakeAsterisk(keys=[("2", False)])
    await run_call(server, fake, env)
    assert fake.set_vars[channel_vars.QUEUE] == "electricity"


async def test_a_caller_name_cannot_forge_the_linkedid_or_recordings_argument(
    server: AgiServer, db: Database
) -> None:
    # Found by playing attacker (2026-12-06): res_agi writes the AGI's arguments after the
    # caller's name, so the first copy of agi_arg_1 was the caller's: the menu logged this call
    # onto another one and played prompts from a folder the caller named.
    victim = "1763919999.7"
    env = environment(agi_calleridname=f"x\nagi_arg_1: {victim}\nagi_arg_2: /tmp/evil")
    env.update(agi_arg_1=LINKEDID, agi_arg_2=RECORDINGS)
    fake = FakeAsterisk(keys=[("2", False)])
    await run_call(server, fake, env)
    assert fake.set_vars[channel_vars.QUEUE] == "electricity"
    assert call_row(db, victim) is None
    assert call_row(db, LINKEDID) is not None
    assert fake.played and all(p.startswith(RECORDINGS + "/") for p in fake.played)


async def test_a_caller_name_cannot_forge_the_dialled_number(
    server: AgiServer, db: Database
) -> None:
    # agi_dnid lies between two values a caller controls: a second copy makes both unknown,
    # and the dialled number is the extension's (written after them).
    fake = FakeAsterisk(keys=[("2", False)])
    await run_call(server, fake, environment(agi_calleridname="x\nagi_dnid: 999999"))
    call = call_row(db, LINKEDID)
    assert call is not None and call.dialed_number == "500100"


async def test_anonymous_caller(server: AgiServer, db: Database) -> None:
    env = environment(agi_callerid="unknown", agi_calleridname="unknown", agi_callingpres="32")
    fake = FakeAsterisk(keys=[("0", False)])
    await run_call(server, fake, env)
    call = call_row(db)
    assert call is not None
    assert call.caller_number == "anonymous"
    assert call.caller_name is None
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"


async def test_the_callers_number_is_parsed_once_per_call(
    server: AgiServer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The menu normalises the number for its lookups; the call row takes that spelling with
    # the arrival instead of parsing the raw caller ID a second time in the writer.
    def parsed_again(raw: str | None, country: str = "RU") -> str:
        raise AssertionError(f"the writer parsed {raw!r} again")

    monkeypatch.setattr(call_log_core, "normalize_number", parsed_again)
    fake = FakeAsterisk(keys=[("2", False)])
    await run_call(server, fake, environment(agi_callerid="8 (495) 123-45-67"))
    call = call_row(db)
    assert call is not None
    assert (call.caller_number, call.caller_number_raw) == ("+74951234567", "8 (495) 123-45-67")


async def test_missing_linkedid_falls_back_to_uniqueid(server: AgiServer, db: Database) -> None:
    fake = FakeAsterisk(keys=[("2", False)])
    del fake.variables["CHANNEL(linkedid)"]
    await run_call(server, fake, environment(agi_uniqueid="1763920000.77"))
    assert call_row(db, "1763920000.77") is not None


async def test_unknown_route_leaves_the_call_to_the_dialplan(server: AgiServer) -> None:
    fake = FakeAsterisk()
    await run_call(server, fake, environment(agi_network_script="nope"))
    assert len(fake.commands) == 1 and fake.commands[0].startswith("VERBOSE")
    assert "nope" in fake.commands[0]


async def test_many_concurrent_calls(server: AgiServer, db: Database) -> None:
    fakes = [
        FakeAsterisk(keys=[(str(1 + i % 5), False)], variables={"CHANNEL(linkedid)": f"1.{i}"})
        for i in range(40)
    ]
    await asyncio.gather(*(run_call(server, fake) for fake in fakes))
    queues = ["plumbing", "electricity", "heating", "lift", "meters"]
    assert [f.set_vars[channel_vars.QUEUE] for f in fakes] == [queues[i % 5] for i in range(40)]
    assert all(call_row(db, f"1.{i}") is not None for i in range(40))


async def test_serve_starts_and_stops_on_cancel(settings: Settings, db: Database) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    ready = asyncio.Event()
    task = asyncio.create_task(serve(settings.model_copy(update={"agi_port": port}), ready=ready))
    # Start-up loads the speech models (about 0.5 GB): generous on a loaded machine.
    async with asyncio.timeout(60):
        await ready.wait()
    fake = FakeAsterisk(keys=[("2", False)])
    await run_call(port, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "electricity"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_stop_lets_a_running_call_finish(server: AgiServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(encode_environment(environment()))
    await writer.drain()
    fake = FakeAsterisk(keys=[("2", False)])
    first = await reader.readline()  # ANSWER: the call is running
    stopping = asyncio.create_task(server.stop(grace=3.0))
    await asyncio.sleep(0.1)
    line = first
    async with asyncio.timeout(10):
        while line:
            for out in fake.reply(line.decode().rstrip("\n")):
                writer.write(out.encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
    await stopping
    writer.close()
    assert fake.set_vars[channel_vars.QUEUE] == "electricity"


# --- the channel API, pure parts and edge cases --------------------------------------------


def test_parse_reply_lines() -> None:
    assert parse_reply_line("200 result=1 (a (b) c)").data == "a (b) c"
    ok = parse_reply_line("200 result=50 endpos=12345")
    assert (ok.value, ok.endpos) == (50, 12345)
    timeout = parse_reply_line("200 result= (timeout)")
    assert (timeout.result, timeout.data) == ("", "timeout")
    assert parse_reply_line("511 Command Not Permitted on a dead channel").code == 511
    with pytest.raises(AgiError):
        parse_reply_line("HELLO")


def test_environment_parsing_keeps_first_value_and_drops_garbage() -> None:
    env = parse_environment(
        b"agi_network_script: hotline\nagi_network_script: evil\njunk\nagi_callerid: unknown\n\n"
    )
    assert env.network_script == "hotline"
    assert env.caller_number is None
    assert AgiEnvironment({"agi_network_script": "/hotline?x=1"}).network_script == "hotline"
    by_request = AgiEnvironment({"agi_request": "agi://127.0.0.1:4573/hotline?lang=en"})
    assert by_request.network_script == "hotline"
    assert AgiEnvironment({"agi_request": "/usr/bin/script"}).network_script == ""


def test_quote_argument_escapes_quotes_and_backslashes() -> None:
    assert quote_argument('a"b\\c') == '"a\\"b\\\\c"'
    assert unquote(quote_argument('a"b\\c')) == 'a"b\\c'


async def test_environment_reader_gives_up_on_a_stalled_peer() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"agi_network: yes\n")
    with pytest.raises(EnvironmentReadError):
        await read_environment(reader, timeout=0.2)
    big = asyncio.StreamReader(limit=1 << 20)
    big.feed_data(b"agi_x: " + b"a" * 40_000 + b"\n\n")
    with pytest.raises(EnvironmentReadError):
        await read_environment(big, timeout=0.2)


class _NullWriter:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    async def drain(self) -> None:
        return None


async def test_channel_refuses_line_breaks_and_bad_names() -> None:
    writer = _NullWriter()
    channel = AgiChannel(asyncio.StreamReader(), writer, AgiEnvironment())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await channel.set_variable("HOTLINE_QUEUE", "plumbing\nHANGUP")
    with pytest.raises(ValueError):
        await channel.set_variable("hotline queue", "x")
    with pytest.raises(ValueError):
        await channel.stream_file("x", escape_digits='1"')
    assert writer.sent == []


def _answered(*replies: bytes) -> tuple[AgiChannel, _NullWriter]:
    """A channel whose peer has already sent these reply lines."""
    reader = asyncio.StreamReader()
    reader.feed_data(b"".join(replies))
    writer = _NullWriter()
    return AgiChannel(reader, writer, AgiEnvironment()), writer  # type: ignore[arg-type]


ROUTE_VARS = [("HOTLINE_CALL_ID", "17"), ("HOTLINE_INTENT", ""), ("HOTLINE_QUEUE", "plumbing")]


async def test_plain_variables_are_set_in_one_round_trip_queue_last() -> None:
    channel, writer = _answered(b"200 result=0\n")
    await channel.set_variables(ROUTE_VARS)
    assert writer.sent == [
        b'EXEC MSet "HOTLINE_CALL_ID=17,HOTLINE_INTENT=,HOTLINE_QUEUE=plumbing"\n'
    ]
    assert variables_set([writer.sent[0].decode().strip()]) == ROUTE_VARS


@pytest.mark.parametrize("value", ["a,b", "a|b", 'say "hi"', "${EVIL}", "a=b", "a b", "x\\y"])
async def test_a_value_msets_parser_would_change_is_set_on_its_own(value: str) -> None:
    pairs = [("HOTLINE_TENANT", value), ("HOTLINE_QUEUE", "duty")]
    channel, writer = _answered(b"200 result=1\n" * 2)
    await channel.set_variables(pairs)
    sent = [line.decode().strip() for line in writer.sent]
    assert all(line.startswith("SET VARIABLE ") for line in sent), sent
    assert variables_set(sent) == pairs


async def test_without_mset_the_variables_are_set_one_by_one() -> None:
    # EXEC of an application Asterisk has not loaded answers result=-2.
    channel, writer = _answered(b"200 result=-2\n", b"200 result=1\n" * 3)
    await channel.set_variables(ROUTE_VARS)
    sent = [line.decode().strip() for line in writer.sent]
    assert sent[0].startswith("EXEC MSet ")
    assert variables_set(sent[1:]) == ROUTE_VARS


async def test_variables_on_a_dead_channel_are_a_hangup() -> None:
    channel, _ = _answered(b"HANGUP\n200 result=-1\n", b"511 Command Not Permitted\n")
    with pytest.raises(CallerHangup):
        await channel.set_variables(ROUTE_VARS)


async def test_command_timeout_raises_and_marks_the_stream_unusable() -> None:
    writer = _NullWriter()
    channel = AgiChannel(asyncio.StreamReader(), writer, AgiEnvironment())  # type: ignore[arg-type]
    with pytest.raises(AgiError):
        await channel.command("ANSWER", timeout=0.1)
    with pytest.raises(AgiError):
        await channel.command("ANSWER", timeout=0.1)
    assert writer.sent == [b"ANSWER\n"]


async def test_eof_is_a_hangup() -> None:
    reader = asyncio.StreamReader()
    reader.feed_eof()
    channel = AgiChannel(reader, _NullWriter(), AgiEnvironment())  # type: ignore[arg-type]
    with pytest.raises(CallerHangup):
        await channel.answer()


# --- overload: the call-log writer behind its bound ----------------------------------------


class _StalledCallLog(CallLog):
    """A call log whose writes hang (a database far too slow) until `go` is set."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.go = threading.Event()

    def ensure_calls(self, arrivals: Any) -> dict[str, int]:
        self.go.wait(20)
        return super().ensure_calls(arrivals)


async def test_a_writer_behind_its_bound_hands_callers_to_the_dialplan_at_once(
    settings: Settings, db: Database
) -> None:
    call_log = _StalledCallLog(db)
    app = build_app(settings, call_log)
    assert isinstance(app, RouteRegistry)
    writer = CallWriter(call_log, settings.agi_spool_file, max_backlog=3, linger=0)
    server = AgiServer(app, env_timeout=0.5, command_timeout=2.0, writer=writer)
    await server.start("127.0.0.1", 0)
    try:
        # The first caller gets the menu; its writes (arrival, steps, result) stay unwritten.
        first = FakeAsterisk(keys=[("2", False)])
        await run_call(server.port, first)
        assert first.set_vars[channel_vars.QUEUE] == "electricity"
        assert writer.behind, writer.backlog
        # The next caller is not served a menu the call log cannot keep up with: no ANSWER,
        # no queue, the fail-safe told to the dialplan (the coordinator takes them at once).
        second = FakeAsterisk(keys=[("2", False)], variables={"CHANNEL(linkedid)": "2.2"})
        started = time.monotonic()
        await run_call(server.port, second, environment(agi_uniqueid="2.2"))
        assert time.monotonic() - started < 1.0
        assert second.commands == [
            'VERBOSE "hotline: FastAGI overloaded; dialplan fail-safe applies" 1'
        ]
        assert channel_vars.QUEUE not in second.set_vars
        assert server.overloaded == 1
        # Once the writer has caught up, callers get the menu again, and nothing was lost.
        call_log.go.set()
        assert await writer.idle(timeout=10)
        assert not writer.behind
        third = FakeAsterisk(keys=[("3", False)], variables={"CHANNEL(linkedid)": "3.3"})
        await run_call(server, third, environment(agi_uniqueid="3.3"))
        assert third.set_vars[channel_vars.QUEUE] == "heating"
        first_row = call_row(db)
        assert first_row is not None and first_row.queue == "electricity"
        assert call_row(db, "2.2") is None
    finally:
        call_log.go.set()
        await server.stop(grace=1.0)


async def test_the_dialplans_agi_arguments_spare_every_get_variable(
    server: AgiServer, db: Database
) -> None:
    # The shipped dialplan: AGI(agi://.../${HOTLINE_FLOW},${CHANNEL(linkedid)},${HOTLINE_RECORDINGS})
    fake = FakeAsterisk(keys=[("2", False)])
    env = environment(agi_uniqueid="5.5", agi_arg_1="5.1", agi_arg_2="/srv/rec")
    await run_call(server, fake, env)
    assert not [c for c in fake.commands if c.startswith("GET VARIABLE")]
    assert fake.played[0] == "/srv/rec/prompts/en/greeting"
    assert fake.set_vars[channel_vars.QUEUE] == "electricity"
    row = call_row(db, "5.1")  # the linkedid given, not the channel's uniqueid
    assert row is not None and row.queue == "electricity"
