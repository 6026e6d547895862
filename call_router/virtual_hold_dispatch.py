"""The virtual-hold dispatcher: dial held callers in their places, when operators of their
queue are free (the router's loop; the rules are callback_policy.release_virtual_hold).

app_queue hands an operator to a live caller the moment their wrap-up ends. A held caller
who joined earlier must have that operator first, so the dispatcher also counts an operator
whose wrap-up ends within the next pass and rings their phone WRAPUP_LEAD seconds before it
ends: a ringing phone is not offered to the queue (ringinuse = no), and the operator keeps
nearly all of their after-call work.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from call_router import callback_claims, callback_list, callbacks, virtual_hold
from call_router import callback_policy as policy
from call_router.agent_membership import Membership, login_of, parse_members
from call_router.ami_client import AmiClient, AmiLink, AmiSender, AmiUnavailable
from call_router.call_log import CallLog
from call_router.click_to_call import PlacedCall, complete, complete_soon, prepare
from call_router.db import Database
from call_router.models import utcnow
from call_router.settings import Settings

# app_queue's member Status for an idle device (AST_DEVICE_NOT_INUSE).
DEVICE_NOT_INUSE = 1
# Seconds between two virtual-hold dispatch rounds (QueueStatus is cheap).
VHOLD_INTERVAL = 3.0
# Seconds before an operator's wrap-up ends that a held caller's call-back rings them: ahead of
# app_queue, which offers the operator to a live caller once the wrap-up is over.
WRAPUP_LEAD = 2.0

log = structlog.get_logger(__name__)


def free_operators(
    members: Sequence[Membership], now_unix: float, *, grace: float = 0.0
) -> dict[str, list[str]]:
    """Per queue, the logins free to take a call now: idle device, not paused, not in a call,
    and in no after-call work or in its last `grace` seconds. Pure (plain Membership values
    from QueueStatus)."""
    free: dict[str, list[str]] = {}
    for member in members:
        login = login_of(member.interface)
        if login is None or member.paused or member.in_call:
            continue
        if member.status != DEVICE_NOT_INUSE:
            continue
        if member.last_call and now_unix + grace < member.last_call + member.wrapup:
            continue
        free.setdefault(member.queue, []).append(login)
    return free


def wrapup_ends(members: Sequence[Membership]) -> dict[str, float]:
    """Per login, the Unix time its after-call work ends (0: none)."""
    ends: dict[str, float] = {}
    for member in members:
        login = login_of(member.interface)
        if login is not None and member.last_call:
            end = float(member.last_call + member.wrapup)
            ends[login] = max(ends.get(login, 0.0), end)
    return ends


def live_callers(replies: Sequence[Mapping[str, str]], now: datetime) -> list[policy.LiveCaller]:
    """The callers waiting in queues now (QueueStatus's QueueEntry events; `Wait` in seconds)."""
    callers: list[policy.LiveCaller] = []
    for reply in replies:
        if reply.get("Event") != "QueueEntry" or not reply.get("Queue"):
            continue
        try:
            wait = int(reply.get("Wait") or 0)
            priority = int(reply.get("Priority") or 0)
        except ValueError:
            wait, priority = 0, 0
        callers.append(
            policy.LiveCaller(reply["Queue"], now - timedelta(seconds=max(0, wait)), priority)
        )
    return callers


def release_held(
    db: Database,
    free: Mapping[str, Sequence[str]],
    *,
    rules: callbacks.CallbackRules,
    now: datetime | None = None,
    live: Sequence[policy.LiveCaller] = (),
) -> list[PlacedCall]:
    """Claim and prepare the held callbacks to dial now, each with its own free operator.

    The line is held and `live` callers by join time (callback_policy.release_virtual_hold);
    an operator already dialling a held caller is not free. An operator free in two queues is
    given one call. The returned calls still need `complete` (the Originate).
    """
    now = now or utcnow()
    with db.session() as session:
        orphans = virtual_hold.orphaned_calls(session, now)
    for linkedid in orphans:  # its router stopped before the Originate: nobody was dialled
        log.warning("virtual_hold_orphan_settled", linkedid=linkedid)
        CallLog(db, clock=lambda: now, country=rules.country).call_ended(
            linkedid, cause="not_dialled", at=now
        )
    with db.session() as session:
        held, dialling = callback_list.virtual_hold_waiting(session, now, rules)
        busy = virtual_hold.dialling_operators(session)
    # An entry being dialled holds its operator: taken out of the free ones (their phone may
    # not show it yet); callbacks whose operator is not listed free already took no place.
    free = {queue: [op for op in logins if op not in busy] for queue, logins in free.items()}
    counts = {queue: len(logins) for queue, logins in free.items()}
    taken: set[str] = set()
    placed: list[PlacedCall] = []
    for item in policy.release_virtual_hold(held, counts, live=live):
        operator = next((op for op in free.get(item.queue, ()) if op not in taken), None)
        if operator is None:
            continue
        try:
            with db.session() as session:
                callback_claims.claim(session, item.id, operator, now, timeout=rules.claim_timeout)
            placed.append(prepare(db, item.id, operator, rules=rules, now=now, automatic=True))
        except callbacks.CallbackError as exc:  # someone else took it meanwhile: skip it
            log.info("virtual_hold_skip", callback_id=item.id, code=exc.code, dialling=dialling)
            continue
        taken.add(operator)
    return placed


async def dispatch_virtual_hold(
    settings: Settings,
    db: Database,
    *,
    rules: callbacks.CallbackRules | None = None,
    interval: float = VHOLD_INTERVAL,
    link: AmiLink | None = None,
) -> list[PlacedCall]:
    """One pass for the router: ask Asterisk who is free and who waits, dial the held callers
    whose turn it is. `interval`: the time to the next pass (how early a wrap-up may count).
    `link`: the process's AMI link, which the QueueStatus and the call-backs share; without
    one (a single pass from a shell or a test) a one-shot client asks and each call-back runs
    in a thread of its own, so it outlives the pass."""
    rules = rules or callbacks.CallbackRules.from_settings(settings)
    replies = await _queue_status(settings, link)
    now_unix = time.time()
    members = parse_members(replies)
    live = live_callers(replies, datetime.fromtimestamp(now_unix, UTC))
    free = free_operators(members, now_unix, grace=interval + WRAPUP_LEAD)
    ends = wrapup_ends(members)
    placed = await asyncio.to_thread(release_held, db, free, rules=rules, live=live)
    for call in placed:
        # Each Originate waits up to the ring time: side by side, never in the round's way.
        not_before = ends.get(call.operator, 0.0) - WRAPUP_LEAD
        if link is not None:
            complete_soon(settings, db, call, link=link, not_before=not_before)
            continue
        threading.Thread(
            target=complete,
            args=(settings, db, call),
            kwargs={"not_before": not_before},
            name=f"vhold-{call.callback_id}",
            daemon=True,
        ).start()
    return placed


async def _queue_status(settings: Settings, link: AmiLink | None) -> list[dict[str, str]]:
    if link is not None:
        return await _ask(link)
    async with AmiClient(settings) as ami:
        return await _ask(ami)


async def _ask(ami: AmiSender) -> list[dict[str, str]]:
    return await ami.send({"Action": "QueueStatus"}, many=True)


async def run_virtual_hold_dispatcher(
    settings: Settings, db: Database, link: AmiLink, *, interval: float = VHOLD_INTERVAL
) -> None:
    """The router's loop: every few seconds, dial held callers whose turn has come, over the
    router's one AMI link."""
    while True:
        try:
            await dispatch_virtual_hold(settings, db, interval=interval, link=link)
        except AmiUnavailable as exc:  # Asterisk restarting: try again next round
            log.warning("virtual_hold_dispatch_skipped", error=str(exc))
        except Exception:  # the next round retries; the router must keep running
            log.exception("virtual_hold_dispatch_failed")
        await asyncio.sleep(interval)
