"""the call log's one-column indexes that a wider index already serves are dropped

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07

Every index of a table is written by every row it takes. A call's row was written into 15
indexes, then again into those of the columns its menu result sets (queue, intent), and each
timeline entry into two. Six of them served nothing another did not: `calls.caller_number`,
`queue`, `operator` and `outcome` each lead an index `(column, started_at, id)` of migration
0008, `started_at` leads `(started_at, id)`, and `call_events.call_id` leads the unique
`(call_id, key)`. A lookup by the first column alone is served by the wider index as well (a
seek to the value, then its rows in order). Measured in bench/agi (BENCHMARKS.md, "The call
log's write amplification").
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column): each dropped index's name is the naming convention's ix_<table>_<column>.
REDUNDANT = (
    ("calls", "caller_number"),
    ("calls", "started_at"),
    ("calls", "queue"),
    ("calls", "operator"),
    ("calls", "outcome"),
    ("call_events", "call_id"),
)


def upgrade() -> None:
    for table, column in REDUNDANT:
        op.drop_index(f"ix_{table}_{column}", table_name=table)


def downgrade() -> None:
    for table, column in reversed(REDUNDANT):
        op.create_index(f"ix_{table}_{column}", table, [column])
