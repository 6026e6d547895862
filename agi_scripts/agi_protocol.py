"""The AGI wire format: reply lines, command arguments, keypad codes, the conversation's errors.

Protocol (res_agi.c): each command is one line; the reply is `200 result=N [(data)] [endpos=N]`,
`510 Invalid or unknown command`, `511 Command Not Permitted on a dead channel...`, or a `520-`
usage block ending with `520 End of proper usage.`. When the caller hangs up Asterisk writes
`HANGUP` on its own.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

_REPLY = re.compile(r"^(?P<code>\d{3})(?P<sep>[ -])?(?P<rest>.*)$")
_RESULT = re.compile(
    # endpos is a sample count: more digits than an int64 holds is garbage, not a position.
    r"result=(?P<result>\S*)(?:\s+\((?P<data>.*)\))?(?:\s+endpos=(?P<endpos>-?\d{1,18})\b)?"
)
# The common reply in one match (see parse_reply_line): `200 result=N [(data)] [endpos=N]`.
_REPLY_200 = re.compile(
    r"200 result=(?P<result>\S*)(?:\s+\((?P<data>.*)\))?(?:\s+endpos=(?P<endpos>-?\d{1,18})\b)?"
)
# Keypad symbols: what escape digits may hold and what a key pressed may be.
KEYPAD = re.compile(r"[0-9*#A-D]*")


class AgiError(Exception):
    """The AGI conversation failed (bad reply, timeout, protocol violation)."""


class CallerHangup(Exception):  # noqa: N818 - it is an event, not an error
    """The caller is gone: end the flow, record what is useful, send nothing more."""


def printable(text: str, limit: int = 200) -> str:
    """Text safe for a log line or the Asterisk console: no control characters, bounded."""
    if text.isprintable():
        # No character of a C category (nor a separator but space): nothing to replace.
        return text[:limit]
    cleaned = "".join(
        ch if not unicodedata.category(ch).startswith("C") else "\N{REPLACEMENT CHARACTER}"
        for ch in text[: limit * 2]
    )
    return cleaned[:limit]


class AgiResult(NamedTuple):
    """One parsed reply (immutable; a tuple: one is made for every command, so it is cheap)."""

    code: int
    result: str
    data: str | None = None
    endpos: int | None = None

    @property
    def value(self) -> int | None:
        try:
            return int(self.result)
        except ValueError:
            return None


def parse_reply_line(line: str) -> AgiResult:
    # Nearly every reply is `200 result=...`: one match, the same result as the general
    # path below gives for it (checked in tests/unit/test_fuzz_agi.py).
    common = _REPLY_200.match(line) if "\n" not in line else None
    if common is not None:
        result, data, endpos = common.groups()
        return AgiResult(200, result, data, int(endpos) if endpos is not None else None)
    return parse_any_reply_line(line)


def parse_any_reply_line(line: str) -> AgiResult:
    """Any reply line: `200`, `100 Trying`, `510`, `511`, `520` and the rest."""
    match = _REPLY.match(line)
    if match is None:
        raise AgiError(f"unparseable AGI reply: {printable(line, 120)!r}")
    code = int(match["code"])
    rest = match["rest"].strip()
    if code != 200:
        return AgiResult(code=code, result="", data=rest or None)
    result = _RESULT.match(rest)
    if result is None:
        raise AgiError(f"200 reply without result: {printable(line, 120)!r}")
    endpos = result["endpos"]
    return AgiResult(
        code=200,
        result=result["result"],
        data=result["data"],
        endpos=int(endpos) if endpos is not None else None,
    )


def quote_argument(value: str) -> str:
    """One AGI argument: res_agi's parser honours double quotes and backslash escapes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command_verb(cmd: str) -> str:
    """`STREAM FILE` of `STREAM FILE "x" ""`: what to name in errors, without arguments."""
    words = cmd.split(" ", 2)[:2]
    return " ".join(w for w in words if w.isalpha() and w.isupper()) or "command"


def digit_from_code(code: int | None) -> str:
    # STREAM FILE answers the ASCII code of the key pressed, 0 for none.
    if code is None or code <= 0 or code > 127:
        return ""
    digit = chr(code)
    return digit if KEYPAD.fullmatch(digit) else ""
