"""Property-based fuzzing of caller ID cleaning: numbers and display names from the carrier.

Caller ID is attacker-controlled (quotes, line breaks, bidi overrides, any script, huge).
Properties: the cleaners never raise; what they return fits the call log's columns, is one
printable line and is stable (cleaning twice changes nothing); a caller row created from any
caller ID holds only such values.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select

from agi_scripts.agi import printable
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.models import Call
from call_router.numbers import (
    ANONYMOUS,
    MAX_NAME_LENGTH,
    clean_caller_name,
    is_anonymous,
    normalize_number,
)
from tests.unit.fuzzing import PURE, SHARED_STORE

NUMBER = re.compile(r"\+?[0-9]{2,15}")

phoneish = st.one_of(
    st.text(),
    st.text("0123456789 +-().", max_size=25),
    st.from_regex(r"(\+|00|8)?[0-9 ()\-.]{1,20}", fullmatch=True),
    st.sampled_from(["", "anonymous", "Restricted", "<unknown>", "+", "00", "0" * 64, "1" * 65]),
)
display_name = st.one_of(
    st.text(),
    st.text(st.sampled_from("\"'\\<>\r\n\t \u202e\u200b\u0000\x1bab Ив")),
    st.sampled_from(['""', '"""', '" "', '"a"b"', "\u202eevil", "x" * 500]),
)


def _is_one_printable_line(text: str) -> bool:
    return all(not unicodedata.category(ch).startswith("C") for ch in text)


@PURE
@given(raw=st.one_of(st.none(), phoneish), country=st.sampled_from(["RU", "DE", "US", "ZZ"]))
def test_normalize_number_is_total_bounded_and_stable(raw: str | None, country: str) -> None:
    number = normalize_number(raw, country)
    assert number == ANONYMOUS or NUMBER.fullmatch(number), number
    assert len(number) <= 32  # calls.caller_number, callbacks.caller_number
    assert normalize_number(number, country) == number
    assert is_anonymous(raw) == (normalize_number(raw) == ANONYMOUS)


@PURE
@given(raw=st.one_of(st.none(), display_name))
@example(raw='""x""')
def test_clean_caller_name_is_total_bounded_and_one_printable_line(raw: str | None) -> None:
    name = clean_caller_name(raw)
    if name is None:
        return
    assert name
    assert len(name) <= MAX_NAME_LENGTH
    assert name == name.strip()
    assert _is_one_printable_line(name)


@PURE
@given(raw=st.text(), limit=st.integers(1, 300))
def test_agi_printable_is_bounded_and_free_of_control_characters(raw: str, limit: int) -> None:
    text = printable(raw, limit)
    assert len(text) <= limit
    assert _is_one_printable_line(text)


# --- a caller row from any caller ID ------------------------------------------------------


@pytest.fixture
def call_log(tmp_path: Path) -> Iterator[CallLog]:
    database = Database(f"sqlite:///{tmp_path / 'calls.db'}")
    database.upgrade()
    yield CallLog(database)
    database.dispose()


_COLUMNS = {
    "linkedid": 64,
    "channel": 128,
    "caller_number": 32,
    "caller_number_raw": 128,
    "caller_name": 128,
    "dialed_number": 32,
}


@SHARED_STORE
@given(
    linkedid=st.one_of(
        st.from_regex(r"[0-9]{10}\.[0-9]{1,6}", fullmatch=True), st.text(min_size=1)
    ),
    number=st.one_of(st.none(), phoneish),
    name=st.one_of(st.none(), display_name),
    channel=st.one_of(st.none(), st.text()),
    dialed=st.one_of(st.none(), st.text()),
)
@example(linkedid="9" * 80, number=None, name=None, channel=None, dialed=None)
def test_a_call_row_from_any_caller_id_fits_its_columns(
    call_log: CallLog,
    linkedid: str,
    number: str | None,
    name: str | None,
    channel: str | None,
    dialed: str | None,
) -> None:
    call_id = call_log.ensure_call(
        linkedid, caller_number=number, caller_name=name, channel=channel, dialed_number=dialed
    )
    # The same call is found again by the linkedid Asterisk will use in its later events.
    assert call_log.find_call_id(linkedid) == call_id
    with call_log._db.session() as session:
        call = session.scalars(select(Call).where(Call.id == call_id)).one()
        for column, length in _COLUMNS.items():
            stored = getattr(call, column)
            assert stored is None or len(stored) <= length, column
        for column in ("channel", "caller_name", "caller_number_raw"):
            stored = getattr(call, column)
            assert stored is None or _is_one_printable_line(stored), column


@PURE
@given(raw=st.one_of(st.text(), st.text(st.characters(min_codepoint=32, max_codepoint=126))))
def test_a_printable_ascii_name_is_cleaned_as_any_other_name(raw: str) -> None:
    """`clean_caller_name` skips its per-character pass for printable ASCII: the same result
    as that pass gives."""
    from call_router import numbers

    slow = " ".join(numbers._printable_text(raw).split())
    fast = clean_caller_name(raw)
    if raw.isascii() and raw.isprintable():
        expected = clean_caller_name("\u200b" + raw)  # a format character forces the pass
        assert fast == expected
    assert fast is None or fast in slow


@PURE
@given(raw=phoneish, padding=st.integers(0, 300))
def test_a_caller_number_is_the_same_remembered_or_not(raw: str, padding: int) -> None:
    """`normalize_number` remembers raw numbers up to a bound: the same answer as without the
    cache, and a huge caller ID is not kept in memory."""
    from call_router import numbers

    padded = " " * padding + raw
    kept = numbers._normalize_cached.cache_info().currsize
    assert normalize_number(padded) == numbers._normalize(padded, "RU")
    if len(padded) > numbers._CACHED_RAW_LENGTH:
        assert numbers._normalize_cached.cache_info().currsize == kept
