"""indexes for the call log and reports at millions of calls

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23

The call log lists newest first (`ORDER BY started_at DESC, id DESC`) under an equality filter
(number, queue, intent, outcome or operator) and/or a date range. Each filter gets an index
`(column, started_at, id)`: the database seeks to the filter value and reads the newest rows in
order, stopping after one page, instead of collecting every match and sorting it (measured with
EXPLAIN ANALYZE on 1,000,000 calls: bench/dashboard/README.md). `(started_at, id)` serves the
unfiltered page, the keyset cursor and the reports' date ranges. The wallboard looks for calls
still open: a partial index holds only those (a handful of rows).

The older one-column indexes stay: they are declared on the models, and the new ones make them
only slightly redundant.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILTERED = ("caller_number", "queue", "intent", "outcome", "operator")
OPEN_CALLS = sa.text("ended_at IS NULL")


def upgrade() -> None:
    op.create_index("ix_calls_started_at_id", "calls", ["started_at", "id"])
    for column in FILTERED:
        op.create_index(f"ix_calls_{column}_started_at", "calls", [column, "started_at", "id"])
    op.create_index(
        "ix_calls_open_started_at",
        "calls",
        ["started_at"],
        postgresql_where=OPEN_CALLS,
        sqlite_where=OPEN_CALLS,
    )
    # Pause intervals per operator: the report's window function reads a login's rows in order.
    op.create_index("ix_agent_state_log_sip_login_at", "agent_state_log", ["sip_login", "at", "id"])


def downgrade() -> None:
    op.drop_index("ix_agent_state_log_sip_login_at", table_name="agent_state_log")
    op.drop_index("ix_calls_open_started_at", table_name="calls")
    for column in reversed(FILTERED):
        op.drop_index(f"ix_calls_{column}_started_at", table_name="calls")
    op.drop_index("ix_calls_started_at_id", table_name="calls")
