"""What every call-control action shares: its error and result, the call read behind the tenant
wall, its live channels, one AMI action through the one link handed in, the audit row."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from call_router.ami_client import AmiActionFailed, AmiSender, AmiUnavailable, Reply
from call_router.call_control.audit import write_audit
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.models import Call
from call_router.settings import Settings


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


class ControlBase:
    """The state and helpers of `CallControl`'s parts (ending, moving, monitoring). `by` is who
    acts (dashboard.deps.Actor.by, `cli:<user>`)."""

    def __init__(self, settings: Settings, db: Database, ami: AmiSender, *, by: str) -> None:
        self._settings = settings
        self._db = db
        self._ami = ami
        self._by = by[:80]
        self._log = CallLog(db, country=settings.country_code)

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
        write_audit(
            self._db,
            self._by,
            action,
            call_id=call_id,
            tenant=tenant,
            operator=operator,
            target=target,
            result=result,
            detail=detail,
        )
