"""speech menu results on the call: transcript, intent confidence, utterance file

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table in place for every change; PostgreSQL ignores it.
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("transcript", sa.Text(), nullable=True))
        batch.add_column(sa.Column("intent_confidence", sa.Float(), nullable=True))
        batch.add_column(sa.Column("utterance_path", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("utterance_path")
        batch.drop_column("intent_confidence")
        batch.drop_column("transcript")
