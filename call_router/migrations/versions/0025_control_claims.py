"""one move of a caller at a time: supervisors' claims on a call

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05

Table: call_router/control_models.py (`control_claims`): a row while a supervisor's move of
a caller is under way (call_router/call_control.py); a second supervisor's move of the same
caller finds it and is refused with a clear message instead of moving the caller twice. The
row goes when the move ends; one left by a crash is stale after a minute and taken over.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "control_claims",
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("by", sa.String(length=80), nullable=False),
        sa.Column("at", call_router.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_control_claims")),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_control_claims_call_id_calls"),
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("control_claims")
