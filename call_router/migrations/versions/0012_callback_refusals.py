"""callback entries refused by the dial-out numbering plan

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

`callbacks.refused_reason`: why a number is outside the plan (call_router/dial_plan.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("callbacks") as batch:
        batch.add_column(sa.Column("refused_reason", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_column("refused_reason")
