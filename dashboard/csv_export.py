"""CSV export of the call log, safe to open in a spreadsheet.

Caller names come from the carrier, i.e. from anyone: a name like `=HYPERLINK(...)` would run as
a formula in Excel or LibreOffice. Every text cell starting with a formula character is
prefixed with an apostrophe (OWASP's advice), which spreadsheets show as plain text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, tzinfo

from call_router.csv_files import FORMULA_STARTS, safe_cell
from call_router.models import Call

__all__ = ["COLUMNS", "FORMULA_STARTS", "call_row", "safe_cell"]

COLUMNS = (
    "id",
    "started_at",
    "caller_number",
    "caller_name",
    "menu_choice",
    "intent",
    "queue",
    "outcome",
    "operator",
    "wait_seconds",
    "talk_seconds",
    "answered_at",
    "ended_at",
    "hangup_by",
    # Added later: new columns go at the end so existing spreadsheets keep their layout.
    "transcript",
    "intent_confidence",
    # The tenant's slug; empty: the centre's own call.
    "tenant",
)


def call_row(call: Call, zone: tzinfo) -> list[str]:
    def when(dt: datetime | None) -> str:
        return dt.astimezone(zone).isoformat(timespec="seconds") if dt is not None else ""

    # Numbers are written as numbers (never defused: they are ours, and a negative is data).
    return [
        str(call.id),
        when(call.started_at),
        safe_cell(call.caller_number),
        safe_cell(call.caller_name),
        safe_cell(call.menu_choice),
        safe_cell(call.intent),
        safe_cell(call.queue),
        safe_cell(call.outcome),
        safe_cell(call.operator),
        "" if call.wait_seconds is None else str(call.wait_seconds),
        "" if call.talk_seconds is None else str(call.talk_seconds),
        when(call.answered_at),
        when(call.ended_at),
        safe_cell(call.hangup_by),
        # What the caller said: the most hostile text in the row.
        safe_cell(call.transcript),
        "" if call.intent_confidence is None else f"{call.intent_confidence:.3f}",
        safe_cell(call.tenant_slug),
    ]


def encode_rows(rows: Iterable[Sequence[str]]) -> Iterator[str]:
    """CSV text, one chunk per row (for a streaming response)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
