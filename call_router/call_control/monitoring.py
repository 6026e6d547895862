"""Listen, whisper, barge: the supervisor's own phone rung into ChanSpy on the operator's leg, the
mode switched by DTMF, and who is monitoring whom now (read from Asterisk's channels)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from sqlalchemy import select

from call_router.agents import interface_of, login_of
from call_router.ami_client import AmiUnavailable, Reply
from call_router.call_control.base import ControlBase, ControlError, Outcome
from call_router.models import Call

MonitorMode = Literal["listen", "whisper", "barge"]
MONITOR_MODES: Final = ("listen", "whisper", "barge")
SPY_CONTEXT: Final = "hotline-spy"
# Seconds beyond the supervisor's ring time to wait for Asterisk's OriginateResponse.
RESPONSE_SLACK: Final = 10.0


# ChanSpy's option letter of each mode, and (option d) the digit that switches to it.
_MODE_OPTION: Final = {"listen": "", "whisper": "w", "barge": "B"}
DTMF_MODES: Final = {"4": "listen", "5": "whisper", "6": "barge"}


def spy_options(mode: str) -> str:
    """ChanSpy options for a monitor mode. Pure."""
    if mode not in MONITOR_MODES:
        raise ControlError("bad_mode", f"mode must be one of {', '.join(MONITOR_MODES)}", 422)
    return "qdES" + _MODE_OPTION[mode]


def mode_of_options(options: str) -> str:
    """The mode a ChanSpy started in, from its options. Pure."""
    return next((m for m, o in _MODE_OPTION.items() if o and o in options), "listen")


@dataclass(frozen=True)
class MonitorSession:
    """A supervisor's phone attached to an operator's leg: who monitors whom, how."""

    supervisor: str  # the supervisor's phone (roster login)
    mode: str
    operator: str | None  # the operator's roster login
    operator_channel: str
    linkedid: str  # the monitored call's
    seconds: int
    spy_channel: str
    call_id: int | None = None


def monitor_sessions(
    replies: Sequence[Mapping[str, str]], switched: Mapping[str, str] | None = None
) -> list[MonitorSession]:
    """The monitor sessions in progress, from a CoreShowChannels reply: our spy channels
    (a supervisor's phone running ChanSpy in [hotline-spy]). `switched`: spy channel → the
    mode its supervisor switched to by DTMF since (`SpyModes`). Pure."""
    channels = [e for e in replies if e.get("Event") == "CoreShowChannel"]
    by_name = {e.get("Channel", ""): e for e in channels}
    sessions = []
    for event in channels:
        name = event.get("Channel", "")
        if (
            event.get("Application", "").lower() != "chanspy"
            or event.get("Context") != SPY_CONTEXT
            or not name.startswith("PJSIP/")
        ):
            continue
        target, _, options = event.get("ApplicationData", "").partition(",")
        spied = by_name.get(target, {})
        sessions.append(
            MonitorSession(
                supervisor=login_of(name.rsplit("-", 1)[0]) or name,
                mode=(switched or {}).get(name) or mode_of_options(options),
                operator=login_of(target.rsplit("-", 1)[0]),
                operator_channel=target,
                linkedid=spied.get("Linkedid", ""),
                seconds=_seconds(event.get("Duration", "")),
                spy_channel=name,
            )
        )
    return sessions


def _seconds(duration: str) -> int:
    """`01:02:03` (CoreShowChannel's Duration) → 3723; 0 when unreadable."""
    try:
        hours, minutes, seconds = (int(part) for part in duration.split(":"))
    except ValueError:
        return 0
    return hours * 3600 + minutes * 60 + seconds


class SpyModes:
    """The mode each supervisor switched to by DTMF during a session (ChanSpy option d:
    4 listen, 5 whisper, 6 barge). Asterisk reports no event for the switch itself, so the
    dashboard's AMI link feeds this the DTMFEnd events of [hotline-spy] channels."""

    MAX: Final = 1000

    def __init__(self) -> None:
        self._modes: dict[str, str] = {}

    def on_dtmf(self, event: Mapping[str, str]) -> None:
        mode = DTMF_MODES.get(event.get("Digit", ""))
        channel = event.get("Channel", "")
        if (
            mode is None
            or event.get("Context") != SPY_CONTEXT
            or event.get("Direction", "").lower() != "received"
            or not channel.startswith("PJSIP/")
        ):
            return
        self._modes.pop(channel, None)
        self._modes[channel] = mode
        while len(self._modes) > self.MAX:
            self._modes.pop(next(iter(self._modes)))

    def current(self, live: Sequence[str]) -> dict[str, str]:
        """The switches of the spy channels still up (the others are forgotten)."""
        alive = set(live)
        for channel in [c for c in self._modes if c not in alive]:
            del self._modes[channel]
        return dict(self._modes)


class MonitoringMixin(ControlBase):
    async def monitor(self, call_id: int, mode: str, phone: str | None) -> Outcome:
        """Ring `phone` (the supervisor's roster login) and attach it to the operator's leg."""
        options = spy_options(mode)
        linkedid, tenant = await self._call(call_id, "monitor")
        try:
            if phone is None:
                raise ControlError(
                    "no_phone",
                    "your account has no phone: link it to a roster login"
                    " (hotline users add/link --operator LOGIN)",
                    409,
                )
            channels = await self._channels(linkedid)
            if not channels:
                raise ControlError("call_ended", f"call {call_id} has already ended", 409)
            operator_leg = next((c for c in channels if not c.is_caller_leg and c.bridged), None)
            if operator_leg is None or not operator_leg.name.startswith("PJSIP/"):
                raise ControlError(
                    "not_answered", f"call {call_id} is not with an operator yet", 409
                )
            if operator_leg.name.startswith(interface_of(phone) + "-"):
                raise ControlError("own_call", "that is your own call", 409)
            state = await self._action(
                {"Action": "Getvar", "Variable": f"DEVICE_STATE({interface_of(phone)})"},
                tolerate=True,
            )
            if state.get("Value", "UNAVAILABLE") in ("UNAVAILABLE", "INVALID", "UNKNOWN", ""):
                raise ControlError(
                    "phone_unavailable",
                    f"your phone ({phone}) is not registered"
                    f" (device state {state.get('Value') or state.get('Message') or '?'})",
                    409,
                )
            ring = self._settings.monitor_ring_seconds
            action: dict[str, Any] = {
                "Action": "Originate",
                "ActionID": f"hotline-monitor-{uuid.uuid4().hex}",
                "Channel": interface_of(phone),
                "Context": SPY_CONTEXT,
                "Exten": "spy",
                "Priority": "1",
                "Timeout": str(ring * 1000),
                "CallerID": f'"Monitor {mode}" <{call_id}>',
                "Variable": [
                    f"HOTLINE_SPY_CHANNEL={operator_leg.name}",
                    f"HOTLINE_SPY_OPTIONS={options}",
                    f"HOTLINE_SPY_BEEP={'1' if self._settings.monitor_beep else ''}",
                ],
            }
            originate = getattr(self._ami, "originate", None)
            if originate is None:
                raise ControlError("unsupported", "this AMI client cannot originate", 500)
            try:
                reply: Reply = await originate(action, ring + RESPONSE_SLACK)
            except AmiUnavailable as exc:
                raise ControlError("asterisk_unavailable", str(exc), 503) from exc
            if reply.get("Response", "").lower() != "success":
                raise ControlError(
                    "phone_not_answered", f"your phone ({phone}) did not answer", 409
                )
        except ControlError as exc:
            await self._in_thread(
                self._audit, "monitor", call_id=call_id, tenant=tenant, target=mode, error=exc
            )
            raise
        detail = f"{mode} on {operator_leg.name} from {phone}"
        await self._in_thread(
            self._audit, "monitor", call_id=call_id, tenant=tenant, target=mode, detail=detail
        )
        return Outcome(
            "monitor",
            call_id,
            True,
            detail,
            {"mode": mode, "phone": phone, "operator_channel": operator_leg.name},
        )

    async def monitors(self, modes: SpyModes | None = None) -> list[MonitorSession]:
        """Who is monitoring whom now (Asterisk's channels are the truth: a session that ended
        is gone), each with the call it is on, behind this session's tenant wall."""
        try:
            replies = await self._ami.send({"Action": "CoreShowChannels"}, many=True)
        except AmiUnavailable as exc:
            raise ControlError("asterisk_unavailable", f"Asterisk unreachable: {exc}", 503) from exc
        live = [e.get("Channel", "") for e in replies if e.get("Event") == "CoreShowChannel"]
        sessions = monitor_sessions(replies, modes.current(live) if modes else None)
        linkedids = {s.linkedid for s in sessions if s.linkedid}

        def read() -> dict[str, int]:
            if not linkedids:
                return {}
            with self._db.session() as session:
                rows = session.execute(
                    select(Call.linkedid, Call.id).where(Call.linkedid.in_(linkedids))
                )
                return {linkedid: call_id for linkedid, call_id in rows}

        calls = await asyncio.to_thread(read)
        # Another tenant's call (not behind this wall) is not shown at all.
        return [replace(s, call_id=calls[s.linkedid]) for s in sessions if s.linkedid in calls]
