"""The router process (`hotline router`): the AMI listener and the background jobs that run
beside it (callback escalation, retention, report roll-ups, SIP bans, virtual-hold dial-out),
until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

import structlog

from call_router import callback_escalation, live_state, report_rollups, retention
from call_router.ami_client import AmiLink
from call_router.ami_listener import AmiListener
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.live_state import LiveState
from call_router.request_feedback_dialer import FeedbackDialer
from call_router.settings import Settings
from call_router.sip_bans import Apply, SipBanGuard, carrier_networks, rules_of
from call_router.virtual_hold_dispatch import run_virtual_hold_dispatcher

log = structlog.get_logger(__name__)


async def serve(
    settings: Settings,
    *,
    ready: asyncio.Event | None = None,
    apply_sip_bans: Apply | None = None,
) -> None:
    """Run the listener until SIGTERM/SIGINT. Migrations are the CLI's job.

    `apply_sip_bans` puts the database's active SIP bans into Asterisk (re-render and reload:
    the `hotline` CLI's job); without it bans are only recorded.
    """
    db = Database(settings.db_url)
    rules = rules_of(settings)
    guard = (
        SipBanGuard(db, rules, carrier_networks(settings), apply_sip_bans)
        if rules is not None
        else None
    )
    # Entries opened, attached, closed and escalated here reach the callback pages live.
    live_state.publish_callback_changes(db, settings.redis_url, settings.redis_prefix)
    call_log = CallLog.from_settings(db, settings)
    live = LiveState.from_url(settings.redis_url, settings.redis_prefix)
    listener = AmiListener(settings, call_log, live, db=db, sip_bans=guard)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
    # The process's one AMI link for its actions (logged in once, not per call, round or day),
    # shared by virtual hold, the "is it fixed?" calls and the daily log rotation; the listener
    # has the event stream.
    ami = AmiLink(settings, role="originate")
    background = [
        asyncio.create_task(callback_escalation.run_periodically(db, live)),
        asyncio.create_task(retention.run_periodically(settings, db, ami)),
        asyncio.create_task(
            report_rollups.run_periodically(db.engine, threshold=settings.service_level_seconds)
        ),
    ]
    if guard is not None:
        background.append(asyncio.create_task(guard.run()))
    if settings.virtual_hold_autodial:
        background.append(asyncio.create_task(run_virtual_hold_dispatcher(settings, db, ami)))
    if settings.request_feedback_calls:
        background.append(asyncio.create_task(FeedbackDialer(settings, db, ami).run()))
    try:
        await listener.run(ready=ready)
    except asyncio.CancelledError:
        log.info("router_stopped")
    finally:
        for job in background:
            job.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await ami.close()
        await live.close()
        db.dispose()


def main() -> None:
    from call_router.settings import get_settings

    asyncio.run(serve(get_settings()))
