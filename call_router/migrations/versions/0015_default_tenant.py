"""an existing single-company installation becomes one tenant, `default`

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05

If the database already holds calls, callbacks or operators, they all move to a new tenant
`default` ("Default company"), and so do the numbers its residents dialled (the dialled
number of every inbound call: our own click-to-call calls, which keep the resident's number
there, are left out), so new calls on those numbers land in the same tenant. Accounts and API
tokens stay centre-wide: the people who ran the hotline keep seeing everything. Nothing is
deleted. An empty database (a new installation) gets no tenant. Downgrade gives the rows back
to the centre and removes the tenant and its numbers.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_SLUG = "default"
DEFAULT_NAME = "Default company"
OWNED = ("calls", "callbacks", "operators")
# call_router/callbacks.py EVENT_OUTBOUND, frozen here as a migration must be.
OUTBOUND_EVENT = "callback_call"


def upgrade() -> None:
    bind = op.get_bind()
    has_rows = any(
        bind.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None
        for table in OWNED
    )
    if not has_rows:
        return
    now = datetime.now(UTC).replace(tzinfo=None)  # the call log's naive-UTC storage
    bind.execute(
        sa.text("INSERT INTO tenants (slug, name, created_at) VALUES (:slug, :name, :now)"),
        {"slug": DEFAULT_SLUG, "name": DEFAULT_NAME, "now": now},
    )
    tenant_id = bind.execute(
        sa.text("SELECT id FROM tenants WHERE slug = :slug"), {"slug": DEFAULT_SLUG}
    ).scalar_one()
    for table in OWNED:
        bind.execute(
            sa.text(f"UPDATE {table} SET tenant_id = :t WHERE tenant_id IS NULL"), {"t": tenant_id}
        )
    bind.execute(
        sa.text(
            """
            INSERT INTO dialled_numbers (number, tenant_id, created_at)
            SELECT DISTINCT c.dialed_number, :t, :now FROM calls c
            WHERE c.dialed_number IS NOT NULL AND c.dialed_number <> ''
              AND NOT EXISTS (
                SELECT 1 FROM call_events e WHERE e.call_id = c.id AND e.kind = :outbound
              )
              AND NOT EXISTS (SELECT 1 FROM dialled_numbers d WHERE d.number = c.dialed_number)
            """
        ),
        {"t": tenant_id, "now": now, "outbound": OUTBOUND_EVENT},
    )


def downgrade() -> None:
    bind = op.get_bind()
    row = bind.execute(
        sa.text("SELECT id FROM tenants WHERE slug = :slug"), {"slug": DEFAULT_SLUG}
    ).first()
    if row is None:
        return
    tenant_id = row[0]
    for table in OWNED:
        bind.execute(
            sa.text(f"UPDATE {table} SET tenant_id = NULL WHERE tenant_id = :t"), {"t": tenant_id}
        )
    bind.execute(sa.text("DELETE FROM dialled_numbers WHERE tenant_id = :t"), {"t": tenant_id})
    bind.execute(sa.text("DELETE FROM tenants WHERE id = :t"), {"t": tenant_id})
