"""one open callback per (tenant, number), not per number

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-05

A resident whose building is served by two companies (or who calls the centre and a company)
may be owed a call back by each: the partial unique index `uq_callbacks_open_number` (one open
entry per caller number, 0001) becomes `uq_callbacks_open_tenant_number`, one open entry per
(tenant, number). `coalesce(tenant_id, 0)`: NULL (the centre's entries) would never collide in
a unique index, and the centre too keeps one open entry per number. No row changes on upgrade.

Downgrade keeps every row: where a number has open entries with several tenants, the newest
stays open and the others are closed (note says why) so the per-number index can be built.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("status = 'open'")
DOWNGRADE_NOTE = "closed by downgrade 0017: one open entry per number"


def upgrade() -> None:
    op.drop_index("uq_callbacks_open_number", table_name="callbacks")
    op.create_index(
        "uq_callbacks_open_tenant_number",
        "callbacks",
        [sa.text("coalesce(tenant_id, 0)"), "caller_number"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade() -> None:
    bind = op.get_bind()
    duplicated = bind.execute(
        sa.text(
            "SELECT caller_number, max(id) FROM callbacks WHERE status = 'open'"
            " GROUP BY caller_number HAVING count(*) > 1"
        )
    ).all()
    for number, newest in duplicated:
        bind.execute(
            sa.text(
                "UPDATE callbacks SET status = 'closed', closed_at = updated_at, note = :note"
                " WHERE status = 'open' AND caller_number = :number AND id <> :newest"
            ),
            {"note": DOWNGRADE_NOTE, "number": number, "newest": newest},
        )
    op.drop_index("uq_callbacks_open_tenant_number", table_name="callbacks")
    op.create_index(
        "uq_callbacks_open_number",
        "callbacks",
        ["caller_number"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
