"""report figures per quarter hour, kept valid by a trigger on calls

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24

Tables: call_router/report_models.py. The trigger deletes the `report_slots` rows (the quarter
hour's, then its UTC day's) of every slot a write to `calls` touches (the old and the new start
time), for inserts, deletes and updates of any column the reports read: a late hang-up, a
reconciled answer or operator, a start time moved earlier, a purge. It lives in the database so
that every writer (router, FastAGI server, dashboard, a manual fix) invalidates, and costs two
primary-key probes on a small table per write; a TRUNCATE of calls (PostgreSQL) clears every
slot. The slot expressions are
call_router.call_sums.epoch_slot's, per dialect.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import call_router.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DT = call_router.models.UTCDateTime

# The columns call_router.call_sums' report functions read.
REPORTED = (
    "started_at, intent, queue, queue_joined_at, answered_at, ended_at, operator, outcome,"
    " wait_seconds, talk_seconds"
)

POSTGRESQL_UP = (
    """
    CREATE FUNCTION report_slot_touched() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        touched BIGINT;
    BEGIN
        FOR touched IN
            SELECT CAST(FLOOR(EXTRACT(EPOCH FROM OLD.started_at) / 900) AS BIGINT)
            WHERE TG_OP <> 'INSERT'
            UNION
            SELECT CAST(FLOOR(EXTRACT(EPOCH FROM NEW.started_at) / 900) AS BIGINT)
            WHERE TG_OP <> 'DELETE'
        LOOP
            -- The slot first: a roll-up holding its row makes this wait, and the day's row it
            -- then added is seen by the next statement.
            DELETE FROM report_slots WHERE span = 1 AND slot = touched;
            DELETE FROM report_slots WHERE span = 96 AND slot = touched / 96 * 96;
        END LOOP;
        RETURN NULL;
    END
    $$
    """,
    f"""
    CREATE TRIGGER calls_report_slot_touched
    AFTER INSERT OR DELETE OR UPDATE OF {REPORTED} ON calls
    FOR EACH ROW EXECUTE FUNCTION report_slot_touched()
    """,
    # TRUNCATE fires no row trigger (a bench reload, a test): every slot goes.
    """
    CREATE FUNCTION report_slots_cleared() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM report_slots;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER calls_report_slots_cleared AFTER TRUNCATE ON calls
    FOR EACH STATEMENT EXECUTE FUNCTION report_slots_cleared()
    """,
)
POSTGRESQL_DOWN = (
    "DROP TRIGGER IF EXISTS calls_report_slots_cleared ON calls",
    "DROP FUNCTION IF EXISTS report_slots_cleared()",
    "DROP TRIGGER IF EXISTS calls_report_slot_touched ON calls",
    "DROP FUNCTION IF EXISTS report_slot_touched()",
)

_SQLITE_SLOT = "(CAST(strftime('%s', {row}.started_at) AS INTEGER) / 900)"


def _sqlite_deletes(row: str) -> str:
    slot = _SQLITE_SLOT.format(row=row)
    return (
        f"DELETE FROM report_slots WHERE span = 1 AND slot = {slot};\n"
        f"DELETE FROM report_slots WHERE span = 96 AND slot = {slot} / 96 * 96;"
    )


SQLITE_UP = (
    f"""
    CREATE TRIGGER calls_report_slot_inserted AFTER INSERT ON calls BEGIN
        {_sqlite_deletes("NEW")}
    END
    """,
    f"""
    CREATE TRIGGER calls_report_slot_deleted AFTER DELETE ON calls BEGIN
        {_sqlite_deletes("OLD")}
    END
    """,
    f"""
    CREATE TRIGGER calls_report_slot_updated AFTER UPDATE OF {REPORTED} ON calls BEGIN
        {_sqlite_deletes("OLD")}
        {_sqlite_deletes("NEW")}
    END
    """,
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS calls_report_slot_updated",
    "DROP TRIGGER IF EXISTS calls_report_slot_deleted",
    "DROP TRIGGER IF EXISTS calls_report_slot_inserted",
)


def upgrade() -> None:
    op.create_table(
        "report_slots",
        sa.Column("span", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("slot", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("calls", sa.Integer(), nullable=True),
        sa.Column("rolled_at", _DT(), nullable=True),
        sa.Column("sl_threshold", sa.Float(), nullable=True),
        sa.Column("fill_token", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("span", "slot", name=op.f("pk_report_slots")),
    )
    op.create_table(
        "report_slot_intents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("span", sa.Integer(), server_default="1", nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("intent", sa.String(length=32), nullable=True),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_slot_intents")),
    )
    op.create_index("ix_report_slot_intents_span_slot", "report_slot_intents", ["span", "slot"])
    op.create_table(
        "report_slot_queues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("span", sa.Integer(), server_default="1", nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("offered", "answered", "abandoned", "within", "decided")
        ),
        sa.Column("wait_sum", sa.Float(), nullable=False),
        sa.Column("wait_count", sa.Integer(), nullable=False),
        sa.Column("talk_sum", sa.Float(), nullable=False),
        sa.Column("talk_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_slot_queues")),
    )
    op.create_index("ix_report_slot_queues_span_slot", "report_slot_queues", ["span", "slot"])
    op.create_table(
        "report_slot_operators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("span", sa.Integer(), server_default="1", nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("talk_sum", sa.Float(), nullable=False),
        sa.Column("talk_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_slot_operators")),
    )
    op.create_index("ix_report_slot_operators_span_slot", "report_slot_operators", ["span", "slot"])
    dialect = op.get_bind().dialect.name
    for statement in POSTGRESQL_UP if dialect == "postgresql" else SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in POSTGRESQL_DOWN if dialect == "postgresql" else SQLITE_DOWN:
        op.execute(statement)
    op.drop_index("ix_report_slot_operators_span_slot", table_name="report_slot_operators")
    op.drop_table("report_slot_operators")
    op.drop_index("ix_report_slot_queues_span_slot", table_name="report_slot_queues")
    op.drop_table("report_slot_queues")
    op.drop_index("ix_report_slot_intents_span_slot", table_name="report_slot_intents")
    op.drop_table("report_slot_intents")
    op.drop_table("report_slots")
