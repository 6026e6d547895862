"""The router's subscribe table: each AMI event it handles → a write to the call log, and
what to do once that write is committed (live state, agent state). Handlers run inside the
batch's transaction (call_router/router_writer.py) in a worker thread; what they return runs
afterwards on the event loop, so nothing is published for a write that was rolled back.
Here: the calls' arrival, queues, operators and hang-up; the dialplan's and channels' other
events are router_dialplan_events.py, the handlers' shared vocabulary router_event_fields.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from call_router import missed_rings
from call_router.ban_policy import FAILURE_EVENTS
from call_router.call_log import CallLog
from call_router.call_log_core import CallView
from call_router.live_state import STAGE_MENU, STAGE_QUEUE, STAGE_TALKING, LiveState
from call_router.router_dialplan_events import DialplanEvents
from call_router.router_event_fields import Effect, Event, Handler, event_time, moment
from call_router.settings import QUEUES
from call_router.sip_bans import SipBanGuard
from call_router.tenant_routing import is_known_queue

if TYPE_CHECKING:
    from call_router.router_agents import AgentPresence

INBOUND_CONTEXT = "from-pstn"
log = structlog.get_logger(__name__)


class OurQueues:
    """`queue in OurQueues()`: a queue of ours, the centre's or a tenant's own (by its name's
    shape: tenants' queues come and go while the router runs)."""

    def __contains__(self, queue: object) -> bool:
        return isinstance(queue, str) and is_known_queue(queue, QUEUES)


class CallEvents:
    """AMI events → call log rows and timeline entries (idempotent: a replayed event writes
    nothing twice), plus the live-state effects to run after the commit."""

    def __init__(
        self,
        call_log: CallLog,
        live: LiveState,
        agents: AgentPresence,
        *,
        clock: Callable[[], datetime],
        probe_returned: Callable[[str], Awaitable[None]],
        sip_bans: SipBanGuard | None = None,
    ) -> None:
        self._call_log = call_log
        self._live = live
        self._agents = agents
        self._clock = clock
        # The centre's queues and the tenants' own (t<id>_<service>, tenant_routing.py).
        self._queues = OurQueues()
        dialplan = DialplanEvents(
            call_log, live, clock=clock, probe_returned=probe_returned, queues=self._queues
        )
        # Asterisk event name → handler. Everything else is ignored.
        self.handlers: dict[str, Handler] = {
            "Newchannel": self.on_newchannel,
            "QueueCallerJoin": self.on_queue_caller_join,
            "QueueCallerLeave": self.on_queue_caller_leave,
            "QueueCallerAbandon": self.on_queue_caller_abandon,
            "AgentCalled": self.on_agent_called,
            "AgentRingNoAnswer": self.on_agent_ring_no_answer,
            "AgentConnect": self.on_agent_connect,
            "AgentComplete": self.on_agent_complete,
            "Hangup": self.on_hangup,
            "BlindTransfer": dialplan.on_blind_transfer,
            "AttendedTransfer": dialplan.on_attended_transfer,
            "VarSet": dialplan.on_varset,
            "Newexten": dialplan.on_newexten,
            # Membership lives in memory only: the handler hands the event to the loop.
            "QueueMemberAdded": lambda e: lambda: agents.on_member_changed(e),
            "QueueMemberStatus": lambda e: lambda: agents.on_member_changed(e),
            "QueueMemberPause": lambda e: lambda: agents.on_member_changed(e),
            "QueueMemberPenalty": lambda e: lambda: agents.on_member_changed(e),
            "QueueMemberRemoved": lambda e: lambda: agents.on_member_removed(e),
            "UserEvent": dialplan.on_user_event,
            "DialBegin": dialplan.on_callback_dial,
            "DialEnd": dialplan.on_dial_end,
        }
        if sip_bans is not None:
            # Failed SIP authentications: counted (and maybe banned) after the batch commits.
            for name in FAILURE_EVENTS:
                self.handlers[name] = _after_commit(sip_bans.on_event)

    async def handle_batch(self, events: Sequence[Mapping[str, str]]) -> None:
        """Events in arrival order → one database transaction, then their effects in order."""
        wanted = [event for event in events if event.get("Event", "") in self.handlers]
        if not wanted:
            return
        effects = await asyncio.to_thread(self._write, wanted)
        for effect in effects:
            try:
                await effect()
            except Exception:  # live state is a convenience: never undo the log for it
                log.exception("ami_effect_failed")

    def _write(self, events: Sequence[Mapping[str, str]]) -> list[Effect]:
        effects: list[Effect] = []
        with self._call_log.batch():
            for event in events:
                effect = self.handlers[event["Event"]](event)
                self._call_log.checkpoint()
                if effect is not None:
                    effects.append(effect)
        return effects

    def on_newchannel(self, event: Event) -> Effect | None:
        if not _is_inbound_first_channel(event):
            return None
        linkedid = event["Linkedid"]
        self._call_log.ensure_call(
            linkedid,
            caller_number=event.get("CallerIDNum"),
            caller_name=event.get("CallerIDName"),
            channel=event.get("Channel"),
            dialed_number=event.get("Exten"),
            started_at=self._at(event),
        )
        call = self._call_log.get_call(linkedid)
        if call is None or call.ended_at is not None:
            return None
        return lambda: self._live.call_stage(call, STAGE_MENU)

    def on_queue_caller_join(self, event: Event) -> Effect | None:
        linkedid, queue = event.get("Linkedid", ""), event.get("Queue", "")
        if not linkedid or queue not in self._queues:
            return None
        at = self._at(event)
        if event.get("Uniqueid") == linkedid and self._call_log.find_call_id(linkedid) is None:
            # Newchannel was missed (router restarted mid-call): the caller's own channel
            # joining a hotline queue is enough to know it is ours.
            self._call_log.ensure_call(
                linkedid,
                caller_number=event.get("CallerIDNum"),
                caller_name=event.get("CallerIDName"),
                channel=event.get("Channel"),
                started_at=at,
            )
        position = _int(event.get("Position"))
        call = self._call_log.queue_joined(
            linkedid,
            queue=queue,
            key=f"queue_join:{queue}:{moment(event)}",
            at=at,
            data={"position": position},
        )
        if call is None:
            return None

        async def publish() -> None:
            await self._live.call_stage(call, STAGE_QUEUE, position=position)
            await self._publish_waiting(event)

        return publish

    def on_queue_caller_leave(self, event: Event) -> Effect | None:
        linkedid, queue = event.get("Linkedid", ""), event.get("Queue", "")
        if queue not in self._queues:
            return None
        call = self._call_log.queue_left(
            linkedid,
            queue=queue,
            key=f"queue_leave:{queue}:{moment(event)}",
            at=self._at(event),
        )
        return (lambda: self._publish_waiting(event)) if call is not None else None

    def on_queue_caller_abandon(self, event: Event) -> Effect | None:
        linkedid, queue = event.get("Linkedid", ""), event.get("Queue", "")
        if queue not in self._queues:
            return None
        hold_time = _int(event.get("HoldTime"))
        call = self._call_log.queue_abandoned(
            linkedid,
            queue=queue,
            key=f"abandon:{queue}:{moment(event)}",
            at=self._at(event),
            hold_time=hold_time,
        )
        if call is None:
            return None
        data = {"linkedid": linkedid, "queue": queue, "hold_time": hold_time}
        return lambda: self._live.publish("abandon", data)

    def on_agent_called(self, event: Event) -> Effect | None:
        linkedid, queue, member = _agent_fields(event)
        is_new = self._call_log.agent_ringing(
            linkedid,
            queue=queue,
            member=member,
            key=_leg_key("ring", event),
            at=self._at(event),
        )
        if not is_new:
            return None
        data = {"linkedid": linkedid, "queue": queue, "operator": member}
        return lambda: self._live.publish("ring", data)

    def on_agent_ring_no_answer(self, event: Event) -> Effect | None:
        linkedid, queue, member = _agent_fields(event)
        is_new = self._call_log.agent_no_answer(
            linkedid,
            queue=queue,
            member=member,
            key=_leg_key("ring_no_answer", event),
            at=self._at(event),
            ring_time=_int(event.get("RingTime")),
        )
        interface = event.get("Interface", "")
        # A replayed event must not count a second miss: the count is written with the event.
        if not is_new or not interface or not self._agents.autopause_enabled:
            return None
        at = self._at(event)
        missed: int = self._call_log.run(
            lambda session: missed_rings.count_miss(session, interface, at)
        )
        return lambda: self._agents.count_missed_ring(event, missed)

    def on_agent_connect(self, event: Event) -> Effect | None:
        linkedid, queue, member = _agent_fields(event)
        call = self._call_log.agent_connected(
            linkedid,
            queue=queue,
            operator=member,
            key=_leg_key("connect", event),
            at=self._at(event),
            hold_time=_int(event.get("HoldTime")),
            interface=event.get("Interface") or None,
        )
        interface = event.get("Interface", "")
        # An answered call ends the missed-ring run.
        if interface and self._agents.autopause_enabled:
            self._call_log.run(lambda session: missed_rings.reset(session, interface))
        return (lambda: self._live.call_stage(call, STAGE_TALKING)) if call is not None else None

    def on_agent_complete(self, event: Event) -> Effect | None:
        linkedid, queue, member = _agent_fields(event)
        self._call_log.agent_completed(
            linkedid,
            queue=queue,
            operator=member,
            key=_leg_key("complete", event),
            at=self._at(event),
            reason=event.get("Reason") or None,
            talk_time=_int(event.get("TalkTime")),
        )
        return None

    def on_hangup(self, event: Event) -> Effect | None:
        linkedid = event.get("Linkedid", "")
        # Only the inbound channel's hang-up ends the call; operator legs end via AgentComplete.
        if not linkedid or event.get("Uniqueid") != linkedid:
            return None
        cause = event.get("Cause-txt") or event.get("Cause") or None
        call = self._call_log.call_ended(linkedid, cause=cause, at=self._at(event))
        return (lambda: self._live.call_ended(call)) if call is not None else None

    def _at(self, event: Event) -> datetime:
        return event_time(event, self._clock)

    async def _publish_waiting(self, event: Event) -> None:
        count = _int(event.get("Count"))
        if count is not None:
            await self._live.queue_waiting(event.get("Queue", ""), count)


def stage_of(call: CallView) -> str:
    """Where an open call is: in the menu, waiting in a queue, or talking to an operator."""
    if call.answered_at is not None:
        return STAGE_TALKING
    if call.queue_joined_at is not None:
        return STAGE_QUEUE
    return STAGE_MENU


def _after_commit(act: Callable[[Event], Awaitable[None]]) -> Handler:
    """A handler that writes nothing to the call log and acts on the event afterwards."""

    def handler(event: Event) -> Effect:
        return lambda: act(event)

    return handler


def _is_inbound_first_channel(event: Event) -> bool:
    return (
        event.get("Context") == INBOUND_CONTEXT
        and bool(event.get("Linkedid"))
        and event.get("Uniqueid") == event.get("Linkedid")
    )


def _agent_fields(event: Event) -> tuple[str, str, str]:
    member = event.get("MemberName") or event.get("Interface") or "unknown"
    return event.get("Linkedid", ""), event.get("Queue", ""), member


def _leg_key(kind: str, event: Event) -> str:
    """Each ring attempt has its own operator channel: its Uniqueid makes the key unique."""
    leg = event.get("DestUniqueid") or f"{event.get('Interface', '')}:{moment(event)}"
    return f"{kind}:{leg}"


# AMI counters (HoldTime, TalkTime, Position, ...) are never negative; beyond a database
# integer they are garbage that would fail the write of the whole call.
_MAX_COUNTER = 2**31 - 1


def _int(value: str | None) -> int | None:
    try:
        number = int(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is not None and 0 <= number <= _MAX_COUNTER else None
