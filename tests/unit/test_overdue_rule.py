"""One rule for "overdue": the SQL condition the wallboard and the escalation job query with
agrees with callback_policy.is_overdue, which the list and the API mark entries by."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from call_router import board_reads, callback_list
from call_router import callback_policy as policy
from call_router.db import Database
from call_router.models import CALLBACK_OPEN, Callback

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def test_sql_overdue_matches_is_overdue_at_the_edges(db: Database) -> None:
    deadlines = {
        "+79990000001": NOW - timedelta(hours=1),
        "+79990000002": NOW - timedelta(microseconds=1),
        "+79990000003": NOW,  # due right now: not overdue yet
        "+79990000004": NOW + timedelta(seconds=1),
        "+79990000005": None,  # no deadline: never overdue
    }
    with db.session() as session:
        for number, due in deadlines.items():
            session.add(
                Callback(
                    caller_number=number,
                    status=CALLBACK_OPEN,
                    reason="abandoned_in_queue",
                    attempts=1,
                    tries=0,
                    created_at=NOW - timedelta(days=1),
                    updated_at=NOW - timedelta(days=1),
                    due_at=due,
                )
            )
    expected = {number for number, due in deadlines.items() if policy.is_overdue(due, NOW)}
    assert expected == {"+79990000001", "+79990000002"}
    with db.session() as session:
        picked = {entry.caller_number for entry in callback_list.overdue(session, NOW)}
        counted = board_reads.overdue_callbacks(session, NOW)
    assert picked == expected
    assert counted == len(expected)
