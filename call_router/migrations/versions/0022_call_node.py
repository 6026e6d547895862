"""calls carry the node that served them (a cluster of Asterisk nodes behind Kamailio)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05

`hotline cluster up` runs several Asterisk nodes, each with its own FastAGI server and router,
all writing one database; each names itself (HOTLINE_NODE) on the calls it serves
(call_router/models.py Call.node). NULL: a single box, or a row from before. Downgrade drops
the column and its index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # In place on SQLite too (ADD COLUMN, nullable): a rebuild would drop the calls table's
    # report triggers of 0009.
    op.add_column("calls", sa.Column("node", sa.String(32), nullable=True))
    op.create_index("ix_calls_node", "calls", ["node"])


def downgrade() -> None:
    op.drop_index("ix_calls_node", table_name="calls")
    # SQLite (3.35+) drops a plain column in place, keeping the table's triggers.
    op.execute("ALTER TABLE calls DROP COLUMN node")
