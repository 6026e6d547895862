"""missed-ring counts survive a router restart

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

The auto-pause count (consecutive rings an operator did not answer) lived in the router's
memory: a restart forgot it. It is now a row per queue member, written in the same transaction
as the ring event it counts (so a replayed event does not count twice). Table:
call_router/agent_models.py MissedRings.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_missed_rings",
        sa.Column("interface", sa.String(64), primary_key=True),
        sa.Column("missed", sa.Integer(), nullable=False),
        sa.Column("updated_at", call_router.models.UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agent_missed_rings")
