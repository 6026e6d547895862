"""caller languages: an index on updated_at, so the menu reads again only what changed

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06

Every FastAGI process keeps the remembered languages in memory and read the whole table again
every minute: at a national service's size (hundreds of thousands of numbers) that was most of
a second of CPU a minute, under the event loop's GIL. It now reads the rows changed since its
last read (agi_scripts/flows/services.py, DbLookups), by this index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_caller_languages_updated_at"), "caller_languages", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_caller_languages_updated_at"), table_name="caller_languages")
