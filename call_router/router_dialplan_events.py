"""The router's handlers for what the dialplan and the channels report beside the queues:
transfers, the caller's channel variables, the voicemail greeting, a click-to-call's resident
leg, a caller a supervisor moved answered by that operator, and our own UserEvents
(virtual-hold request, the FastAGI fail-safe, a recording, the lag probe). Part of the
subscribe table of call_router/router_events.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container
from datetime import datetime
from typing import Any

from call_router import callback_dialing, channel_vars
from call_router.call_control.moving import answered_after_move
from call_router.call_event_kinds import (
    EVENT_AGI_FAILED,
    EVENT_QUEUE_STATUS,
    EVENT_VOICEMAIL,
    EVENT_VOICEMAIL_OFFERED,
)
from call_router.call_log import CallLog
from call_router.live_state import STAGE_TALKING, LiveState
from call_router.router_event_fields import Effect, Event, event_time, moment
from call_router.virtual_hold import CallbackRequest, close_answered, request_callback_in

# The dialplan context of click-to-call (asterisk_conf/extensions.conf.j2 [callback-out]).
CALLBACK_CONTEXT = "callback-out"
# The UserEvent the router sends itself through Asterisk to measure its lag.
LAG_PROBE = "HotlineProbe"
# Timeline kind of a call recording (MixMonitor); data {file (under recordings/), queue}.
EVENT_RECORDING = "recording"


class DialplanEvents:
    """Dialplan and channel events → call log timeline entries (idempotent), plus the
    live-state effects to run after the commit."""

    def __init__(
        self,
        call_log: CallLog,
        live: LiveState,
        *,
        clock: Callable[[], datetime],
        probe_returned: Callable[[str], Awaitable[None]],
        queues: Container[object],
    ) -> None:
        self._call_log = call_log
        self._live = live
        self._clock = clock
        self._probe_returned = probe_returned
        self._queues = queues

    def on_blind_transfer(self, event: Event) -> Effect | None:
        data = {
            "result": event.get("Result"),
            "extension": event.get("Extension"),
            "context": event.get("Context"),
            "transferer": event.get("TransfererChannel"),
        }
        return self._transfer(
            "blind_transfer", event, ("TransfereeLinkedid", "TransfererLinkedid"), data
        )

    def on_attended_transfer(self, event: Event) -> Effect | None:
        data = {
            "result": event.get("Result"),
            "dest_type": event.get("DestType"),
            "transferer": event.get("OrigTransfererChannel"),
            "target": event.get("TransferTargetChannel") or event.get("SecondTransfererChannel"),
        }
        return self._transfer(
            "attended_transfer",
            event,
            ("TransfereeLinkedid", "OrigTransfererLinkedid", "SecondTransfererLinkedid"),
            data,
        )

    def _transfer(
        self, kind: str, event: Event, linkedid_fields: tuple[str, ...], data: dict[str, Any]
    ) -> Effect | None:
        key = f"{kind}:{moment(event)}"
        for name in linkedid_fields:
            linkedid = event.get(name)
            if not linkedid:
                continue
            if self._call_log.record_event(linkedid, kind, key=key, at=self._at(event), data=data):
                published = {"linkedid": linkedid, **data}
                return lambda: self._live.publish(kind, published)
        return None

    def on_varset(self, event: Event) -> Effect | None:
        linkedid = event.get("Linkedid", "")
        # Only the caller's own channel carries the variables below.
        if not linkedid or event.get("Uniqueid") != linkedid:
            return None
        variable, value = event.get("Variable", ""), event.get("Value", "")
        at = self._at(event)
        if variable == "QUEUESTATUS":
            # Why Queue() returned without an operator (TIMEOUT, FULL, JOINEMPTY, ...).
            self._call_log.record_event(
                linkedid,
                EVENT_QUEUE_STATUS,
                key=f"queue_status:{value}:{moment(event)}",
                at=at,
                data={"status": value},
            )
        elif variable == "VMSTATUS" and value == "SUCCESS":
            # Only a message actually left makes the outcome "voicemail".
            self._call_log.record_event(linkedid, EVENT_VOICEMAIL, key=EVENT_VOICEMAIL, at=at)
        elif variable == channel_vars.QUEUE and value in self._queues:
            # The dialplan's queue choice: known even when Queue() never lets the caller join.
            self._call_log.queue_planned(linkedid, queue=value)
        return None

    def on_newexten(self, event: Event) -> Effect | None:
        if event.get("Application", "").lower() != "voicemail":
            return None
        self._call_log.record_event(
            event.get("Linkedid", ""),
            EVENT_VOICEMAIL_OFFERED,
            key=f"{EVENT_VOICEMAIL_OFFERED}:{moment(event)}",
            at=self._at(event),
            data={"mailbox": event.get("AppData", "")[:64]},
        )
        return None

    def on_dial_end(self, event: Event) -> Effect | None:
        """The operator a supervisor moved a caller to answered (call_control/moving.py), or a
        click-to-call's resident leg ended."""
        call = answered_after_move(self._call_log, event, self._at(event))
        if call is not None:
            return lambda: self._live.call_stage(call, STAGE_TALKING)
        return self.on_callback_dial(event)

    def on_callback_dial(self, event: Event) -> Effect | None:
        """The resident's leg of a click-to-call (call_router/click_to_call.py): its ringing,
        answer or failure goes on that call's timeline. Other Dial()s are not ours to log."""
        if event.get("Context") != CALLBACK_CONTEXT:
            return None
        linkedid = event.get("Linkedid", "")
        begin = event.get("Event") == "DialBegin"
        kind = callback_dialing.EVENT_DIAL_BEGIN if begin else callback_dialing.EVENT_DIAL_END
        data = {
            "operator_channel": event.get("Channel"),
            "resident_channel": event.get("DestChannel"),
            "resident_uniqueid": event.get("DestUniqueid"),
            "status": None if begin else event.get("DialStatus"),
        }
        recorded = self._call_log.record_event(
            linkedid,
            kind,
            key=f"{kind}:{event.get('DestUniqueid', '')}",
            at=self._at(event),
            data=data,
        )
        if not recorded:
            return None
        if data["status"] == "ANSWER":
            # An automatic (virtual-hold) call-back is done once the resident is on the line.
            at = self._at(event)
            self._call_log.run(lambda session: close_answered(session, linkedid, at))
        published = {"linkedid": linkedid, **data}
        return lambda: self._live.publish(kind, published)

    def on_user_event(self, event: Event) -> Effect | None:
        """Our dialplan's user events: a virtual-hold request, the FastAGI fail-safe taken, an
        operator's call into the menu, a call recording started."""
        name = event.get("UserEvent", "")
        if name == LAG_PROBE:
            probe = event.get("Probe", "")
            return lambda: self._probe_returned(probe)
        linkedid = event.get("Linkedid", "")
        queue = event.get("Queue") if event.get("Queue") in self._queues else None
        if not linkedid:
            return None
        if name == "HotlineCallbackRequest":
            at = self._at(event)
            result: CallbackRequest | None = self._call_log.run(
                lambda session: request_callback_in(session, linkedid, queue=queue, at=at)
            )
            if result is None:
                return None
            data = {"linkedid": linkedid, "queue": queue, "callback_id": result.callback_id}
            return lambda: self._live.publish("callback_requested", data)
        if name == "HotlineAgiFailed":
            # The dialplan's fail-safe (agi-fail): the FastAGI server died, refused or broke.
            if event.get("Uniqueid") == linkedid:
                # The caller's own channel. Behind Kamailio its Newchannel is in [from-edge],
                # not the inbound context, and no FastAGI server wrote the call: without this
                # a call that met a dead FastAGI pool would never be logged.
                self._call_log.ensure_call(
                    linkedid,
                    caller_number=event.get("CallerIDNum"),
                    caller_name=event.get("CallerIDName"),
                    channel=event.get("Channel"),
                    # The extension the dialplan matched (from-pstn): the company's number.
                    dialed_number=event.get("Dialed") or None,
                    started_at=self._at(event),
                )
            self._call_log.record_event(
                linkedid,
                EVENT_AGI_FAILED,
                key=EVENT_AGI_FAILED,
                at=self._at(event),
                data={"status": event.get("Status", "")[:32], "queue": queue},
            )
            return None
        if name == "HotlineInternalCall" and event.get("Uniqueid") == linkedid:
            # An operator's phone dialled the hotline ([operators] in extensions.conf): a test
            # call, not a resident - the reports count it apart (direction `internal`).
            self._call_log.mark_internal(
                linkedid,
                caller_number=event.get("CallerIDNum"),
                caller_name=event.get("CallerIDName"),
                channel=event.get("Channel"),
                started_at=self._at(event),
            )
            return None
        if name == "HotlineRecording":
            file = event.get("File", "")
            self._call_log.record_event(
                linkedid,
                EVENT_RECORDING,
                key=f"{EVENT_RECORDING}:{file}",
                at=self._at(event),
                data={"file": file, "queue": queue},
            )
        return None

    def _at(self, event: Event) -> datetime:
        return event_time(event, self._clock)
