"""calls carry their direction: inbound, callback (an operator's click-to-call) or internal

Revision ID: 0020
Revises: 0015
Create Date: 2026-12-05

Click-to-call rows used to look like answered calls in the per-operator figures; a
`direction` column tells them apart (call_router/models.py Call.direction). Existing rows:
our own click-to-call calls (a `callback_call` timeline event, or a `cb-` linkedid) become
`callback`, every other call `inbound`. The UPDATE goes through the 0009 report triggers, so
the quarter hours it touches are rolled up again with the new rule. Downgrade drops the column.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# call_router/callbacks.py EVENT_OUTBOUND and OUTBOUND_LINKEDID_PREFIX, frozen here as a
# migration must be.
OUTBOUND_EVENT = "callback_call"
OUTBOUND_PREFIX = "cb-"


def upgrade() -> None:
    # In place on SQLite too (ADD COLUMN with a constant default): a rebuild would drop the
    # calls table's report triggers of 0009.
    op.add_column(
        "calls",
        sa.Column("direction", sa.String(16), nullable=False, server_default=sa.text("'inbound'")),
    )
    op.execute(
        sa.text(
            "UPDATE calls SET direction = 'callback' WHERE linkedid LIKE :prefix"
            " OR id IN (SELECT call_id FROM call_events WHERE kind = :event)"
        ).bindparams(prefix=f"{OUTBOUND_PREFIX}%", event=OUTBOUND_EVENT)
    )


def downgrade() -> None:
    # SQLite (3.35+) drops a plain column in place, keeping the table's triggers.
    op.execute("ALTER TABLE calls DROP COLUMN direction")
