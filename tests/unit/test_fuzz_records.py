"""Property-based fuzzing of Asterisk's queue_log and CDR records as the router reads them.

After a crash the router catches up from these files (call_router/reconcile.py), so they are
read at the worst moment: a record cut short by the crash, garbage, caller-controlled text
(the caller number is written into queue_log, the caller name into the CDR). Properties: the
readers never raise, a bad record never hides the good ones around it, and no text inside one
call's record can forge a record for another call.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from call_router.reconcile import (
    AsteriskRecords,
    ended_at,
    missed_events,
    parse_cdr_ends,
    parse_queue_log,
)
from tests.unit.fuzzing import PURE
from tests.unit.test_reconcile import CALL, T0, cdr_line

OTHER = "1763892999.77"
ABANDON = f"{T0 + 60}|{CALL}|plumbing|NONE|ABANDON|1|1|40"
CDR_END = "2025-11-23 10:02:27"

garbage = st.one_of(
    st.text(max_size=200),
    st.sampled_from(['"', '"unterminated,', "nan|" + CALL + "|q|a|ABANDON|1|1|1", "\x00" * 8]),
    st.text(max_size=8).map(lambda t: t * 20_000),  # a huge line (csv's field limit is 128 KiB)
    st.tuples(st.sampled_from(["1e300", "inf", "-1e20", "nan", str(T0)]), st.text(max_size=20)).map(
        lambda p: f"{p[0]}|{CALL}|plumbing|NONE|{p[1]}|1|2|3"
    ),
)


@PURE
@given(before=st.lists(garbage, max_size=3), after=st.lists(garbage, max_size=3))
@example(before=["1e300|" + CALL + "|plumbing|NONE|ABANDON|1|1|40"], after=[])
def test_queue_log_garbage_never_raises_nor_hides_a_good_row(
    before: list[str], after: list[str]
) -> None:
    lines = [*before, ABANDON, *after]
    rows = parse_queue_log(lines, {CALL})
    assert any(r.verb == "ABANDON" and r.at == T0 + 60 for r in rows)
    events = missed_events(rows, known=[])
    assert any(e["Event"] == "QueueCallerAbandon" for e in events)
    assert ended_at(CALL, rows, {}) is not None


@PURE
@given(before=st.lists(garbage, max_size=3), after=st.lists(garbage, max_size=3))
@example(before=['"cut short by a crash'], after=[])
@example(before=['"' + "x" * 200_000], after=[])
def test_cdr_garbage_never_raises_nor_hides_a_good_record(
    before: list[str], after: list[str]
) -> None:
    text = "\n".join([*before, cdr_line(CALL, CALL, CDR_END).rstrip("\r\n"), *after])
    ends = parse_cdr_ends(text, {CALL})
    assert ends[CALL] == datetime(2025, 11, 23, 10, 2, 27, tzinfo=UTC)


caller_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=60
)


@PURE
@given(number=caller_text, name=caller_text)
@example(number=f"\u2028{T0 + 61}|{OTHER}|plumbing|NONE|ABANDON|1|1|40", name="x")
@example(number="+7", name=f"\u2028,,,,,,,,,,,2025-11-23 11:00:00,,,,,,,,{OTHER},")
def test_caller_text_in_one_record_cannot_forge_a_record_for_another_call(
    number: str, name: str
) -> None:
    """Asterisk writes the caller's number into queue_log and the name into the CDR (its
    lines end with "\\n"; the caller's text cannot hold one, but may hold U+2028 and such)."""
    with tempfile.TemporaryDirectory() as folder:
        records = AsteriskRecords.in_log_dir(Path(folder))
        records.cdr_csv.parent.mkdir(parents=True)
        records.queue_log.write_text(
            f"{T0 + 20}|{CALL}|plumbing|NONE|ENTERQUEUE||{number}|1\n", encoding="utf-8"
        )
        records.cdr_csv.write_text(
            cdr_line(CALL, CALL, CDR_END, clid=f'"{name}" <{number}>'), encoding="utf-8"
        )
        rows, ends = records.read([CALL, OTHER])
    assert OTHER not in rows
    assert OTHER not in ends
