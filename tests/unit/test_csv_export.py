"""CSV export: spreadsheet formulas in caller-supplied text are defused."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from call_router.models import Call
from dashboard.csv_export import COLUMNS, FORMULA_STARTS, call_row, encode_rows, safe_cell


@pytest.mark.parametrize(
    ("raw", "cell"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Ivan", "Ivan"),
        ("a=b", "a=b"),
        # Where Excel splits on ';' (its list separator in Russian), each part is a cell.
        ("Ivan;=cmd|' /C calc'!A0;x", "Ivan;'=cmd|' /C calc'!A0;x"),
        ("a; -5", "a; '-5"),
        ("=1;@2", "'=1;'@2"),
        ("a;b", "a;b"),
        ("", ""),
        (None, ""),
    ],
)
def test_safe_cell(raw: str | None, cell: str) -> None:
    assert safe_cell(raw) == cell


def test_a_hostile_call_row_round_trips_through_csv_as_text() -> None:
    call = Call(
        id=7,
        caller_number="+74951234567",
        caller_name='=cmd|" /C calc"!A0',
        started_at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        queue="heating",
        outcome="answered",
        wait_seconds=12,
        talk_seconds=None,
    )

    text = "".join(encode_rows([COLUMNS, call_row(call, ZoneInfo("Europe/Moscow"))]))
    header, row = list(csv.reader(io.StringIO(text)))

    assert header == list(COLUMNS)
    record = dict(zip(header, row, strict=True))
    assert record["caller_name"] == '\'=cmd|" /C calc"!A0'
    # The leading + would make a spreadsheet turn the number into 74951234567.
    assert record["caller_number"] == "'+74951234567"
    assert record["started_at"] == "2026-11-23T12:00:00+03:00"
    assert record["wait_seconds"] == "12" and record["talk_seconds"] == ""
    assert text.endswith("\r\n")


def test_speech_columns_come_last_and_the_transcript_is_defused() -> None:
    call = Call(
        id=8,
        caller_number="+74951234567",
        started_at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        intent="water",
        transcript="=1+1 нет воды",
        intent_confidence=0.87654,
    )

    record = dict(zip(COLUMNS, call_row(call, ZoneInfo("UTC")), strict=True))

    # Added after the first layout, in order: speech (two columns), then the tenant.
    assert COLUMNS[-3:] == ("transcript", "intent_confidence", "tenant")
    assert record["transcript"] == "'=1+1 нет воды"
    assert record["intent"] == "water" and record["intent_confidence"] == "0.877"
    keypad = call_row(Call(id=9, caller_number="1", started_at=call.started_at), ZoneInfo("UTC"))
    assert keypad[-3:] == ["", "", ""]


def test_no_part_of_a_row_split_on_semicolons_starts_a_formula() -> None:
    # Found by playing attacker (2026-12-06): a caller name with ';' kept its formula, and
    # Excel with ';' as its list separator (ru-RU) makes that part a cell of its own.
    call = Call(id=7, caller_number="+7", caller_name="Ivan;=cmd|' /C calc'!A0;x")
    call.started_at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    line = "".join(encode_rows([call_row(call, ZoneInfo("Europe/Moscow"))]))
    parts = [part.strip() for part in line.rstrip("\r\n").split(";")]
    assert [p for p in parts if p.startswith(FORMULA_STARTS)] == []
