"""tenant routing: buildings, residents' phones, tenants' own queues; how a call's tenant came

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05

Tables: call_router/tenant_models.py (`tenant_queues`, `buildings`, `resident_phones`). On
calls: `tenant_source` (number, phone, earlier_call, keypad, unknown, centre) and
`building_id` (the caller's building when the menu knew it; a plain integer, no foreign key:
a building removed later leaves its calls as they were). Nothing existing changes: calls
logged before keep NULL in both (their tenant came from the dialled number).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_queues",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "service", name=op.f("pk_tenant_queues")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_queues_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "buildings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("street", sa.String(128), nullable=False),
        sa.Column("house", sa.String(16), nullable=False),
        sa.Column("code", sa.String(8), nullable=True),
        sa.Column("created_at", call_router.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buildings")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_buildings_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint("tenant_id", "street", "house", name="uq_buildings_address"),
        sa.UniqueConstraint("code", name=op.f("uq_buildings_code")),
    )
    op.create_index(op.f("ix_buildings_tenant_id"), "buildings", ["tenant_id"], unique=False)
    op.create_table(
        "resident_phones",
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("created_at", call_router.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("phone", name=op.f("pk_resident_phones")),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["buildings.id"],
            name=op.f("fk_resident_phones_building_id_buildings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_resident_phones_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
    )
    op.create_index(
        op.f("ix_resident_phones_building_id"), "resident_phones", ["building_id"], unique=False
    )
    op.create_index(
        op.f("ix_resident_phones_tenant_id"), "resident_phones", ["tenant_id"], unique=False
    )
    # Plain nullable columns: both databases add them in place (on SQLite without a rebuild,
    # which would drop the calls table's report triggers of 0009).
    op.add_column("calls", sa.Column("tenant_source", sa.String(16), nullable=True))
    op.add_column("calls", sa.Column("building_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite (3.35+) drops a plain column in place: no rebuild, the triggers stay.
        op.execute("ALTER TABLE calls DROP COLUMN building_id")
        op.execute("ALTER TABLE calls DROP COLUMN tenant_source")
    else:
        op.drop_column("calls", "building_id")
        op.drop_column("calls", "tenant_source")
    op.drop_index(op.f("ix_resident_phones_tenant_id"), table_name="resident_phones")
    op.drop_index(op.f("ix_resident_phones_building_id"), table_name="resident_phones")
    op.drop_table("resident_phones")
    op.drop_index(op.f("ix_buildings_tenant_id"), table_name="buildings")
    op.drop_table("buildings")
    op.drop_table("tenant_queues")
