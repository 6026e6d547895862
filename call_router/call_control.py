"""Supervisors' call control: end a stuck call, move waiting callers, listen/whisper/barge.

Every action goes through one `AmiSender` handed in by the caller (the dashboard's long-lived
`AmiLink`, the CLI's one-shot client) and leaves one audit row (`control_actions`, behind the
tenant wall) whatever happened: who, when, what, on which call or operator, the result.

What Asterisk does:
- **hang up**: every live channel of the call (same linkedid) gets `Hangup`; a row left open
  with no channel any more (a stuck row after a fault) is closed here. Either way the timeline
  says `ended_by_supervisor` with who, and the call's `hangup_by` is `supervisor`.
- **move**: the caller's channel, still waiting (menu or queue, not with an operator), gets
  `HOTLINE_PRIORITY` raised to at least 1 (ahead of callers who have not waited, as the
  overflow does) and a `Redirect` to `[hotline-queues]` (a queue) or `[hotline-move]` (an
  operator's phone, then back to the caller's queue if nobody answers). A Redirect either
  happens or not: the caller is never between queues.
- **monitor**: the supervisor's own phone (their account's linked roster login) is rung by an
  Async Originate into `[hotline-spy]`, which runs ChanSpy on the operator's channel with `q`
  (no name/beep to the supervisor), `d` (DTMF 4 listen, 5 whisper, 6 barge during the same
  session), `E`/`S` (end with the spied call) and `w` (whisper) or `B` (barge).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import structlog
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from call_router import queue_log
from call_router.agents import interface_of, login_of
from call_router.ami_client import AmiActionFailed, AmiSender, AmiUnavailable, Reply
from call_router.call_event_kinds import EVENT_ENDED_BY_SUPERVISOR, EVENT_MOVED
from call_router.call_log import CallLog
from call_router.control_models import ControlAction, ControlClaim
from call_router.db import Database
from call_router.models import Call, CallEvent, Operator, utcnow
from call_router.outcomes import BY_SUPERVISOR, DROPPED
from call_router.settings import QUEUES, Settings

log = structlog.get_logger(__name__)

MonitorMode = Literal["listen", "whisper", "barge"]
MONITOR_MODES: Final = ("listen", "whisper", "barge")
SPY_CONTEXT: Final = "hotline-spy"
MOVE_CONTEXT: Final = "hotline-move"
QUEUE_CONTEXT: Final = "hotline-queues"
# Applications a caller runs while still waiting for an operator (menu or queue).
WAITING_APPS: Final = frozenset(
    {"queue", "agi", "read", "playback", "background", "wait", "waitexten", "answer"}
)
# Most callers moved at once in one request ("everyone waiting in heating").
MAX_MOVE: Final = 200
_LOGIN_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# A move's claim on its call older than this was left by a crash: taken over.
CLAIM_STALE: Final = timedelta(seconds=60)
# Seconds beyond the supervisor's ring time to wait for Asterisk's OriginateResponse.
RESPONSE_SLACK: Final = 10.0


class ControlError(Exception):
    """An action refused or failed; `code` is stable, `message` safe to show, `status` the
    HTTP status the dashboard answers with."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class LiveChannel:
    name: str
    uniqueid: str
    linkedid: str
    application: str
    context: str
    bridged: bool

    @classmethod
    def of(cls, event: Mapping[str, str]) -> LiveChannel:
        return cls(
            name=event.get("Channel", ""),
            uniqueid=event.get("Uniqueid", ""),
            linkedid=event.get("Linkedid", ""),
            application=event.get("Application", ""),
            context=event.get("Context", ""),
            bridged=bool(event.get("BridgeId", "").strip()),
        )

    @property
    def is_caller_leg(self) -> bool:
        """The leg that started the call (its uniqueid is the call's linkedid)."""
        return self.uniqueid == self.linkedid


@dataclass(frozen=True)
class Outcome:
    """What an action did, for the API and the CLI."""

    action: str
    call_id: int | None
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def channels_of(replies: Sequence[Mapping[str, str]], linkedid: str) -> list[LiveChannel]:
    """The live channels of one call, from a CoreShowChannels reply. Pure."""
    return [
        LiveChannel.of(event)
        for event in replies
        if event.get("Event") == "CoreShowChannel" and event.get("Linkedid") == linkedid
    ]


def move_priority(current: str | None) -> int:
    """The queue priority a moved caller keeps: at least 1, ahead of callers who have not
    waited yet (app_queue serves higher QUEUE_PRIO first). Pure."""
    try:
        value = int((current or "").strip() or 0)
    except ValueError:
        value = 0
    return min(max(value, 1), 999)


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


class CallControl:
    """The actions, each audited. `by` is who acts (dashboard.deps.Actor.by, `cli:<user>`)."""

    def __init__(self, settings: Settings, db: Database, ami: AmiSender, *, by: str) -> None:
        self._settings = settings
        self._db = db
        self._ami = ami
        self._by = by[:80]
        self._log = CallLog(db, country=settings.country_code)

    # --- hang up ------------------------------------------------------------------------

    async def hangup(self, call_id: int) -> Outcome:
        call = await self._call(call_id, "hangup")
        linkedid, tenant = call
        try:
            channels = await self._channels(linkedid)
            row_open = await asyncio.to_thread(self._row_open, call_id)
            if not channels and not row_open:
                raise ControlError("call_ended", f"call {call_id} has already ended", 409)
            # Marked before the Hangup: the router settles the call (who hung up) as soon as
            # Asterisk reports the hang-up, and must find the mark there already.
            await self._in_thread(
                self._log.record_event,
                linkedid,
                EVENT_ENDED_BY_SUPERVISOR,
                key=EVENT_ENDED_BY_SUPERVISOR,
                data={"by": self._by, "channels": [c.name for c in channels]},
            )
            hung = []
            for channel in channels:
                reply = await self._action(
                    {"Action": "Hangup", "Channel": channel.name, "Cause": "16"}, tolerate=True
                )
                if reply.get("Response", "").lower() == "success":
                    hung.append(channel.name)
            if channels and not hung:
                # Every channel went away between the list and the Hangup: it just ended,
                # not by us.
                await self._in_thread(self._unmark, call_id)
                raise ControlError("call_ended", f"call {call_id} has already ended", 409)
            if not channels:
                # A stuck row: no channel left in Asterisk, nothing will ever end it but us.
                await self._in_thread(
                    self._log.call_ended, linkedid, cause="ended_by_supervisor", known_end=True
                )
            await self._in_thread(self._settle_hangup_by, call_id)
        except ControlError as exc:
            await self._in_thread(self._audit, "hangup", call_id=call_id, tenant=tenant, error=exc)
            raise
        detail = f"hung up {len(hung)} channel(s)" if hung else "closed the stuck call row"
        await self._in_thread(self._audit, "hangup", call_id=call_id, tenant=tenant, detail=detail)
        return Outcome("hangup", call_id, True, detail, {"channels": hung})

    # --- move ---------------------------------------------------------------------------

    async def move(
        self, call_ids: Sequence[int], *, queue: str | None = None, operator: str | None = None
    ) -> list[Outcome]:
        """Move each waiting caller; one Outcome per call (a refusal for one does not stop the
        others). An unknown target refuses the whole request before any caller is touched."""
        if (queue is None) == (operator is None):
            raise ControlError("bad_target", "give exactly one of `queue` or `operator`", 422)
        if not call_ids or len(call_ids) > MAX_MOVE:
            raise ControlError("bad_calls", f"give 1 to {MAX_MOVE} calls", 422)
        target = await asyncio.to_thread(self._check_target, queue, operator)
        outcomes = []
        for call_id in dict.fromkeys(call_ids):
            try:
                outcomes.append(await self._move_one(call_id, queue, operator, target))
            except ControlError as exc:
                outcomes.append(Outcome("move", call_id, False, exc.message, {"code": exc.code}))
        return outcomes

    def _check_target(self, queue: str | None, operator: str | None) -> str:
        if queue is not None:
            if queue not in QUEUES:
                self._audit("move", target=queue[:64], error=ControlError("unknown_queue", "", 404))
                raise ControlError(
                    "unknown_queue", f"no queue {queue!r}; queues: {', '.join(QUEUES)}", 404
                )
            return queue
        assert operator is not None
        with self._db.session() as session:
            known = _LOGIN_RE.match(operator) and session.scalar(
                select(Operator.id).where(
                    Operator.sip_login == operator, Operator.enabled.is_(True)
                )
            )
        if not known:
            self._audit(
                "move", operator=operator[:64], error=ControlError("unknown_operator", "", 404)
            )
            raise ControlError("unknown_operator", f"no enabled operator {operator!r}", 404)
        return operator

    async def _move_one(
        self, call_id: int, queue: str | None, operator: str | None, target: str
    ) -> Outcome:
        linkedid, tenant = await self._call(call_id, "move")
        try:
            async with self._claimed(call_id):
                return await self._move_claimed(call_id, linkedid, tenant, queue, operator, target)
        except ControlError as exc:
            await self._in_thread(
                self._audit,
                "move",
                call_id=call_id,
                tenant=tenant,
                operator=operator,
                target=queue,
                error=exc,
            )
            raise

    @contextlib.asynccontextmanager
    async def _claimed(self, call_id: int) -> AsyncIterator[None]:
        """One move of a caller at a time, whichever process or supervisor asks: a claim row
        on the call (`control_claims`, its primary key) while the move runs. A second
        supervisor moving the same caller meanwhile gets a clear 409 and touches nothing."""
        token = uuid.uuid4().hex
        if not await asyncio.to_thread(self._claim, call_id, token):
            raise ControlError(
                "busy",
                f"call {call_id} is being moved by another supervisor right now;"
                " look at it again in a moment",
                409,
            )
        try:
            yield
        finally:
            await asyncio.to_thread(self._unclaim, call_id, token)

    def _claim(self, call_id: int, token: str) -> bool:
        now = utcnow()
        with self._db.session() as session:
            # A claim left by a crashed process is stale after CLAIM_STALE: taken over.
            session.execute(
                delete(ControlClaim).where(
                    ControlClaim.call_id == call_id, ControlClaim.at < now - CLAIM_STALE
                )
            )
        try:
            with self._db.session() as session:
                session.add(ControlClaim(call_id=call_id, token=token, by=self._by, at=now))
        except IntegrityError:
            return False
        return True

    def _unclaim(self, call_id: int, token: str) -> None:
        with self._db.session() as session:
            session.execute(
                delete(ControlClaim).where(
                    ControlClaim.call_id == call_id, ControlClaim.token == token
                )
            )

    async def _move_claimed(
        self,
        call_id: int,
        linkedid: str,
        tenant: int | None,
        queue: str | None,
        operator: str | None,
        target: str,
    ) -> Outcome:
        channels = await self._channels(linkedid)
        caller = next((c for c in channels if c.is_caller_leg), None)
        if caller is None:
            raise ControlError("call_ended", f"call {call_id} has already ended", 409)
        if caller.bridged or caller.application.lower() not in WAITING_APPS:
            raise ControlError(
                "not_waiting",
                f"call {call_id} is not waiting in a menu or queue"
                f" ({caller.application or 'no application'})",
                409,
            )
        current = await self._action(
            {"Action": "Getvar", "Channel": caller.name, "Variable": "HOTLINE_PRIORITY"},
            tolerate=True,
        )
        priority = move_priority(current.get("Value"))
        from_queue = await self._action(
            {"Action": "Getvar", "Channel": caller.name, "Variable": "HOTLINE_QUEUE"},
            tolerate=True,
        )
        await self._action(
            {
                "Action": "Setvar",
                "Channel": caller.name,
                "Variable": "HOTLINE_PRIORITY",
                "Value": str(priority),
            }
        )
        redirect = {
            "Action": "Redirect",
            "Channel": caller.name,
            "Context": QUEUE_CONTEXT if queue is not None else MOVE_CONTEXT,
            "Exten": target,
            "Priority": "1",
        }
        # The timeline's time is when the move was asked: the new queue's events (an
        # operator answering at once) come after it.
        asked_at = utcnow()
        reply = await self._action(redirect, tolerate=True)
        if reply.get("Response", "").lower() != "success":
            # Nothing moved: the caller is still where they were (or has just hung up).
            raise ControlError(
                "call_ended" if "no such" in reply.get("Message", "").lower() else "refused",
                f"call {call_id} was not moved: {reply.get('Message', 'refused')}",
                409,
            )
        # The queue_log feed (call_router/queue_log.py): why the caller left the queue.
        await self._action(
            queue_log.moved_action(from_queue.get("Value") or None, linkedid, target),
            tolerate=True,
        )
        data = {
            "by": self._by,
            "from_queue": from_queue.get("Value") or None,
            "to_queue": queue,
            "to_operator": operator,
            "priority": priority,
        }
        await self._in_thread(
            self._log.record_event,
            linkedid,
            EVENT_MOVED,
            key=f"moved:{uuid.uuid4().hex}",
            at=asked_at,
            data=data,
        )
        detail = f"moved to {'queue' if queue else 'operator'} {target} (priority {priority})"
        await self._in_thread(
            self._audit,
            "move",
            call_id=call_id,
            tenant=tenant,
            operator=operator,
            target=queue,
            detail=detail,
        )
        return Outcome("move", call_id, True, detail, data)

    # --- monitor ------------------------------------------------------------------------

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

    # --- agents (the pause/unpause/logout themselves are call_router/agents.py) -------------

    def audit_agent(
        self, action: str, login: str, *, target: str | None, error: str | None
    ) -> None:
        """The audit row of a supervisor's pause/unpause/logout of an operator."""
        with self._db.session() as session:
            tenant = session.scalar(select(Operator.tenant_id).where(Operator.sip_login == login))
        self._write_audit(
            action,
            call_id=None,
            tenant=tenant,
            operator=login[:64],
            target=(target or None) and str(target)[:64],
            result="ok" if error is None else "refused",
            detail=error,
        )

    # --- internals ----------------------------------------------------------------------

    @staticmethod
    async def _in_thread(work: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """A database write off the event loop (the thread copies the tenant wall's context)."""
        await asyncio.to_thread(work, *args, **kwargs)

    async def _call(self, call_id: int, action: str) -> tuple[str, int | None]:
        """(linkedid, tenant) of a call this session may see (the tenant wall), else 404."""

        def read() -> tuple[str, int | None] | None:
            with self._db.session() as session:
                call = session.get(Call, call_id)
                return (call.linkedid, call.tenant_id) if call is not None else None

        found = await asyncio.to_thread(read)
        if found is None:
            raise ControlError("not_found", f"no call {call_id}", 404)
        return found

    def _unmark(self, call_id: int) -> None:
        with self._db.session() as session:
            session.execute(
                delete(CallEvent).where(
                    CallEvent.call_id == call_id, CallEvent.key == EVENT_ENDED_BY_SUPERVISOR
                )
            )

    def _settle_hangup_by(self, call_id: int) -> None:
        """A call the router settled before it saw our mark still says who ended it."""
        with self._db.session() as session:
            call = session.get(Call, call_id)
            if call is not None and call.ended_at is not None and call.outcome != DROPPED:
                call.hangup_by = BY_SUPERVISOR

    def _row_open(self, call_id: int) -> bool:
        with self._db.session() as session:
            return session.scalar(select(Call.ended_at).where(Call.id == call_id)) is None

    async def _channels(self, linkedid: str) -> list[LiveChannel]:
        try:
            replies = await self._ami.send({"Action": "CoreShowChannels"}, many=True)
        except AmiUnavailable as exc:
            raise ControlError("asterisk_unavailable", f"Asterisk unreachable: {exc}", 503) from exc
        return channels_of(replies, linkedid)

    async def _action(self, fields: Mapping[str, str], *, tolerate: bool = False) -> Reply:
        try:
            replies = await self._ami.send(fields)
        except AmiUnavailable as exc:
            raise ControlError("asterisk_unavailable", f"Asterisk unreachable: {exc}", 503) from exc
        reply = replies[0] if replies else {}
        if not tolerate and reply.get("Response", "").lower() != "success":
            error = AmiActionFailed(fields.get("Action", "?"), reply.get("Message", "error"))
            raise ControlError("asterisk_refused", f"Asterisk refused {error}", 502)
        return reply

    def _audit(
        self,
        action: str,
        *,
        call_id: int | None = None,
        tenant: int | None = None,
        operator: str | None = None,
        target: str | None = None,
        detail: str | None = None,
        error: ControlError | None = None,
    ) -> None:
        result = "ok"
        if error is not None:
            result = "failed" if error.status >= 500 else "refused"
            detail = f"{error.code}: {error.message}" if error.message else error.code
        self._write_audit(
            action,
            call_id=call_id,
            tenant=tenant,
            operator=operator,
            target=target,
            result=result,
            detail=detail,
        )

    def _write_audit(
        self,
        action: str,
        *,
        call_id: int | None,
        tenant: int | None,
        operator: str | None,
        target: str | None,
        result: str,
        detail: str | None,
    ) -> None:
        row = ControlAction(
            at=utcnow(),
            by=self._by,
            action=action,
            call_id=call_id,
            operator=operator,
            target=target,
            result=result,
            detail=(detail or None) and detail[:255],
            tenant_id=tenant,
        )
        with self._db.session() as session:
            session.add(row)
        log.info(
            "call_control",
            action=action,
            by=self._by,
            call_id=call_id,
            operator=operator,
            target=target,
            result=result,
        )


def audit_rows(
    session: Session, *, limit: int = 200, before: datetime | None = None
) -> list[ControlAction]:
    """The newest audit rows this session may see (behind its tenant wall)."""
    statement = select(ControlAction).order_by(ControlAction.id.desc()).limit(limit)
    if before is not None:
        statement = statement.where(ControlAction.at < before)
    return list(session.scalars(statement))
