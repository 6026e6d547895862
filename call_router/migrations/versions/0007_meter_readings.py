"""meter readings submitted by phone

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DT = call_router.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "meter_readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payer_code", sa.String(length=32), nullable=False),
        sa.Column("meter", sa.String(length=16), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("caller_number", sa.String(length=32), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("submitted_at", _DT(), nullable=False),
        sa.Column("changed_at", _DT(), nullable=True),
        sa.Column("replaced_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_meter_readings_call_id_calls"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["replaced_by_id"],
            ["meter_readings.id"],
            name=op.f("fk_meter_readings_replaced_by_id_meter_readings"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_readings")),
    )
    op.create_index(
        "ix_meter_readings_payer_meter", "meter_readings", ["payer_code", "meter", "id"]
    )
    op.create_index(op.f("ix_meter_readings_status"), "meter_readings", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_meter_readings_status"), table_name="meter_readings")
    op.drop_index("ix_meter_readings_payer_meter", table_name="meter_readings")
    op.drop_table("meter_readings")
