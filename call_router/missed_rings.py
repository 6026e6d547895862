"""Missed-ring counts per queue member, in the database (call_router/autopause.py decides).

Each function runs in the caller's transaction: a ring is counted in the same transaction as
its timeline event, so a replayed event (its key already there) is not counted again, and a
router restart or crash forgets nothing that was committed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from call_router.agent_models import MissedRings


def count_miss(session: Session, member: str, at: datetime) -> int:
    """One more miss of `member`; the count so far, this one included."""
    # Locked: two writer lanes may count misses of one operator (two calls) at once.
    row = session.get(MissedRings, member, with_for_update=True)
    if row is None:
        row = MissedRings(interface=member, missed=0)
        session.add(row)
    row.missed += 1
    row.updated_at = at
    session.flush()
    return row.missed


def reset(session: Session, member: str) -> None:
    session.execute(delete(MissedRings).where(MissedRings.interface == member))


def missed(session: Session, member: str) -> int:
    row = session.get(MissedRings, member)
    return row.missed if row is not None else 0
