"""reports count callers only: the rolled-up quarter hours are rolled up again

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-05

The reports' calls per quarter hour, per intent and per queue (call_router/call_sums.py) now
count inbound calls only - an operator's click-to-call or test call (internal) is not a caller
(the direction table counts those). Rows rolled up under the old rule counted every call, so they
are dropped; the router and the reports roll the quarter hours up again (and until then add
them up live). Downgrade drops them too, for the old rule.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# call_router/report_models.py, frozen here as a migration must be.
ROLLED_UP = ("report_slot_intents", "report_slot_queues", "report_slot_operators", "report_slots")


def upgrade() -> None:
    for table in ROLLED_UP:
        op.execute(f"DELETE FROM {table}")


def downgrade() -> None:
    upgrade()
