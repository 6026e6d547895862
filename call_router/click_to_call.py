"""Click-to-call: ring the operator's phone first, then dial the resident with the hotline's ID.

How one call-back flows:
1. `prepare` (one transaction): the operator must hold the entry's claim and be on the roster,
   it must not be night or before the retry time, and no other call-back of the entry may be
   in progress. It writes the call-log row of the outbound call (linkedid chosen by us) with a
   `callback_call` event, and marks the entry as being dialled.
2. `originate`: AMI Originate, Async, to PJSIP/<operator>, with ChannelId = that linkedid so
   every leg Asterisk creates carries it. When the operator answers, the dialplan context
   [callback-out] dials PJSIP/<number>@pstn. The result (OriginateResponse) is matched by our
   ActionID: with Async, Asterisk answers "queued" at once and reports the outcome later.
3. The router's AMI listener logs the resident's leg (DialBegin/DialEnd in [callback-out]) and
   the hang-up; the call log's finalize step settles the call and the entry
   (callback_dialing.finish_outbound_call). If the operator's channel could not even be created,
   no hang-up event will ever come, so `originate` ends the call row itself (idempotent).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from panoramisk import Manager  # type: ignore[import-untyped]
from sqlalchemy import select, update

from call_router import callback_claims, callback_dialing, callback_list, callbacks, virtual_hold
from call_router import callback_policy as policy
from call_router.agents import Membership, login_of, parse_members
from call_router.ami_client import (
    AmiClient,
    AmiUnavailable,
    NoReconnectManager,
    connect_one_shot,
    plain,
)
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.models import DIRECTION_CALLBACK, Call, CallEvent, Operator, utcnow
from call_router.settings import Settings

CONTEXT = "callback-out"
EXTEN = "dial"
# Seconds the operator's phone rings before the call-back is given up.
OPERATOR_RING_SECONDS = 30
# Extra wait for OriginateResponse beyond the ring time.
RESPONSE_SLACK = 15.0
# app_queue's member Status for an idle device (AST_DEVICE_NOT_INUSE).
DEVICE_NOT_INUSE = 1
# Seconds between two virtual-hold dispatch rounds (QueueStatus is cheap).
VHOLD_INTERVAL = 3.0
# Seconds before an operator's wrap-up ends that a held caller's call-back rings them: ahead of
# app_queue, which offers the operator to a live caller once the wrap-up is over.
WRAPUP_LEAD = 2.0

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PlacedCall:
    callback_id: int
    call_id: int
    linkedid: str
    operator: str
    number: str
    automatic: bool = False  # placed by the virtual-hold dispatcher

    @property
    def action_id(self) -> str:
        return f"hotline-callback-{self.linkedid}"


@dataclass(frozen=True)
class OriginateResult:
    """Asterisk's OriginateResponse: ok once the operator answered (the resident is dialled)."""

    ok: bool
    reason: str  # Asterisk's Reason code: 4 answered, 3 no answer, 5 busy, 0/8 failure
    detail: dict[str, str]


def prepare(
    db: Database,
    callback_id: int,
    operator: str,
    *,
    rules: callbacks.CallbackRules,
    now: datetime | None = None,
    by: str | None = None,
    automatic: bool = False,
) -> PlacedCall:
    """Check and record the call-back before Asterisk is asked; raises callbacks.CallbackError.
    `by`: who asked (a supervisor placing it for `operator`), for the entry's history.
    `automatic`: the virtual-hold dispatcher placed it (answered, it closes the entry)."""
    now = now or utcnow()
    linkedid = f"{callback_dialing.OUTBOUND_LINKEDID_PREFIX}{uuid.uuid4().hex}"
    with db.session() as session:
        known = session.scalar(
            select(Operator.id).where(Operator.sip_login == operator, Operator.enabled.is_(True))
        )
        if known is None:
            raise callbacks.CallbackError("unknown_operator", f"no enabled operator {operator!r}")
        entry = callback_list.get_callback(session, callback_id)
        if entry is None:
            raise callbacks.CallbackError("not_found", f"no callback {callback_id}")
        call = Call(
            linkedid=linkedid,
            caller_number=entry.caller_number,
            dialed_number=entry.caller_number[:32],
            started_at=now,
            queue=entry.queue,
            operator=operator,
            direction=DIRECTION_CALLBACK,
        )
        session.add(call)
        session.flush()
        session.add(
            CallEvent(
                call_id=call.id,
                at=now,
                kind=callback_dialing.EVENT_OUTBOUND,
                key=callback_dialing.EVENT_OUTBOUND,
                data={
                    "callback_id": callback_id,
                    "operator": operator,
                    "direction": "outbound",
                    **({"automatic": True} if automatic else {}),
                },
            )
        )
        # Raises (and rolls the call row back) when the entry may not be dialled now.
        callback_dialing.start_call(
            session, callback_id, operator, now, call_id=call.id, rules=rules, by=by
        )
        return PlacedCall(callback_id, call.id, linkedid, operator, entry.caller_number, automatic)


def assign_node(db: Database, call_id: int, node: str | None) -> None:
    """The call row of a click-to-call is on `node` (the node whose AMI takes the Originate):
    its router reconciles it and every page shows where it is. Set once: a row that already
    has a node (the router merged it in first) keeps it."""
    if node is None:
        return  # one box: no node
    with db.session() as session:
        session.execute(
            update(Call).where(Call.id == call_id, Call.node.is_(None)).values(node=node)
        )


async def originate(
    settings: Settings,
    placed: PlacedCall,
    *,
    ring_seconds: int = OPERATOR_RING_SECONDS,
    on_node: Callable[[str | None], None] | None = None,
) -> OriginateResult:
    """Send the Originate and wait for its OriginateResponse (matched by ActionID).
    `on_node`: told, before the Originate is sent, the node whose AMI answered (None: one
    box), so the row names it before any of the call's events can arrive."""
    manager = await _connect(settings)
    try:
        if on_node is not None:
            on_node(settings.node_of_ami_host(manager.host))
        loop = asyncio.get_running_loop()
        response: asyncio.Future[dict[str, str]] = loop.create_future()

        def on_response(_manager: Manager, event: Any) -> None:
            fields = plain(event)
            if fields.get("ActionID") == placed.action_id and not response.done():
                response.set_result(fields)

        manager.register_event("OriginateResponse", on_response)
        action = {
            "Action": "Originate",
            "ActionID": placed.action_id,
            "Channel": f"PJSIP/{placed.operator}",
            "Context": CONTEXT,
            "Exten": EXTEN,
            "Priority": "1",
            "Timeout": str(ring_seconds * 1000),
            # What the operator's phone shows: who is about to be called back.
            "CallerID": f'"Callback" <{placed.number}>',
            "ChannelId": placed.linkedid,
            "Async": "true",
            "Variable": [
                f"HOTLINE_CALLBACK_ID={placed.callback_id}",
                f"HOTLINE_CALLBACK_NUMBER={placed.number}",
                f"HOTLINE_CALLBACK_OPERATOR={placed.operator}",
                f"HOTLINE_CALLBACK_RING={settings.callback_ring_timeout}",
            ],
        }
        # as_list=False: only the immediate "queued" reply; the result comes as an event.
        first = plain(await asyncio.wait_for(manager.send_action(action, as_list=False), 5))
        if first.get("Response", "").lower() != "success":
            return OriginateResult(False, "0", first)
        fields = await asyncio.wait_for(response, ring_seconds + RESPONSE_SLACK)
        return OriginateResult(
            fields.get("Response", "").lower() == "success", fields.get("Reason", ""), fields
        )
    finally:
        manager.close()


def call_back(
    settings: Settings,
    db: Database,
    callback_id: int,
    operator: str,
    *,
    rules: callbacks.CallbackRules | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> tuple[PlacedCall, OriginateResult]:
    """The whole click-to-call, blocking until the operator answered or it failed."""
    rules = rules or callbacks.CallbackRules.from_settings(settings)
    placed = prepare(db, callback_id, operator, rules=rules, now=clock())
    return placed, complete(settings, db, placed, clock=clock)


def complete(
    settings: Settings,
    db: Database,
    placed: PlacedCall,
    *,
    clock: Callable[[], datetime] = utcnow,
    not_before: float = 0.0,
) -> OriginateResult:
    """Originate a prepared call; on failure make sure its call row and the entry are settled.
    `not_before`: Unix time to wait for first (the end of the operator's wrap-up)."""
    wait = not_before - time.time()
    if wait > 0:
        time.sleep(wait)
    call_log = CallLog(db, clock=clock, country=settings.country_code)
    if placed.automatic:
        # From here on Asterisk may dial: the call is no longer an orphan to settle.
        call_log.record_event(
            placed.linkedid, virtual_hold.EVENT_ORIGINATING, key=virtual_hold.EVENT_ORIGINATING
        )
    try:
        result = asyncio.run(
            originate(settings, placed, on_node=lambda node: assign_node(db, placed.call_id, node))
        )
    except (AmiUnavailable, OSError, TimeoutError) as exc:
        result = OriginateResult(False, "0", {"error": str(exc) or type(exc).__name__})
    log.info(
        "callback_originate",
        callback_id=placed.callback_id,
        operator=placed.operator,
        ok=result.ok,
        reason=result.reason,
    )
    if not result.ok:
        # The router may already have ended it from the Hangup event; call_ended is idempotent.
        call_log.call_ended(placed.linkedid, cause=f"originate_failed:{result.reason}")
    return result


async def _connect(settings: Settings) -> NoReconnectManager:
    # OriginateResponse is a "call" class event: a session without events never sees it.
    # Its own AMI user: Originate only (not of System() & co.), and the "call" events.
    return await connect_one_shot(settings, events="call", role="originate")


# --- virtual hold: dial held callers in their places, when operators of their queue are free --
#
# app_queue hands an operator to a live caller the moment their wrap-up ends. A held caller
# who joined earlier must have that operator first, so the dispatcher also counts an operator
# whose wrap-up ends within WRAPUP_GRACE and rings their phone WRAPUP_LEAD seconds before it
# ends: a ringing phone is not offered to the queue (ringinuse = no), and the operator keeps
# nearly all of their after-call work.


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
) -> list[PlacedCall]:
    """One pass for the router: ask Asterisk who is free and who waits, dial the held callers
    whose turn it is. `interval`: the time to the next pass (how early a wrap-up may count)."""
    rules = rules or callbacks.CallbackRules.from_settings(settings)
    async with AmiClient(settings) as ami:
        replies = await ami.send({"Action": "QueueStatus"}, many=True)
    now_unix = time.time()
    members = parse_members(replies)
    live = live_callers(replies, datetime.fromtimestamp(now_unix, UTC))
    free = free_operators(members, now_unix, grace=interval + WRAPUP_LEAD)
    ends = wrapup_ends(members)
    placed = await asyncio.to_thread(release_held, db, free, rules=rules, live=live)
    for call in placed:
        # Each Originate waits up to the ring time: run them side by side, off the loop.
        threading.Thread(
            target=complete,
            args=(settings, db, call),
            kwargs={"not_before": ends.get(call.operator, 0.0) - WRAPUP_LEAD},
            name=f"vhold-{call.callback_id}",
            daemon=True,
        ).start()
    return placed


async def run_virtual_hold_dispatcher(
    settings: Settings, db: Database, *, interval: float = VHOLD_INTERVAL
) -> None:
    """The router's loop: every few seconds, dial held callers whose turn has come."""
    while True:
        try:
            await dispatch_virtual_hold(settings, db, interval=interval)
        except AmiUnavailable as exc:  # Asterisk restarting: try again next round
            log.warning("virtual_hold_dispatch_skipped", error=str(exc))
        except Exception:  # the next round retries; the router must keep running
            log.exception("virtual_hold_dispatch_failed")
        await asyncio.sleep(interval)
