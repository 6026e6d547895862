"""The call log's indexes on both databases: migration 0032 drops the one-column indexes that
a wider one serves, matches the models, downgrades, and a lookup by each dropped column alone
still seeks an index instead of reading the table."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from call_router.db import Database, alembic_config
from call_router.models import Base

DROPPED = {
    "calls": {
        "ix_calls_caller_number",
        "ix_calls_started_at",
        "ix_calls_queue",
        "ix_calls_operator",
        "ix_calls_outcome",
    },
    "call_events": {"ix_call_events_call_id"},
}

# A lookup by a dropped index's column alone, and the index that now serves it (SQLite names
# a unique constraint's index itself).
LOOKUPS = [
    (
        "SELECT id FROM calls WHERE caller_number = '+74951234567' ORDER BY started_at DESC",
        "ix_calls_caller_number_started_at",
    ),
    ("SELECT id FROM calls WHERE queue = 'water'", "ix_calls_queue_started_at"),
    ("SELECT id FROM calls WHERE operator = '1001'", "ix_calls_operator_started_at"),
    ("SELECT id FROM calls WHERE outcome = 'abandoned'", "ix_calls_outcome_started_at"),
    ("SELECT id FROM calls WHERE started_at >= '2026-12-01'", "ix_calls_started_at_id"),
    (
        "SELECT id FROM call_events WHERE call_id = 7",
        ("uq_call_events_call_key", "sqlite_autoindex_call_events_1"),
    ),
]


def _indexes(database: Database, table: str) -> set[str]:
    with database.engine.connect() as conn:
        return {ix["name"] or "" for ix in inspect(conn).get_indexes(table)}


def test_the_redundant_indexes_are_gone_match_the_models_and_downgrade(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    index_changes = [
        d
        for d in diff
        if isinstance(d, tuple)
        and d[0] in ("add_index", "remove_index")
        and d[1].table.name in DROPPED
    ]
    assert not index_changes, index_changes
    for table, dropped in DROPPED.items():
        assert not dropped & _indexes(database, table)
    config = alembic_config(database.url)
    command.downgrade(config, "0031")
    for table, dropped in DROPPED.items():
        assert dropped <= _indexes(database, table)
    command.upgrade(config, "head")
    for table, dropped in DROPPED.items():
        assert not dropped & _indexes(database, table)


@pytest.mark.parametrize(("query", "index"), LOOKUPS)
def test_a_lookup_by_a_dropped_column_alone_seeks_the_wider_index(
    database: Database, query: str, index: str | tuple[str, ...]
) -> None:
    with database.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            plan = " ".join(
                str(row[-1]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {query}"))
            )
        else:
            # The tables are nearly empty: reading them whole would be the planner's choice.
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(str(row[0]) for row in conn.execute(text(f"EXPLAIN {query}")))
    names = (index,) if isinstance(index, str) else index
    assert set(names) & set(plan.split()), plan
