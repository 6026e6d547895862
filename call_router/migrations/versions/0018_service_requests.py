"""service requests: jobs for repair crews, their history and calls, crews, Open311 API keys

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-05

Tables: call_router/request_models.py. Every table has a nullable `tenant_id` (NULL: the
centre's own) and sits behind the tenant wall (call_router/tenants.py). Downgrade drops them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = call_router.models.UTCDateTime


def _tenant(table: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "tenant_id",
        sa.Integer(),
        sa.ForeignKey(
            "tenants.id", name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="RESTRICT"
        ),
        nullable=True,
    )


def upgrade() -> None:
    op.create_table(
        "crews",
        sa.Column("id", sa.Integer(), nullable=False),
        _tenant("crews"),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("districts", sa.JSON(), nullable=False),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crews")),
    )
    op.create_index(op.f("ix_crews_tenant_id"), "crews", ["tenant_id"])
    op.create_table(
        "service_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        _tenant("service_requests"),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("street", sa.String(128), nullable=False),
        sa.Column("house", sa.String(16), nullable=False),
        sa.Column("flat", sa.String(16), nullable=True),
        sa.Column("district", sa.String(64), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("long", sa.Float(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("caller_number", sa.String(32), nullable=True),
        sa.Column("caller_name", sa.String(128), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column(
            "crew_id",
            sa.Integer(),
            sa.ForeignKey(
                "crews.id", name=op.f("fk_service_requests_crew_id_crews"), ondelete="SET NULL"
            ),
            nullable=True,
        ),
        sa.Column(
            "duplicate_of_id",
            sa.Integer(),
            sa.ForeignKey(
                "service_requests.id",
                name=op.f("fk_service_requests_duplicate_of_id_service_requests"),
                ondelete="SET NULL",
            ),
            nullable=True,
        ),
        sa.Column("open_key", sa.String(320), nullable=True),
        sa.Column("reports", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(64), nullable=True),
        sa.Column("status_notes", sa.String(1000), nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.Column("sla_deadline", UTC(), nullable=False),
        sa.Column("closed_at", UTC(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_requests")),
        sa.UniqueConstraint("open_key", name=op.f("uq_service_requests_open_key")),
        sa.UniqueConstraint("token", name=op.f("uq_service_requests_token")),
    )
    for column in ("tenant_id", "category", "caller_number", "state", "crew_id", "created_at"):
        op.create_index(op.f(f"ix_service_requests_{column}"), "service_requests", [column])
    op.create_index(op.f("ix_service_requests_sla_deadline"), "service_requests", ["sla_deadline"])
    op.create_table(
        "request_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "request_id",
            sa.Integer(),
            sa.ForeignKey(
                "service_requests.id",
                name=op.f("fk_request_events_request_id_service_requests"),
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        _tenant("request_events"),
        sa.Column("at", UTC(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("from_state", sa.String(32), nullable=True),
        sa.Column("to_state", sa.String(32), nullable=True),
        sa.Column("note", sa.String(1000), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_events")),
    )
    op.create_index(op.f("ix_request_events_request_id"), "request_events", ["request_id"])
    op.create_table(
        "request_calls",
        sa.Column(
            "request_id",
            sa.Integer(),
            sa.ForeignKey(
                "service_requests.id",
                name=op.f("fk_request_calls_request_id_service_requests"),
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column(
            "call_id",
            sa.Integer(),
            sa.ForeignKey(
                "calls.id", name=op.f("fk_request_calls_call_id_calls"), ondelete="CASCADE"
            ),
            nullable=False,
        ),
        _tenant("request_calls"),
        sa.Column("linked_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "call_id", name=op.f("pk_request_calls")),
    )
    op.create_index(op.f("ix_request_calls_call_id"), "request_calls", ["call_id"])
    op.create_table(
        "open311_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        _tenant("open311_keys"),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("revoked_at", UTC(), nullable=True),
        sa.Column("last_used_at", UTC(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open311_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_open311_keys_key_hash")),
    )


def downgrade() -> None:
    op.drop_table("open311_keys")
    op.drop_index(op.f("ix_request_calls_call_id"), table_name="request_calls")
    op.drop_table("request_calls")
    op.drop_index(op.f("ix_request_events_request_id"), table_name="request_events")
    op.drop_table("request_events")
    for column in (
        "sla_deadline",
        "created_at",
        "crew_id",
        "state",
        "caller_number",
        "category",
        "tenant_id",
    ):
        op.drop_index(op.f(f"ix_service_requests_{column}"), table_name="service_requests")
    op.drop_table("service_requests")
    op.drop_index(op.f("ix_crews_tenant_id"), table_name="crews")
    op.drop_table("crews")
