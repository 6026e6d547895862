"""Caller numbers and names as the call log stores them. Pure: no I/O.

Caller ID comes from the carrier and is attacker-controlled: it can hold quotes, newlines,
control characters, any script, or nothing at all. Everything that reaches the database or the
dashboard goes through these functions first.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import phonenumbers

ANONYMOUS = "anonymous"

# Values carriers and Asterisk use for "no caller ID" (compared lower-case).
_ANONYMOUS_WORDS = frozenset(
    {"", "anonymous", "restricted", "unavailable", "unknown", "private", "withheld", "<unknown>"}
)
# E.164 allows at most 15 digits; short internal numbers (extensions) have at least 2.
_MAX_DIGITS = 15
_MIN_DIGITS = 2
MAX_NAME_LENGTH = 64
# Raw input longer than this is garbage, not a phone number: don't even parse it.
_MAX_RAW_LENGTH = 64
# Separators people type; anything else (newlines, control characters) marks garbage.
_SEPARATORS = re.compile(r"[ \-().]")


def normalize_number(raw: str | None, country: str = "RU") -> str:
    """One spelling per caller: E.164 (`+74951234567`) when the number parses, else its digits.

    `+7 495 123-45-67`, `8 495 1234567` and `4951234567` are the same RU caller. Internal
    extensions (`1001`) stay as digits. Empty, withheld or garbage input is "anonymous".
    """
    if raw is not None and len(raw) <= _CACHED_RAW_LENGTH:
        # The FastAGI server asks for one caller's number several times a call (their
        # language, company, open requests) and again in the call-log writer.
        return _normalize_cached(raw, country)
    return _normalize(raw, country)


# Raw numbers at most this long are remembered (a flood of huge caller IDs cannot fill memory).
_CACHED_RAW_LENGTH = 2 * _MAX_RAW_LENGTH


def _normalize(raw: str | None, country: str) -> str:
    if raw is None:
        return ANONYMOUS
    text = raw.strip()
    if text.lower() in _ANONYMOUS_WORDS or len(text) > _MAX_RAW_LENGTH:
        return ANONYMOUS
    compact = _SEPARATORS.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    plus, digits = compact.startswith("+"), compact.lstrip("+")
    if not digits.isascii() or not digits.isdigit():
        return ANONYMOUS
    if not _MIN_DIGITS <= len(digits) <= _MAX_DIGITS:
        return ANONYMOUS
    e164 = _to_e164(("+" if plus else "") + digits, country)
    if e164 is not None:
        return e164
    return ("+" if plus else "") + digits


_normalize_cached = functools.lru_cache(maxsize=8192)(_normalize)


@functools.lru_cache(maxsize=4096)
def _to_e164(number: str, country: str) -> str | None:
    # Cached: the FastAGI server asks for the same caller's number on its menu path and again
    # in the call-log writer, and callers call again; phonenumbers' parse is the slow part.
    try:
        parsed = phonenumbers.parse(number, None if number.startswith("+") else country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_anonymous(number: str | None) -> bool:
    """True for a withheld or unusable number: such callers get no callback entry."""
    return normalize_number(number) == ANONYMOUS


def _printable_text(raw: str) -> str:
    """Separators as spaces, control and format characters dropped (line breaks as spaces)."""
    kept = []
    for char in raw:
        category = unicodedata.category(char)
        if category.startswith("Z"):
            kept.append(" ")
        elif not category.startswith("C"):
            kept.append(char)
        elif char in "\r\n\t":
            kept.append(" ")
    return "".join(kept)


def clean_caller_name(raw: str | None) -> str | None:
    """Printable text only, one line, trimmed, at most MAX_NAME_LENGTH characters.

    Non-ASCII letters (Cyrillic names) are kept; control and format characters (newlines,
    bidi overrides, zero-width) are dropped. A name that says "anonymous" or is empty is None.
    """
    if raw is None:
        return None
    # Printable ASCII (most names): every character is kept as it is (the only separator is
    # the space), so the loop over the characters' categories would change nothing.
    text = raw if raw.isascii() and raw.isprintable() else _printable_text(raw)
    name = " ".join(text.split())
    # A stray pair of quotes around the whole name is SIP display-name syntax, not the name.
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].strip()
    name = name[:MAX_NAME_LENGTH].strip()
    if name.lower() in _ANONYMOUS_WORDS:
        return None
    return name
