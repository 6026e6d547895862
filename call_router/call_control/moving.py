"""Moving waiting callers (menu or queue) to another queue or one operator's phone, keeping a
priority, one move of a caller at a time (a claim row), recorded in the timeline."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from call_router import queue_log
from call_router.agents import login_of
from call_router.call_control.base import ControlBase, ControlError, Outcome
from call_router.call_event_kinds import EVENT_MOVED
from call_router.call_log import CallLog
from call_router.call_log_core import CallView
from call_router.control_models import ControlClaim
from call_router.models import Operator, utcnow
from call_router.settings import QUEUES

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


def move_priority(current: str | None) -> int:
    """The queue priority a moved caller keeps: at least 1, ahead of callers who have not
    waited yet (app_queue serves higher QUEUE_PRIO first). Pure."""
    try:
        value = int((current or "").strip() or 0)
    except ValueError:
        value = 0
    return min(max(value, 1), 999)


class MovingMixin(ControlBase):
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
                outcome = await self._move_claimed(call_id, linkedid, queue, operator, target)
        except ControlError as exc:
            await self._audit_move(call_id, tenant, queue, operator, error=exc)
            raise
        await self._audit_move(call_id, tenant, queue, operator, detail=outcome.detail)
        return outcome

    async def _audit_move(
        self,
        call_id: int,
        tenant: int | None,
        queue: str | None,
        operator: str | None,
        *,
        detail: str | None = None,
        error: ControlError | None = None,
    ) -> None:
        await self._in_thread(
            self._audit,
            "move",
            call_id=call_id,
            tenant=tenant,
            operator=operator,
            target=queue,
            detail=detail,
            error=error,
        )

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
        return Outcome("move", call_id, True, detail, data)


def answered_after_move(
    call_log: CallLog, event: Mapping[str, str], at: datetime | None
) -> CallView | None:
    """A caller moved to one operator's phone (`[hotline-move]`'s Dial) whom that operator
    answered (DialEnd ANSWER): the call is answered by them, as app_queue's AgentConnect makes
    a queue call, so it is not taken for an abandon (nor put on the callback list). Any other
    event: None. Runs in the call log's transaction (the router's batch)."""
    if (
        event.get("Event") != "DialEnd"
        or event.get("Context") != MOVE_CONTEXT
        or event.get("DialStatus") != "ANSWER"
    ):
        return None
    interface = event.get("DestChannel", "").rsplit("-", 1)[0]
    login = login_of(interface)
    if login is None:
        return None
    name = call_log.run(
        lambda session: session.scalar(select(Operator.name).where(Operator.sip_login == login))
    )
    return call_log.agent_connected(
        event.get("Linkedid", ""),
        queue=None,
        operator=name or login,
        key=f"connect:{event.get('DestUniqueid', '')}",
        at=at,
        interface=interface,
    )
