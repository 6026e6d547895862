"""service-request attachments (photos, documents) and crew accounts' crews

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05

Tables: call_router/request_models.py RequestAttachment (metadata only: the bytes are files
under the state folder) and CrewMember (which crew a crew-role account works as). New tables
only, so both databases upgrade in place; downgrade drops them (the files stay on disk).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = call_router.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "request_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "request_id",
            sa.Integer(),
            sa.ForeignKey(
                "service_requests.id",
                name=op.f("fk_request_attachments_request_id_service_requests"),
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column(
            "tenant_id",
            sa.Integer(),
            sa.ForeignKey(
                "tenants.id",
                name=op.f("fk_request_attachments_tenant_id_tenants"),
                ondelete="RESTRICT",
            ),
            nullable=True,
        ),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("stored_as", sa.String(64), nullable=False),
        sa.Column("uploaded_by", sa.String(128), nullable=False),
        sa.Column("uploaded_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_attachments")),
        sa.UniqueConstraint("stored_as", name=op.f("uq_request_attachments_stored_as")),
    )
    op.create_index(
        op.f("ix_request_attachments_request_id"), "request_attachments", ["request_id"]
    )
    op.create_table(
        "crew_members",
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey(
                "dashboard_users.id",
                name=op.f("fk_crew_members_user_id_dashboard_users"),
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column(
            "crew_id",
            sa.Integer(),
            sa.ForeignKey(
                "crews.id", name=op.f("fk_crew_members_crew_id_crews"), ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_crew_members")),
    )
    op.create_index(op.f("ix_crew_members_crew_id"), "crew_members", ["crew_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_crew_members_crew_id"), table_name="crew_members")
    op.drop_table("crew_members")
    op.drop_index(op.f("ix_request_attachments_request_id"), table_name="request_attachments")
    op.drop_table("request_attachments")
