"""service requests: the automatic "is it fixed?" call (issue 14, the phone side)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05

When a request is marked done the resident gets an outbound call (call_router/request_feedback.py):
`feedback_due_at` is when the next try may be placed (NULL: no call wanted), `feedback_attempts`
counts the tries, `feedback_score` keeps the resident's answer (1 solved, 2 not solved) and
`feedback_at` when it was given. Downgrade drops the columns.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = call_router.models.UTCDateTime
COLUMNS = ("feedback_due_at", "feedback_attempts", "feedback_score", "feedback_at")


def upgrade() -> None:
    # In place (ADD COLUMN), SQLite too: no table rebuild.
    op.add_column("service_requests", sa.Column("feedback_due_at", UTC(), nullable=True))
    op.add_column(
        "service_requests",
        sa.Column("feedback_attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("service_requests", sa.Column("feedback_score", sa.Integer(), nullable=True))
    op.add_column("service_requests", sa.Column("feedback_at", UTC(), nullable=True))
    op.create_index("ix_service_requests_feedback_due_at", "service_requests", ["feedback_due_at"])


def downgrade() -> None:
    op.drop_index("ix_service_requests_feedback_due_at", table_name="service_requests")
    # SQLite (3.35+) drops a plain column in place.
    for name in reversed(COLUMNS):
        op.execute(f"ALTER TABLE service_requests DROP COLUMN {name}")
