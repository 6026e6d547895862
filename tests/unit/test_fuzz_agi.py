"""Property-based fuzzing of the AGI edge: environment reader, reply parser, FastAGI server.

Properties: the parsers raise only their own typed errors; the channel never talks on a
stream it can no longer trust; and over a real loopback socket a hostile session (random,
truncated, oversized or binary environment; garbage, unsolicited HANGUP, runaway usage
blocks, huge lines as replies) never blocks a well-formed call served beside it, ends within
a bound, and routes the caller only to a real queue (else the dialplan's fail-safe applies).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from agi_scripts.agi import (
    ENV_MAX_BYTES,
    AgiChannel,
    AgiEnvironment,
    AgiError,
    AgiResult,
    CallerHangup,
    EnvironmentReadError,
    parse_any_reply_line,
    parse_environment,
    parse_reply_line,
    printable,
    read_environment,
)
from agi_scripts.server import AgiServer, RouteRegistry, build_app
from call_router import channel_vars
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.settings import QUEUES, Settings
from tests.unit import test_agi_protocol as agi_protocol
from tests.unit.fuzzing import PURE, SOCKETS, SOCKETS_DEEP
from tests.unit.test_agi_protocol import (
    FakeAsterisk,
    encode_environment,
    environment,
    run_call,
    variables_set,
)

# The server's own bounds in these tests (production: 5 s and 10 s).
ENV_TIMEOUT = 0.3
COMMAND_TIMEOUT = 2.0
# A hostile session must be over within this; a good one beside it served within this.
HOSTILE_BOUND = 30.0
GOOD_BOUND = 15.0
# When the hostile peer has said its piece and the server still waits, Asterisk's real reply
# follows after this long (keeps examples short even on GET DATA's two-minute timeout).
LATE_REPLY_AFTER = 0.3
# Larger than the server's stream limit (2 x ENV_MAX_BYTES).
HUGE = 3 * ENV_MAX_BYTES

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# --- strategies --------------------------------------------------------------------------

line_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=80
)
line_bytes = st.binary(max_size=80).map(lambda b: b.replace(b"\n", b""))
numberish = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["", "-1", "0", "1", "50", "9" * 30, "1e9", "٣", "nan"]),
    st.text("0123456789", min_size=4000, max_size=5000),
)


@st.composite
def ok_reply(draw: st.DrawFn) -> bytes:
    """A `200` line with odd result, data and endpos parts."""
    line = "200 result=" + draw(st.one_of(numberish, line_text.map(lambda t: t.replace(" ", ""))))
    if draw(st.booleans()):
        line += " (" + draw(line_text) + ")"
    if draw(st.booleans()):
        line += " endpos=" + draw(numberish)
    return line.encode("utf-8", "surrogatepass")


reply_line = st.one_of(
    st.just(b"HANGUP"),
    st.just(b"100 result=0 Trying..."),
    st.just(b"520-Invalid command syntax.  Proper usage follows:"),
    st.just(b"520 End of proper usage."),
    st.just(b"510 Invalid or unknown command"),
    st.just(b"511 Command Not Permitted on a dead channel or intercepted channel"),
    st.just(b"200 result=-1"),
    ok_reply(),
    line_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    line_bytes,
    st.sampled_from([HUGE, ENV_MAX_BYTES * 2 - 5]).map(
        lambda n: b"200 result=1 (" + b"x" * n + b")"
    ),
)

# One answer of the hostile peer to one command: some lines, or an end of the conversation.
CLOSE = b"<close>"
reply_step = st.one_of(
    st.lists(reply_line, min_size=1, max_size=4).map(lambda lines: b"\n".join(lines) + b"\n"),
    st.just(CLOSE),
    line_bytes.map(lambda b: b"<truncate>" + b),
)

env_value = st.one_of(line_text, st.text(max_size=300), st.just("x" * 20_000))


@st.composite
def hostile_environment(draw: st.DrawFn) -> bytes:
    """A header as a broken or malicious peer might send it."""
    env = environment(
        agi_callerid=draw(env_value),
        agi_calleridname=draw(env_value),
        agi_network_script=draw(st.sampled_from(["hotline", "meters", "", "x/../hotline?a=b"])),
    )
    extra = draw(st.integers(0, 3000))
    env.update({f"agi_var_{i}": "v" for i in range(extra)})
    raw = encode_environment(env)
    shape = draw(
        st.sampled_from(["whole", "truncated", "no_blank_line", "binary", "crlf", "hangup"])
    )
    if shape == "truncated":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif shape == "no_blank_line":
        raw = raw[:-1]
    elif shape == "binary":
        raw = draw(st.binary(max_size=2000)) + draw(st.sampled_from([b"", b"\n\n"]))
    elif shape == "crlf":
        raw = raw.replace(b"\n", b"\r\n")
    elif shape == "hangup":  # AGISIGHUP's line, anywhere in the header
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + b"HANGUP\n" + raw[cut:]
    return raw


# --- pure parsers ------------------------------------------------------------------------


@PURE
@given(line=st.one_of(line_text, reply_line.map(lambda b: b.decode("utf-8", "replace"))))
@example(line="200 result=1 endpos=" + "9" * 5000)  # int() refuses > 4300 digits: ValueError
def test_reply_parser_raises_only_agi_error(line: str) -> None:
    try:
        reply = parse_reply_line(line)
    except AgiError:
        return
    assert isinstance(reply, AgiResult)
    assert 0 <= reply.code <= 999
    assert reply.endpos is None or isinstance(reply.endpos, int)
    assert reply.value is None or isinstance(reply.value, int)


@PURE
@given(
    line=st.one_of(
        line_text,
        reply_line.map(lambda b: b.decode("utf-8", "replace")),
        st.tuples(reply_line, line_text).map(lambda p: p[0].decode("utf-8", "replace") + p[1]),
    )
)
@example(line="200 result=1\nHANGUP")
@example(line="200 result=1 (x) endpos=12\x1c")
@example(line="200 result=1 (a) b) endpos=3 ")
def test_the_common_reply_fast_path_parses_as_the_general_parser(line: str) -> None:
    """`parse_reply_line` reads `200 result=...` in one match: whatever the line, it gives
    what the general parser gives (or both refuse it)."""

    def parsed(parse: Callable[[str], AgiResult]) -> tuple[str, object]:
        try:
            return "ok", parse(line)
        except AgiError:
            return "refused", None

    assert parsed(parse_reply_line) == parsed(parse_any_reply_line)


@PURE
@given(raw=st.one_of(st.binary(max_size=4000), hostile_environment()))
def test_environment_parser_is_total(raw: bytes) -> None:
    env = parse_environment(raw)
    for key, value in env.values.items():
        assert key.startswith("agi_")
        assert "\n" not in value
    assert "?" not in env.network_script
    assert not env.network_script.startswith("/")
    assert not env.network_script.endswith("/")
    for text in (env.uniqueid, env.channel, env.network_script):
        assert not _CONTROL.search(printable(text, 64).replace("\N{REPLACEMENT CHARACTER}", ""))


@PURE
@given(raw=hostile_environment(), eof=st.booleans())
async def test_environment_reader_ends_with_an_environment_or_its_own_error(
    raw: bytes, eof: bool
) -> None:
    reader = asyncio.StreamReader(limit=ENV_MAX_BYTES * 2)
    reader.feed_data(raw)
    if eof:
        reader.feed_eof()
    try:
        env = await read_environment(reader, timeout=0.01)
    except EnvironmentReadError:
        return
    assert isinstance(env, AgiEnvironment)


class _Writer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    async def drain(self) -> None:
        return None


@PURE
@given(stream=st.lists(reply_line, max_size=8), eof=st.booleans())
@example(stream=[b"200 result=1 (" + b"x" * HUGE + b")", b"200 result=1"], eof=True)
@example(stream=[b"520-usage"] + [b"usage line"] * 300, eof=True)
async def test_channel_stops_talking_once_out_of_step(stream: list[bytes], eof: bool) -> None:
    """Any reply stream: a command returns a 200, or raises CallerHangup or AgiError; after an
    AgiError that is not a well-formed refusal (510/520), the stream is out of step and the
    channel refuses to send anything more (the dialplan's fail-safe takes the caller)."""
    reader = asyncio.StreamReader(limit=ENV_MAX_BYTES * 2)
    for line in stream:
        reader.feed_data(line + b"\n")
    if eof:
        reader.feed_eof()
    writer = _Writer()
    channel = AgiChannel(reader, writer, AgiEnvironment(), default_timeout=0.01)  # type: ignore[arg-type]
    for _ in range(len(stream) + 1):
        try:
            reply = await channel.command("GET VARIABLE X")
        except CallerHangup:
            return
        except AgiError as exc:
            refused = re.fullmatch(r"GET VARIABLE failed: 5[0-9][0-9].*", str(exc), re.DOTALL)
            if refused is None:
                assert channel.desynchronised, str(exc)
                sent = len(writer.sent)
                with pytest.raises((AgiError, CallerHangup)):
                    await channel.command("GET VARIABLE X")
                assert len(writer.sent) == sent
                return
            continue
        assert reply.code == 200


# --- the server over a real socket ------------------------------------------------------


# The same settings and call-log database as the protocol tests (fixtures shared by name).
settings = agi_protocol.settings


@pytest.fixture
async def server(settings: Settings, db: Database) -> AsyncIterator[AgiServer]:
    """One server for all of a test's examples: each hostile session must leave it serving."""
    app = build_app(settings, CallLog(db))
    assert isinstance(app, RouteRegistry)
    agi_server = AgiServer(app, env_timeout=ENV_TIMEOUT, command_timeout=COMMAND_TIMEOUT)
    await agi_server.start("127.0.0.1", 0)
    yield agi_server
    await agi_server.stop(grace=1.0)


@dataclass
class Session:
    commands: list[str]
    queue_set: list[str]
    seconds: float


async def good_call(port: int, n: int) -> Session:
    """A well-formed caller who presses 2 (electricity)."""
    started = time.monotonic()
    fake = FakeAsterisk(keys=[("2", False)], variables={"CHANNEL(linkedid)": f"good.{n}"})
    await run_call(port, fake, environment(agi_uniqueid=f"good.{n}"))
    queue = fake.set_vars.get(channel_vars.QUEUE)
    return Session(fake.commands, [queue] if queue else [], time.monotonic() - started)


async def hostile_call(port: int, header: bytes, script: list[bytes | None]) -> Session:
    """Send `header`, answer commands from `script` (then like Asterisk), until the server
    closes. Returns what the server said; fails the test if it never closes."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=HUGE * 4)
    fake = FakeAsterisk(keys=[("1", False)], variables={"CHANNEL(linkedid)": "hostile.1"})
    commands: list[str] = []
    half_closed = False
    try:
        writer.write(header)
        await writer.drain()
        async with asyncio.timeout(HOSTILE_BOUND):
            while True:
                try:
                    async with asyncio.timeout(LATE_REPLY_AFTER):
                        line = await reader.readline()
                except TimeoutError:
                    # The server still waits: Asterisk's real (late) reply to the last command.
                    if commands and not half_closed:
                        for out in fake.reply(commands[-1]):
                            writer.write(out.encode() + b"\n")
                        await writer.drain()
                    continue
                if not line:
                    break
                command = line.decode("utf-8", "replace").rstrip("\n")
                commands.append(command)
                step = script.pop(0) if script else None
                if step is None:
                    for out in fake.reply(command):
                        writer.write(out.encode() + b"\n")
                elif step == CLOSE or step.startswith(b"<truncate>"):
                    writer.write(step.removeprefix(b"<truncate>").removeprefix(CLOSE))
                    writer.write_eof()  # half-close: we still see when the server lets go
                    half_closed = True
                else:
                    writer.write(step)
                await writer.drain()
    except (ConnectionError, OSError):
        pass  # the server reset us: it let go, which is the point
    finally:
        writer.close()
    queue_set = [value for name, value in variables_set(commands) if name == channel_vars.QUEUE]
    for command in commands:
        assert not _CONTROL.search(command), f"control character in {command!r}"
    return Session(commands, queue_set, time.monotonic() - started)


_examples = 0


def _next_call() -> int:
    global _examples
    _examples += 1
    return _examples


@SOCKETS
@given(header=hostile_environment())
@example(header=b"agi_network: yes\nagi_network_script: hotline\n")  # never the blank line
@example(header=b"agi_x: " + b"a" * HUGE + b"\n\n")  # oversized header
async def test_hostile_environment_never_blocks_another_call(
    server: AgiServer, header: bytes
) -> None:
    hostile, good = await asyncio.gather(
        hostile_call(server.port, header, [CLOSE]), good_call(server.port, _next_call())
    )
    assert good.queue_set == ["electricity"]
    assert good.seconds < GOOD_BOUND
    assert set(hostile.queue_set) <= set(QUEUES)


@SOCKETS_DEEP
@given(
    # None: that command gets Asterisk's proper answer, so hostile replies reach the menu too.
    script=st.tuples(
        st.integers(0, 12), st.lists(st.one_of(st.none(), reply_step), min_size=1, max_size=6)
    ).map(lambda t: [None] * t[0] + t[1]),
    route=st.sampled_from(["hotline", "meters"]),
)
@example(
    script=[b"HANGUP\n"] * 3 + [b"200 result=1 endpos=" + b"9" * 5000 + b"\n"], route="hotline"
)
@example(script=[b"200 result=1 (" + b"x" * HUGE + b")\n", b"200 result=1\n"], route="hotline")
@example(script=[None, None, b"520-usage\n" + b"x\n" * 300], route="meters")
async def test_hostile_replies_end_routed_and_never_block_another_call(
    server: AgiServer, script: list[bytes | None], route: str
) -> None:
    header = encode_environment(environment(agi_network_script=route))
    hostile, good = await asyncio.gather(
        hostile_call(server.port, header, list(script)),
        good_call(server.port, _next_call()),
    )
    # How deep the hostile session got (shown by --hypothesis-show-statistics).
    event(
        f"hostile session: {'menu' if any('GET DATA' in c for c in hostile.commands) else 'setup'}"
    )
    event(f"hostile routed to: {hostile.queue_set[-1] if hostile.queue_set else 'fail-safe'}")
    assert good.queue_set == ["electricity"]
    assert good.seconds < GOOD_BOUND
    # Routed: to a real queue, or (nothing set) by the dialplan's fail-safe to a coordinator.
    assert set(hostile.queue_set) <= set(QUEUES)
    # The server is still serving afterwards.
    assert server._server is not None and server._server.is_serving()


async def test_over_long_reply_line_ends_the_session_with_a_clear_log_line(
    server: AgiServer,
) -> None:
    with capture_logs() as logs:
        hostile = await hostile_call(
            server.port,
            encode_environment(environment()),
            [b"200 result=0 (" + b"x" * HUGE + b")\n"],
        )
    assert hostile.commands == ["ANSWER"]  # nothing more said on a stream out of step
    (entry,) = [e for e in logs if e["event"] == "agi_out_of_step"]
    assert entry["error"] == "AGI reply line longer than the stream limit"
    assert not [e for e in logs if e["event"] == "agi_route_failed"]


@pytest.mark.parametrize("flood", [b"100 result=0 Trying...\n", b"HANGUP\n"])
async def test_a_flooding_peer_does_not_starve_other_calls(
    settings: Settings, db: Database, flood: bytes
) -> None:
    """A peer that never stops sending keeps its own session busy, not the event loop."""
    app = build_app(settings, CallLog(db))
    assert isinstance(app, RouteRegistry)
    # The good caller's environment competes with the flood for the one event loop: give it
    # the whole bound (the flooder sent its environment first, so no timeout is tested here).
    agi_server = AgiServer(app, env_timeout=GOOD_BOUND, command_timeout=GOOD_BOUND * 2)
    await agi_server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", agi_server.port)
    stop = asyncio.Event()

    async def flood_forever() -> None:
        writer.write(encode_environment(environment()))
        with contextlib.suppress(ConnectionError, OSError):
            while not stop.is_set():
                writer.write(flood * 4096)
                await writer.drain()

    flooding = asyncio.create_task(flood_forever())
    try:
        good = await asyncio.wait_for(good_call(agi_server.port, _next_call()), GOOD_BOUND)
        assert not flooding.done()  # served while the flood went on
        assert good.queue_set == ["electricity"]
    finally:
        stop.set()
        await flooding
        writer.close()
        await agi_server.stop(grace=0.5)
