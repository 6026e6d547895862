"""banned SIP source addresses

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

Table: call_router/sip_ban_models.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DT = call_router.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "sip_bans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=45), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("banned_at", _DT(), nullable=False),
        sa.Column("expires_at", _DT(), nullable=False),
        sa.Column("lifted_at", _DT(), nullable=True),
        sa.Column("lifted_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sip_bans")),
    )
    op.create_index("ix_sip_bans_address_expires", "sip_bans", ["address", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_sip_bans_address_expires", table_name="sip_bans")
    op.drop_table("sip_bans")
