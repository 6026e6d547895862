"""Click-to-call: ring the operator's phone first, then dial the resident with the hotline's ID.

How one call-back flows:
1. `prepare` (one transaction): the operator must hold the entry's claim and be on the roster,
   it must not be night or before the retry time, and no other call-back of the entry may be
   in progress. It writes the call-log row of the outbound call (linkedid chosen by us) with a
   `callback_call` event, and marks the entry as being dialled.
2. `originate`: AMI Originate, Async, to PJSIP/<operator> over the process's one AMI link
   (ami_client.AmiLink), with ChannelId = that linkedid so every leg Asterisk creates carries
   it. When the operator answers, the dialplan context
   [callback-out] dials PJSIP/<number>@pstn. The result (OriginateResponse) is matched by our
   ActionID: with Async, Asterisk answers "queued" at once and reports the outcome later.
3. The router's AMI listener logs the resident's leg (DialBegin/DialEnd in [callback-out]) and
   the hang-up; the call log's finalize step settles the call and the entry
   (callback_dialing.finish_outbound_call). If the operator's channel could not even be created,
   no hang-up event will ever come, so `originate` ends the call row itself (idempotent).

The virtual-hold dispatcher, which places call-backs by itself, is virtual_hold_dispatch.py.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select, update

from call_router import callback_dialing, callback_list, callbacks, virtual_hold
from call_router.ami_client import AmiLink, AmiUnavailable
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.models import DIRECTION_CALLBACK, Call, Operator, utcnow
from call_router.outbound_calls import open_outbound_call
from call_router.settings import Settings

CONTEXT = "callback-out"
EXTEN = "dial"
# Seconds the operator's phone rings before the call-back is given up.
OPERATOR_RING_SECONDS = 30
# Extra wait for OriginateResponse beyond the ring time.
RESPONSE_SLACK = 15.0

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
        call = open_outbound_call(
            session,
            linkedid=linkedid,
            phone=entry.caller_number,
            direction=DIRECTION_CALLBACK,
            # The company whose caller this is: behind its wall, in its figures (the dialled
            # number, the resident's own, says nothing of it).
            tenant_id=entry.tenant_id,
            at=now,
            kind=callback_dialing.EVENT_OUTBOUND,
            data={
                "callback_id": callback_id,
                "operator": operator,
                "direction": "outbound",
                **({"automatic": True} if automatic else {}),
            },
            queue=entry.queue,
            operator=operator,
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
    link: AmiLink | None = None,
) -> OriginateResult:
    """Send the Originate and wait for its OriginateResponse (matched by ActionID), over the
    process's one AMI link (`link`; without one, a link of its own for this call: the CLI).
    `on_node`: told (in a worker thread), before the Originate is sent, the node whose AMI
    answered (None: one box), so the row names it before any of the call's events arrive."""
    # Its own AMI user: Originate only (not of System() & co.), and the "call" events that
    # bring the OriginateResponse.
    ami = link or AmiLink(settings, role="originate")
    try:
        host = await ami.connect()
        if on_node is not None:
            await asyncio.to_thread(on_node, settings.node_of_ami_host(host))
        action: dict[str, str | list[str]] = {
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
            "Variable": [
                f"HOTLINE_CALLBACK_ID={placed.callback_id}",
                f"HOTLINE_CALLBACK_NUMBER={placed.number}",
                f"HOTLINE_CALLBACK_OPERATOR={placed.operator}",
                f"HOTLINE_CALLBACK_RING={settings.callback_ring_timeout}",
            ],
        }
        fields = await ami.originate(action, timeout=ring_seconds + RESPONSE_SLACK)
        if fields.get("Event") != "OriginateResponse":  # refused at once: no call was queued
            return OriginateResult(False, "0", fields)
        return OriginateResult(
            fields.get("Response", "").lower() == "success", fields.get("Reason", ""), fields
        )
    finally:
        if link is None:
            await ami.close()


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
    """`complete_on` for a process without a long-lived AMI link (the CLI: one per act)."""
    return asyncio.run(
        complete_on(settings, db, placed, link=None, clock=clock, not_before=not_before)
    )


async def complete_on(
    settings: Settings,
    db: Database,
    placed: PlacedCall,
    *,
    link: AmiLink | None,
    clock: Callable[[], datetime] = utcnow,
    not_before: float = 0.0,
) -> OriginateResult:
    """Originate a prepared call over `link`; on failure make sure its call row and the entry
    are settled. `not_before`: Unix time to wait for first (the end of the operator's wrap-up)."""
    wait = not_before - time.time()
    if wait > 0:
        await asyncio.sleep(wait)
    call_log = CallLog(db, clock=clock, country=settings.country_code)
    if placed.automatic:
        # From here on Asterisk may dial: the call is no longer an orphan to settle.
        await asyncio.to_thread(
            call_log.record_event,
            placed.linkedid,
            virtual_hold.EVENT_ORIGINATING,
            key=virtual_hold.EVENT_ORIGINATING,
        )
    try:
        result = await originate(
            settings,
            placed,
            on_node=lambda node: assign_node(db, placed.call_id, node),
            link=link,
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
        await asyncio.to_thread(
            call_log.call_ended, placed.linkedid, cause=f"originate_failed:{result.reason}"
        )
    return result


# The calls placed in the background, held until they end (a task nobody holds may vanish).
_in_flight: set[asyncio.Task[OriginateResult]] = set()


def complete_soon(
    settings: Settings,
    db: Database,
    placed: PlacedCall,
    *,
    link: AmiLink,
    not_before: float = 0.0,
) -> asyncio.Task[OriginateResult]:
    """`complete_on` as a task of the running loop: the operator's phone may ring for 30 s,
    and nobody (an HTTP request, the dispatcher's round) waits for it."""
    task = asyncio.create_task(
        complete_on(settings, db, placed, link=link, not_before=not_before),
        name=f"callback-{placed.callback_id}",
        # A context of its own, as a thread of its own had: the bookkeeping of the call is not
        # done behind the tenant wall of the HTTP request that asked for it.
        context=contextvars.Context(),
    )
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)
    return task
