"""disposition history: every save of a call's disposition, and who saved the current one

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

Tables: call_router/agent_models.py (CallDispositionChange). A disposition saved again used to
replace the previous one without a trace; now each save is also added here (rows are never
updated), with the operator it was saved for and the dashboard user or token that saved it.
Dispositions saved before this revision get one history row each, as they stand (who saved
them is unknown: NULL).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("call_dispositions", sa.Column("changed_by", sa.String(length=80), nullable=True))
    op.create_table(
        "call_disposition_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("at", call_router.models.UTCDateTime(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("callout_created", sa.Boolean(), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=True),
        sa.Column("changed_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_call_disposition_changes_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_disposition_changes")),
    )
    op.create_index(
        op.f("ix_call_disposition_changes_call_id"),
        "call_disposition_changes",
        ["call_id"],
        unique=False,
    )
    op.execute(
        "INSERT INTO call_disposition_changes"
        " (call_id, at, category, note, callout_created, operator, changed_by)"
        " SELECT call_id, updated_at, category, note, callout_created, operator, NULL"
        " FROM call_dispositions"
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_call_disposition_changes_call_id"), table_name="call_disposition_changes"
    )
    op.drop_table("call_disposition_changes")
    with op.batch_alter_table("call_dispositions") as batch:
        batch.drop_column("changed_by")
