"""tenants may have their own service-level target

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05

`tenants.service_level_seconds` and `tenants.service_level_target` (call_router/tenant_models.py):
a tenant's wallboard and reports measure against its own target; NULL (every existing tenant)
keeps the centre's (HOTLINE_SERVICE_LEVEL_SECONDS / _TARGET). Downgrade drops both columns.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("service_level_seconds", sa.Integer(), nullable=True))
    op.add_column("tenants", sa.Column("service_level_target", sa.Float(), nullable=True))


def downgrade() -> None:
    # In place (SQLite 3.35+ too): a batch rebuild of `tenants` would copy a table that every
    # tenant-owned row's foreign key points at.
    op.execute("ALTER TABLE tenants DROP COLUMN service_level_target")
    op.execute("ALTER TABLE tenants DROP COLUMN service_level_seconds")
