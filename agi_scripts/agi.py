"""A typed AGI channel over asyncio streams: one call's commands, replies, deadlines, hang-ups.

We read the protocol ourselves instead of through panoramisk's Request because its reader
loops forever on a half-sent environment and takes Asterisk's unsolicited `HANGUP` line for
the next command's reply (see CONVENTIONS.md). The environment is read by agi_environment.py,
the reply lines parsed by agi_protocol.py; their names are importable from here too.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence

from agi_scripts.agi_environment import (
    ENV_MAX_BYTES,
    ENV_TIMEOUT,
    AgiEnvironment,
    EnvironmentReadError,
    parse_environment,
    read_environment,
)
from agi_scripts.agi_protocol import (
    KEYPAD,
    AgiError,
    AgiResult,
    CallerHangup,
    command_verb,
    digit_from_code,
    parse_any_reply_line,
    parse_reply_line,
    printable,
    quote_argument,
)

__all__ = [
    "DEFAULT_COMMAND_TIMEOUT",
    "ENV_MAX_BYTES",
    "ENV_TIMEOUT",
    "AgiChannel",
    "AgiEnvironment",
    "AgiError",
    "AgiResult",
    "CallerHangup",
    "EnvironmentReadError",
    "command_verb",
    "digit_from_code",
    "parse_any_reply_line",
    "parse_environment",
    "parse_reply_line",
    "printable",
    "quote_argument",
    "read_environment",
]

DEFAULT_COMMAND_TIMEOUT = 10.0
# A usage block is ~10 lines; bound it so a babbling peer cannot keep us reading.
MAX_USAGE_LINES = 200
HANGUP_LINE = "HANGUP"
# Lines that are not the reply (HANGUP, 100 Trying) read in a row before other calls get a turn.
_YIELD_EVERY = 32

_LANGUAGE = re.compile(r"[a-z]{2}(_[A-Z]{2})?")
_VARIABLE_NAME = re.compile(r"[A-Z0-9_]+")
# GET VARIABLE also takes dialplan functions, e.g. CHANNEL(linkedid).
_READABLE_NAME = re.compile(r"[A-Za-z0-9_]+(\([A-Za-z0-9_,.-]*\))?")
# What a command line must not hold (it would end the command early or smuggle another).
_LINE_BREAK = re.compile(r"[\r\n\x00]")
# Values MSet takes as they are: no separator (, |), quote, backslash, `$`, `=` or space for
# its argument parser to split, strip or substitute on. Others are set one by one.
_MSET_VALUE = re.compile(r"[A-Za-z0-9_.:+*#@/-]*")
# EXEC's reply when the application is not loaded.
_NO_SUCH_APPLICATION = -2
# Commands Asterisk answers at once, without waiting for the caller or playing anything; every
# other one (a prompt, keys, a recording, an application) may take seconds (`before_wait`).
_INSTANT_COMMANDS = (
    "SET VARIABLE ",
    "GET VARIABLE ",
    "GET FULL VARIABLE ",
    "VERBOSE ",
    "CHANNEL STATUS",
    "ANSWER",
    "EXEC MSet ",
)


class _ReplyOverdue(Exception):  # noqa: N818 - raised into the reader by the deadline timer
    """The command in flight got no reply in time."""


class AgiChannel:
    """One call's AGI conversation. Not safe for concurrent commands (the protocol is serial).

    Each command's reply is awaited against a deadline kept by one timer per channel, moved
    only when it fires or a command needs it sooner (no timer object per command): when it
    passes, the reader is failed and the command raises AgiError. `close()` stops the timer.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        env: AgiEnvironment,
        default_timeout: float = DEFAULT_COMMAND_TIMEOUT,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.env = env
        self.default_timeout = default_timeout
        self.hung_up = False
        # After a timed-out command the next line may be its late reply: stop talking.
        self.desynchronised = False
        # When the command in flight must have its reply (loop time); None: none in flight.
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the first command
        # Something not a StreamWriter (a test's) is always drained.
        self._transport: asyncio.WriteTransport | None = getattr(writer, "transport", None)
        # Called before each command that may wait for the caller (not `_INSTANT_COMMANDS`):
        # the flow engine hands its buffered step records to the call-log writer there, so
        # they are never held in this process while the caller listens or thinks.
        self.before_wait: Callable[[], None] | None = None

    # --- the protocol ------------------------------------------------------------------

    async def command(
        self, cmd: str, timeout: float | None = None, *, after_hangup: bool = False
    ) -> AgiResult:
        """Send one command and return its `200` reply; raise CallerHangup or AgiError.

        `after_hangup`: a command Asterisk still answers on a hung-up channel (GET VARIABLE),
        sent only while the AGI connection itself is open.
        """
        if _LINE_BREAK.search(cmd) is not None:
            raise ValueError("AGI command contains a line break or NUL")
        if self.hung_up and not after_hangup:
            raise CallerHangup("caller already hung up")
        if self.desynchronised:
            raise AgiError("AGI stream out of sync after an earlier timeout")
        if self.before_wait is not None and not cmd.startswith(_INSTANT_COMMANDS):
            self.before_wait()
        limit = self.default_timeout if timeout is None else timeout
        deadline = self._arm(limit)
        try:
            self.writer.write(cmd.encode("utf-8") + b"\n")
            if self._transport is None or self._transport.get_write_buffer_size():
                # The peer is not reading: wait for room, within the same deadline.
                async with asyncio.timeout_at(deadline):
                    await self.writer.drain()
            reply = await self._read_reply()
        except (TimeoutError, _ReplyOverdue) as exc:
            self.desynchronised = True
            raise AgiError(f"no reply to {command_verb(cmd)} within {limit}s") from exc
        except (ConnectionError, BrokenPipeError) as exc:
            self.hung_up = True
            raise CallerHangup("AGI connection lost") from exc
        finally:
            self._deadline = None
        if self.hung_up and not after_hangup:
            # The reply arrived after HANGUP: stream is in sync, but the call is over.
            raise CallerHangup("HANGUP received")
        if reply.code == 511:
            self.hung_up = True
            raise CallerHangup("channel is dead")
        if reply.code != 200:
            raise AgiError(f"{command_verb(cmd)} failed: {reply.code} {reply.data or ''}")
        return reply

    def _arm(self, limit: float) -> float:
        """The deadline of a command about to be sent; the timer is set (again) only if it is
        not set or set for later than that."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        self._deadline = deadline
        if self._timer is None or self._timer_at > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(deadline, self._deadline_check)
            self._timer_at = deadline
        return deadline

    def _deadline_check(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return  # no command in flight: the next one sets the timer again
        loop = asyncio.get_running_loop()
        if loop.time() < deadline:
            self._timer = loop.call_at(deadline, self._deadline_check)
            self._timer_at = deadline
            return
        # The reply is overdue: the read waiting for it fails (see `command`).
        self.reader.set_exception(_ReplyOverdue())

    def close(self) -> None:
        """The conversation is over: stop the deadline timer."""
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _read_reply(self) -> AgiResult:
        skipped = 0
        while True:
            line = await self._read_line()
            if line == HANGUP_LINE:
                self.hung_up = True
                skipped += 1
                if skipped % _YIELD_EVERY == 0:
                    # A peer flooding lines that are no reply: buffered lines are read without
                    # a pause, so let the other calls run now and then.
                    await asyncio.sleep(0)
                continue
            try:
                reply = parse_reply_line(line)
            except AgiError:
                # We cannot know which reply this was meant to be: stop talking.
                self.desynchronised = True
                raise
            if reply.code == 100:  # "100 result=0 Trying...": the real reply follows
                skipped += 1
                if skipped % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                continue
            if reply.code == 520 and line.startswith("520-"):
                await self._skip_usage_block()
            return reply

    async def _skip_usage_block(self) -> None:
        for _ in range(MAX_USAGE_LINES):
            line = await self._read_line()
            if line.startswith("520 "):
                return
        self.desynchronised = True
        raise AgiError("520 usage block never ended")

    async def _read_line(self) -> str:
        try:
            raw = await self.reader.readline()
        except (asyncio.LimitOverrunError, ValueError) as exc:
            # The reader dropped part of the line: whatever follows is not a reply we can place.
            self.desynchronised = True
            raise AgiError("AGI reply line longer than the stream limit") from exc
        if not raw:
            self.hung_up = True
            raise CallerHangup("AGI connection closed by Asterisk")
        return raw.decode("utf-8", errors="replace").rstrip("\r\n")

    async def channel_command(self, cmd: str, timeout: float | None = None) -> AgiResult:
        """A command on the channel: result=-1 means the channel failed, usually a hang-up."""
        reply = await self.command(cmd, timeout)
        if reply.value == -1:
            await self._raise_for_failed_channel(cmd)
        return reply

    async def _raise_for_failed_channel(self, cmd: str) -> None:
        # -1 means "channel failure": usually a hang-up, but Asterisk 22 also answers it to
        # STREAM FILE and GET DATA of a missing sound file, on a live channel (checked on the
        # sandbox Asterisk). CHANNEL STATUS is refused on a dead one (HANGUP + 511): that tells
        # the two apart.
        verb = command_verb(cmd)
        try:
            status = await self.command("CHANNEL STATUS", timeout=self.default_timeout)
        except CallerHangup as exc:
            raise CallerHangup(f"{verb} returned -1, then: {exc}") from exc
        if status.value is None or status.value < 0:
            self.hung_up = True
            raise CallerHangup(f"{verb} returned -1 on a dead channel")
        raise AgiError(f"{verb} returned -1 on a live channel")

    # --- typed helpers -----------------------------------------------------------------

    async def answer(self) -> None:
        await self.channel_command("ANSWER")

    async def stream_file(self, path: str, escape_digits: str = "", timeout: float = 120) -> str:
        """Play a sound file (no extension); return the key that interrupted it, or ""."""
        _check_digits(escape_digits)
        reply = await self.channel_command(
            f"STREAM FILE {quote_argument(path)} {quote_argument(escape_digits)}", timeout
        )
        return digit_from_code(reply.value)

    async def get_data(
        self, path: str, timeout_ms: int, max_digits: int, timeout: float | None = None
    ) -> tuple[str, bool]:
        """Play a prompt and collect keys: (digits, timed_out)."""
        if timeout_ms <= 0 or max_digits <= 0:
            raise ValueError("GET DATA needs a positive timeout and digit count")
        # The prompt plays before the wait starts: give the reply room for both.
        limit = timeout if timeout is not None else 120 + timeout_ms / 1000
        reply = await self.command(
            f"GET DATA {quote_argument(path)} {int(timeout_ms)} {int(max_digits)}", limit
        )
        if reply.result == "-1":
            await self._raise_for_failed_channel("GET DATA")
        digits = reply.result if KEYPAD.fullmatch(reply.result) else ""
        return digits, reply.data == "timeout"

    async def set_variable(self, name: str, value: str) -> None:
        if not _VARIABLE_NAME.fullmatch(name):
            raise ValueError(f"refusing to set channel variable {printable(name, 40)!r}")
        await self.command(f"SET VARIABLE {name} {quote_argument(value)}")

    async def set_variables(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Several channel variables, set in the order given, in one round trip (Asterisk's
        MSet) when every value is plain; else, or without MSet, one SET VARIABLE each."""
        for name, _ in pairs:
            if not _VARIABLE_NAME.fullmatch(name):
                raise ValueError(f"refusing to set channel variable {printable(name, 40)!r}")
        if len(pairs) > 1 and all(_MSET_VALUE.fullmatch(value) for _, value in pairs):
            assignments = ",".join(f"{name}={value}" for name, value in pairs)
            reply = await self.command(f"EXEC MSet {quote_argument(assignments)}")
            if reply.value == -1:
                await self._raise_for_failed_channel("EXEC MSet")
            if reply.value != _NO_SUCH_APPLICATION:
                return
        for name, value in pairs:
            await self.set_variable(name, value)

    async def set_language(self, language: str) -> None:
        """The channel language: Asterisk's own sounds (SAY DIGITS/DATETIME) follow it."""
        if not _LANGUAGE.fullmatch(language):
            raise ValueError(f"refusing channel language {printable(language, 20)!r}")
        await self.command(f"SET VARIABLE CHANNEL(language) {quote_argument(language)}")

    async def get_variable(self, name: str, *, after_hangup: bool = False) -> str | None:
        if not _READABLE_NAME.fullmatch(name):
            raise ValueError(f"refusing to read channel variable {printable(name, 40)!r}")
        reply = await self.command(f"GET VARIABLE {name}", after_hangup=after_hangup)
        if reply.value != 1:
            return None
        return reply.data if reply.data is not None else ""

    async def say_digits(self, digits: str, escape_digits: str = "") -> str:
        if not digits.isascii() or not digits.isdigit():
            raise ValueError("SAY DIGITS takes digits only")
        _check_digits(escape_digits)
        reply = await self.channel_command(
            f"SAY DIGITS {digits} {quote_argument(escape_digits)}", timeout=120
        )
        return digit_from_code(reply.value)

    async def verbose(self, message: str, level: int = 1) -> None:
        text = printable(message, 500).replace("\N{REPLACEMENT CHARACTER}", "?")
        await self.command(f"VERBOSE {quote_argument(text)} {int(level)}")

    async def hangup(self) -> None:
        await self.command("HANGUP")


def _check_digits(escape_digits: str) -> None:
    if not KEYPAD.fullmatch(escape_digits):
        raise ValueError("escape digits must be keypad symbols")
