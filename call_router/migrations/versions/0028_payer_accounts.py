"""payer accounts and their meters, imported from the billing system

Revision ID: 0028
Revises: 0025
Create Date: 2026-12-05

Tables: call_router/meter_models.py (`payer_accounts`, `payer_meters`). Nothing existing
changes: until an admin imports accounts (`hotline meters import`), payer codes are checked
by their check digit only, as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0028"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payer_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(256), nullable=False),
        sa.Column("imported_at", call_router.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payer_accounts")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_payer_accounts_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint("code", name=op.f("uq_payer_accounts_code")),
    )
    op.create_index(
        op.f("ix_payer_accounts_tenant_id"), "payer_accounts", ["tenant_id"], unique=False
    )
    op.create_table(
        "payer_meters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("meter", sa.String(16), nullable=False),
        sa.Column("serial", sa.String(32), nullable=True),
        sa.Column("last_value", sa.BigInteger(), nullable=True),
        sa.Column("last_read_at", call_router.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payer_meters")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["payer_accounts.id"],
            name=op.f("fk_payer_meters_account_id_payer_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_payer_meters_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint("account_id", "meter", name="uq_payer_meters_meter"),
    )
    op.create_index(
        op.f("ix_payer_meters_account_id"), "payer_meters", ["account_id"], unique=False
    )
    op.create_index(op.f("ix_payer_meters_tenant_id"), "payer_meters", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_payer_meters_tenant_id"), table_name="payer_meters")
    op.drop_index(op.f("ix_payer_meters_account_id"), table_name="payer_meters")
    op.drop_table("payer_meters")
    op.drop_index(op.f("ix_payer_accounts_tenant_id"), table_name="payer_accounts")
    op.drop_table("payer_accounts")
