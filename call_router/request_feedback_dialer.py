"""The router's dialer of "is it fixed?" calls (rules: call_router/request_feedback.py).

Every few seconds, outside quiet hours: the done requests whose call is due get one try each.
The try is recorded first (the next one is then already scheduled), then Asterisk is asked
over the router's one long-lived AMI link (AmiLink, role `originate`: logged in once, not per
call) for an Async Originate of `Local/dial@request-feedback-out`, whose dialplan checks the
number against the dial-out plan again before it reaches the trunk; once the resident
answers, [request-feedback] runs the FastAGI route `request_feedback` (the question and the
answer). A try that is not answered is noted on the request's history.

Each try is a row of the call log (call_router/feedback_calls.py), written with the try; its
linkedid is the Originate's ChannelId, so the router's AMI listener ends it on the Hangup.
Answered, the dialer notes when; not answered, it notes so and ends the row itself (no Hangup
comes when no channel was made; call_ended is idempotent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import structlog

from call_router import feedback_calls
from call_router import request_feedback as feedback
from call_router import service_requests as store
from call_router.ami_client import AmiLink, AmiUnavailable
from call_router.call_log import CallLog
from call_router.callbacks import CallbackRules
from call_router.db import Database
from call_router.models import utcnow
from call_router.settings import Settings

log = structlog.get_logger(__name__)

INTERVAL = 5.0
DIAL_CONTEXT = "request-feedback-out"
ANSWER_CONTEXT = "request-feedback"
# Extra wait for the OriginateResponse beyond the ring time.
RESPONSE_SLACK = 15.0
ANSWERED = "4"  # Asterisk's OriginateResponse Reason for an answered call


def take_due(db: Database, rules: CallbackRules, now: datetime) -> list[feedback.Attempt]:
    """Record one try for each due request (each in its own transaction: a request changed
    meanwhile by someone else is left for the next round)."""
    with db.session() as session:
        numbers = [request.number for request in feedback.due(session, now, rules)]
    attempts: list[feedback.Attempt] = []
    for number in numbers:
        try:
            with db.session() as session:
                request = store.get_request(session, number)
                if request.feedback_due_at is None or request.feedback_due_at > now:
                    continue
                attempt = feedback.start_attempt(session, request, now, rules)
        except store.RequestError as exc:
            log.info("feedback_call_skipped", request=number, code=exc.code)
            continue
        if attempt is not None:
            attempts.append(attempt)
    return attempts


def originate_fields(settings: Settings, attempt: feedback.Attempt) -> dict[str, str | list[str]]:
    ring = settings.request_feedback_ring
    # The try's call-log row: every leg Asterisk creates carries its linkedid.
    channel_id: dict[str, str | list[str]] = (
        {"ChannelId": attempt.linkedid} if attempt.linkedid else {}
    )
    return {
        "Action": "Originate",
        "ActionID": attempt.action_id,
        "Channel": f"Local/dial@{DIAL_CONTEXT}",
        "Context": ANSWER_CONTEXT,
        "Exten": "s",
        "Priority": "1",
        "Timeout": str((ring + 5) * 1000),
        "CallerID": f'"Hotline" <{settings.hotline_caller_id}>',
        **channel_id,
        "Variable": [
            f"HOTLINE_FEEDBACK_NUMBER={attempt.phone}",
            f"HOTLINE_FEEDBACK_REQUEST={attempt.number}",
            f"HOTLINE_FEEDBACK_RING={ring}",
        ],
    }


async def place(settings: Settings, db: Database, link: AmiLink, attempt: feedback.Attempt) -> bool:
    """Originate one try; True when the resident answered (the FastAGI route takes over)."""
    reason = "0"
    try:
        if attempt.linkedid:
            # The node whose Asterisk takes it (a cluster): its router reconciles the row.
            node = settings.node_of_ami_host(await link.connect())
            await asyncio.to_thread(_assign_node, db, attempt.linkedid, node)
        reply = await link.originate(
            originate_fields(settings, attempt),
            timeout=settings.request_feedback_ring + RESPONSE_SLACK,
        )
        answered = reply.get("Response", "").lower() == "success"
        reason = reply.get("Reason", "") or reply.get("Message", "")[:32] or "0"
    except AmiUnavailable as exc:
        answered = False
        reason = "ami_unavailable"
        log.warning("feedback_originate_failed", request=attempt.number, error=str(exc))
    log.info("feedback_call", request=attempt.number, attempt=attempt.attempt, reason=reason)
    if answered:
        await asyncio.to_thread(_answered, db, attempt, utcnow())
    else:
        await asyncio.to_thread(_not_reached, settings, db, attempt, reason)
    return answered


def _assign_node(db: Database, linkedid: str, node: str | None) -> None:
    if node is None:
        return  # one box: no node
    try:
        with db.session() as session:
            feedback_calls.assign_node(session, linkedid, node)
    except Exception:  # where the row is shown: never a reason not to call
        log.exception("feedback_node_not_noted", linkedid=linkedid)


def _answered(db: Database, attempt: feedback.Attempt, at: datetime) -> None:
    if not attempt.linkedid:
        return
    try:
        with db.session() as session:
            feedback_calls.answered(session, attempt.linkedid, at)
    except Exception:  # the call goes on; its row lacks the answer time
        log.exception("feedback_answer_time_not_noted", linkedid=attempt.linkedid)


def _not_reached(settings: Settings, db: Database, attempt: feedback.Attempt, reason: str) -> None:
    try:
        with db.session() as session:
            feedback.not_reached(session, attempt.number, attempt, reason)
    except store.RequestError as exc:
        log.info("feedback_note_skipped", request=attempt.number, code=exc.code)
    if attempt.linkedid:
        # The router may have ended it from the Hangup already: call_ended is idempotent.
        CallLog.from_settings(db, settings).call_ended(
            attempt.linkedid, cause=f"not_answered:{reason}"[:64]
        )


class FeedbackDialer:
    """The dialer's rounds; the calls it placed run as tasks it holds until they end."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        link: AmiLink,
        *,
        rules: CallbackRules | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.db = db
        self.link = link
        self.rules = rules or CallbackRules.from_settings(settings)
        self.clock = clock
        self.calls: set[asyncio.Task[bool]] = set()

    async def round(self) -> list[feedback.Attempt]:
        attempts = await asyncio.to_thread(take_due, self.db, self.rules, self.clock())
        for attempt in attempts:
            task = asyncio.create_task(place(self.settings, self.db, self.link, attempt))
            self.calls.add(task)
            task.add_done_callback(self.calls.discard)
        return attempts

    async def run(self, interval: float = INTERVAL) -> None:
        try:
            while True:
                try:
                    await self.round()
                except Exception:  # the next round retries; the router must keep running
                    log.exception("feedback_round_failed")
                await asyncio.sleep(interval)
        finally:
            for task in self.calls:
                task.cancel()
