"""tenants: management companies served by one contact centre, and their dialled numbers

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05

Tables: call_router/tenant_models.py (`tenants`, `dialled_numbers`). A nullable `tenant_id`
on calls, callbacks, operators, dashboard accounts and API tokens: NULL is the centre itself
(its calls, its staff, a centre-wide account or token). The wall that keeps one tenant's rows
from another's is call_router/tenants.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, indexed): the tables whose rows belong to a tenant or to the centre.
TENANT_COLUMNS = (
    ("calls", True),
    ("callbacks", True),
    ("operators", True),
    ("dashboard_users", False),
    ("api_tokens", False),
)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", call_router.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("slug", name=op.f("uq_tenants_slug")),
    )
    op.create_table(
        "dialled_numbers",
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("created_at", call_router.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_dialled_numbers")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_dialled_numbers_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
    )
    op.create_index(
        op.f("ix_dialled_numbers_tenant_id"), "dialled_numbers", ["tenant_id"], unique=False
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, indexed in TENANT_COLUMNS:
        if sqlite:
            # In place: SQLite adds a NULL column with its REFERENCES clause without rebuilding
            # the table (a rebuild would drop the calls table's report triggers of 0009).
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN tenant_id INTEGER"
                " REFERENCES tenants (id) ON DELETE RESTRICT"
            )
        else:
            op.add_column(table, sa.Column("tenant_id", sa.Integer(), nullable=True))
            op.create_foreign_key(
                op.f(f"fk_{table}_tenant_id_tenants"),
                table,
                "tenants",
                ["tenant_id"],
                ["id"],
                ondelete="RESTRICT",
            )
        if indexed:
            op.create_index(op.f(f"ix_{table}_tenant_id"), table, ["tenant_id"], unique=False)


def downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    for table, indexed in reversed(TENANT_COLUMNS):
        if indexed:
            op.drop_index(op.f(f"ix_{table}_tenant_id"), table_name=table)
        if not sqlite:
            op.drop_constraint(op.f(f"fk_{table}_tenant_id_tenants"), table, type_="foreignkey")
            op.drop_column(table, "tenant_id")
            continue
        # SQLite cannot drop a column that has a foreign key: the table is rebuilt, and its
        # triggers and indexes (lost with the old table) are put back as they were.
        kept = [
            sql
            for (sql,) in bind.execute(
                sa.text(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = :t"
                    " AND type IN ('index', 'trigger') AND sql IS NOT NULL"
                ),
                {"t": table},
            )
        ]
        for name, kind in bind.execute(
            sa.text(
                "SELECT name, type FROM sqlite_master WHERE tbl_name = :t"
                " AND type IN ('index', 'trigger') AND sql IS NOT NULL"
            ),
            {"t": table},
        ).all():
            op.execute(f'DROP {kind.upper()} "{name}"')
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.drop_column("tenant_id")
        for sql in kept:
            op.execute(sql)
    op.drop_index(op.f("ix_dialled_numbers_tenant_id"), table_name="dialled_numbers")
    op.drop_table("dialled_numbers")
    op.drop_table("tenants")
