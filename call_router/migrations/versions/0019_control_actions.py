"""supervisors' call-control audit

Revision ID: 0019
Revises: 0015
Create Date: 2026-12-05

Table: call_router/control_models.py (`control_actions`): who hung up, moved, monitored,
paused, unpaused or logged out which call or operator, when, and with what result. Tenant
rows behind the wall of call_router/tenants.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DT = call_router.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "control_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", _DT(), nullable=False),
        sa.Column("by", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("operator", sa.String(length=64), nullable=True),
        sa.Column("target", sa.String(length=64), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=255), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_actions")),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_control_actions_call_id_calls"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_control_actions_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
    )
    op.create_index("ix_control_actions_at", "control_actions", ["at"])
    op.create_index(op.f("ix_control_actions_call_id"), "control_actions", ["call_id"])
    op.create_index(op.f("ix_control_actions_tenant_id"), "control_actions", ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_control_actions_tenant_id"), table_name="control_actions")
    op.drop_index(op.f("ix_control_actions_call_id"), table_name="control_actions")
    op.drop_index("ix_control_actions_at", table_name="control_actions")
    op.drop_table("control_actions")
