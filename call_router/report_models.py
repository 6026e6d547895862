"""Pre-aggregated report figures (call_router/report_rollups.py fills them).

The unit is the UTC quarter hour (`slot`: seconds since 1970 // 900, as
call_router.call_sums.epoch_slot): a slot listed in `report_slots` with span 1 is rolled up, and
its figures are in three tables, one per report dimension. Not one row per (slot, queue, intent,
operator): on the bench log that cross product has about as many rows as calls (~250,000 for 30
days of ~330,000 calls), so it would save nothing. Even the per-slot operator rows are ~38 per
slot, a third of the calls; so once the 96 slots of a UTC day are rolled up, their rows are
added up once more into rows of span 96 (`slot` = the day's first slot), and a long report
reads a day's ~100 rows instead of ~5,000. Every figure is a count or a sum, so any set of
spans adds up exactly (averages are sums / counts, never averages of averages).

The service-level figures (`within`, `decided`) depend on the threshold setting: a span keeps
the threshold it was rolled up with, and a report with another threshold rolls it up again.

Invalidation lives in the database (migration 0009): a trigger on `calls` deletes the
`report_slots` rows (the slot's, then its day's) of the slot a call is inserted into, moved out
of, deleted from or changed in (any column the reports read), whichever process writes it.
Figure rows of a span without its `report_slots` row are never read.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from call_router.models import Base, UTCDateTime

SPAN_SLOT = 1
SPAN_DAY = 96  # quarter hours in a UTC day


class ReportSlot(Base):
    """A quarter hour (span 1) or UTC day (span 96) whose figures are rolled up (`rolled_at`
    NULL: being rolled up)."""

    __tablename__ = "report_slots"

    span: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    slot: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Callers (inbound calls) started in the span (what the charts count per slot).
    calls: Mapped[int | None] = mapped_column(Integer)
    rolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sl_threshold: Mapped[float | None] = mapped_column(Float)
    # Which roll-up claimed the slot: it marks only slots it still holds (report_rollups).
    fill_token: Mapped[int | None] = mapped_column(BigInteger)


class ReportSlotIntent(Base):
    """Callers (inbound calls) started in the span per intent (None: none recognised)."""

    __tablename__ = "report_slot_intents"
    __table_args__ = (Index("ix_report_slot_intents_span_slot", "span", "slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    span: Mapped[int] = mapped_column(Integer, default=SPAN_SLOT, server_default="1")
    slot: Mapped[int] = mapped_column(BigInteger)
    intent: Mapped[str | None] = mapped_column(String(32))
    calls: Mapped[int] = mapped_column(Integer)


class ReportSlotQueue(Base):
    """call_router.service_figures.QueueTotals of the calls started in the span, per queue."""

    __tablename__ = "report_slot_queues"
    __table_args__ = (Index("ix_report_slot_queues_span_slot", "span", "slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    span: Mapped[int] = mapped_column(Integer, default=SPAN_SLOT, server_default="1")
    slot: Mapped[int] = mapped_column(BigInteger)
    queue: Mapped[str] = mapped_column(String(32))
    offered: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)
    abandoned: Mapped[int] = mapped_column(Integer)
    within: Mapped[int] = mapped_column(Integer)
    decided: Mapped[int] = mapped_column(Integer)
    wait_sum: Mapped[float] = mapped_column(Float)
    wait_count: Mapped[int] = mapped_column(Integer)
    talk_sum: Mapped[float] = mapped_column(Float)
    talk_count: Mapped[int] = mapped_column(Integer)


class ReportSlotOperator(Base):
    """Answered calls started in the span per operator, with their talk (finished calls)."""

    __tablename__ = "report_slot_operators"
    __table_args__ = (Index("ix_report_slot_operators_span_slot", "span", "slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    span: Mapped[int] = mapped_column(Integer, default=SPAN_SLOT, server_default="1")
    slot: Mapped[int] = mapped_column(BigInteger)
    operator: Mapped[str] = mapped_column(String(64))
    answered: Mapped[int] = mapped_column(Integer)
    talk_sum: Mapped[float] = mapped_column(Float)
    talk_count: Mapped[int] = mapped_column(Integer)
