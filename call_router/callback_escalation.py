"""Overdue call-backs go to the supervisor: an alert on the live channel and a log line.

`escalate_overdue` is one pass; `run_periodically` is the loop the router runs next to its AMI
listener. Each entry is escalated once (callback_list.mark_escalated is a conditional UPDATE), so
several routers, or a restart, never alert twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from call_router import callback_list
from call_router.db import Database
from call_router.live_state import LiveState
from call_router.models import utcnow
from call_router.periodic import run_every

EVENT_KIND = "callback_overdue"
INTERVAL_SECONDS = 30.0

log = structlog.get_logger(__name__)


def _mark_overdue(db: Database, now: datetime) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = []
    with db.session() as session:
        for entry in callback_list.overdue(session, now):
            if not callback_list.mark_escalated(session, entry.id, now):
                continue
            assert entry.due_at is not None
            alerts.append(
                {
                    "callback_id": entry.id,
                    "caller_number": entry.caller_number,
                    "category": entry.category,
                    "priority": entry.priority,
                    "queue": entry.queue,
                    "due_at": entry.due_at.isoformat(),
                    "overdue_seconds": int((now - entry.due_at).total_seconds()),
                    "claimed_by": entry.claimed_by,
                    "attempts": entry.attempts,
                }
            )
    return alerts


async def escalate_overdue(
    db: Database, live: LiveState, *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Alert on every open entry past its deadline not alerted yet; returns the alerts sent."""
    alerts = await asyncio.to_thread(_mark_overdue, db, now or utcnow())
    for alert in alerts:
        log.warning("callback_overdue", **alert)
        await live.publish(EVENT_KIND, alert)
    return alerts


async def run_periodically(
    db: Database,
    live: LiveState,
    *,
    interval: float = INTERVAL_SECONDS,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    await run_every(
        interval, lambda: escalate_overdue(db, live, now=clock()), name="callback_escalation"
    )
