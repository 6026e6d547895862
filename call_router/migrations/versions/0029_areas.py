"""areas: the service area's hierarchy (city, district, street, house)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-05

Table: call_router/flow_models.py `Area` (call_router/areas.py imports and reads it).
Nothing existing changes: incidents keep their areas; until an admin imports areas
(`hotline areas import`), the flow's `area` node places nobody and asks nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "areas",
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(8), nullable=True),
        sa.Column("created_at", call_router.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_areas")),
        sa.UniqueConstraint("code", name=op.f("uq_areas_code")),
    )


def downgrade() -> None:
    op.drop_table("areas")
