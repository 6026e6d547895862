"""agent state, agent state log, call dispositions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sip_login", sa.String(length=64), nullable=False),
        sa.Column("logged_in", sa.Boolean(), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("pause_reason", sa.String(length=64), nullable=True),
        sa.Column("since", call_router.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", call_router.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_states")),
        sa.UniqueConstraint("sip_login", name=op.f("uq_agent_states_sip_login")),
    )
    op.create_table(
        "agent_state_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sip_login", sa.String(length=64), nullable=False),
        sa.Column("at", call_router.models.UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_state_log")),
    )
    op.create_index(
        op.f("ix_agent_state_log_sip_login"), "agent_state_log", ["sip_login"], unique=False
    )
    op.create_index(op.f("ix_agent_state_log_at"), "agent_state_log", ["at"], unique=False)
    op.create_table(
        "call_dispositions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("callout_created", sa.Boolean(), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=True),
        sa.Column("created_at", call_router.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", call_router.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_call_dispositions_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_dispositions")),
        sa.UniqueConstraint("call_id", name=op.f("uq_call_dispositions_call_id")),
    )
    op.create_index(
        op.f("ix_call_dispositions_category"), "call_dispositions", ["category"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_call_dispositions_category"), table_name="call_dispositions")
    op.drop_table("call_dispositions")
    op.drop_index(op.f("ix_agent_state_log_at"), table_name="agent_state_log")
    op.drop_index(op.f("ix_agent_state_log_sip_login"), table_name="agent_state_log")
    op.drop_table("agent_state_log")
    op.drop_table("agent_states")
