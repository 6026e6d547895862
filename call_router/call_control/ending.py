"""Ending a call from the dashboard or the CLI: every live channel hung up, or a row stuck after a
fault closed; the call log says a supervisor ended it, and who."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, select

from call_router.call_control.base import ControlBase, ControlError, Outcome
from call_router.call_event_kinds import EVENT_ENDED_BY_SUPERVISOR
from call_router.models import Call, CallEvent
from call_router.outcomes import BY_SUPERVISOR, DROPPED


class EndingMixin(ControlBase):
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
