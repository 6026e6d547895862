"""A call's place in its flow and what every node uses: its state, timeline events, lookups."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from agi_scripts.agi import AgiChannel
from agi_scripts.flows.runtime import ActiveIncident, FlowLookups, FlowRuntime, TenantLookups
from agi_scripts.flows.step_records import StepRecords
from call_router import channel_vars
from call_router.flows.schema import Flow
from call_router.flows.tenant_menus import TenantMenu
from call_router.tenant_routing import CENTRE_DECISION, TenantDecision

if TYPE_CHECKING:
    from agi_scripts.call_context import CallContext

# How long database work that needs the call's row waits for the call-log writer.
CALL_ROW_WAIT = 3.0
# The longest a caller waits in silence for a database lookup or action; then the flow goes
# on as if it failed (an unknown fact is false, an action takes its on_error path).
LOOKUP_TIMEOUT = 5.0

T = TypeVar("T")


@dataclass
class FlowState:
    """Where the caller is, for the hang-up record and the call log."""

    node: str
    menu_plays: int = 0
    steps: int = 0
    # The last keypad input in a menu (cleaned), kept for the call log even on failure.
    choice: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    result: str | None = None  # "routed", "hangup", "voicemail"
    queue: str | None = None


class EngineCore:
    """The engine's state for one call and the helpers every node family uses."""

    def __init__(
        self,
        agi: AgiChannel,
        ctx: CallContext,
        name: str,
        flow: Flow,
        runtime: FlowRuntime,
        variables: dict[str, str] | None = None,
        tenant: TenantDecision = CENTRE_DECISION,
    ) -> None:
        self.agi = agi
        self.ctx = ctx
        self.name = name
        self.flow = flow
        self.rt = runtime
        self.state = FlowState(node=flow.start, variables=dict(variables or {}))
        # The prompt language; a `set` of the `language` variable switches it mid-call.
        self.language = runtime.language
        self.state.variables["language"] = runtime.language
        # A key pressed during a play node, handed to the menu it names.
        self._pending: dict[str, str] = {}
        self._speech_off = runtime.speech is None
        self._seq = 0  # makes each timeline event's key unique within the call
        # The steps not yet handed to the writer: before each command that may wait for the
        # caller, and when the flow ends, they go as one row.
        self._steps = StepRecords()
        agi.before_wait = self._hand_over_steps
        # The company the call is for, as decided before the flow (hotline.py) or by a
        # `company` node; `ask` until the caller has told us.
        self.tenant = tenant
        # Its own calendar, prompts and flows, where it has them (else the centre's).
        self.menu = tenant_menu(runtime, tenant)
        # The house code of the building the caller named in words (asked once per call).
        self._spoken_code: str | None = None
        self._address_asked = False

    async def _incidents(
        self, lookups: FlowLookups, area: str | None = None
    ) -> list[ActiveIncident] | None:
        area = area or self.state.variables.get("area")
        cached = lookups.incidents_if_fresh(area)
        if cached is not None:
            return cached  # no thread, no database: read at most every few seconds
        return await self._lookup(lookups.active_incidents, area)

    async def _lookup(self, fn: Callable[..., T], *args: Any) -> T | None:
        """A read, bounded: a slow database must not leave the caller in silence; an unknown
        fact counts as false, so the caller still gets the ordinary path; not even tried
        while the database is away (database_guard.py)."""
        what = getattr(fn, "__name__", "?")
        return await self.rt.database.read(self.ctx.log, what, fn, *args, timeout=LOOKUP_TIMEOUT)

    async def _act(self, fn: Callable[..., T], *args: Any) -> T | None:
        """An action (it writes), bounded, always tried: None when it fails or is too slow."""
        what = getattr(fn, "__name__", "?")
        return await self.rt.database.act(self.ctx.log, what, fn, *args, timeout=LOOKUP_TIMEOUT)

    async def _switch_language(self, language: str) -> None:
        """Prompts in `language` from now on, and for this number's next calls too."""
        self.language = language
        # Asterisk's own numbers, digits and times (SAY DIGITS) follow the channel language.
        await self.agi.set_language(language)
        number = self.ctx.env.caller_number
        if self.rt.lookups is not None and number:
            await self._act(self.rt.lookups.remember_language, number, language)

    async def _event(self, kind: str, data: dict[str, Any]) -> None:
        """A timeline entry, queued for the call-log writer (never awaited)."""
        if not self.ctx.linkedid:
            return
        self._seq += 1
        self.ctx.writer.submit(
            "record_event", self.ctx.linkedid, kind=kind, key=f"flow:{self._seq}:{kind}", data=data
        )

    def _record_step(self, data: dict[str, Any]) -> None:
        """A node visited: held until the next wait for the caller (step_records.py)."""
        if not self.ctx.linkedid:
            return
        self._seq += 1
        self._steps.add(data, self._seq)

    def _hand_over_steps(self) -> None:
        """The steps held so far, to the call-log writer as one row."""
        record = self._steps.take()
        if record is not None and self.ctx.linkedid:
            self.ctx.writer.submit("record_event", self.ctx.linkedid, **record)

    async def _call_row_written(self) -> None:
        """Before database work that needs this call's row (a callback, a meter reading): let
        the writer catch up, for a bounded time (it normally is milliseconds behind)."""
        if self.ctx.writer.database_ok:  # else it cannot catch up now: do not wait for it
            await self.ctx.writer.idle(timeout=CALL_ROW_WAIT)


def tenant_menu(runtime: FlowRuntime, decision: TenantDecision) -> TenantMenu | None:
    """The decided tenant's own menus, from memory; None: the centre's serve the call."""
    if runtime.tenants is None or runtime.tenant_menus is None or decision.tenant_id is None:
        return None
    return runtime.tenant_menus(runtime.tenants.slug(decision.tenant_id))


async def set_tenant(
    agi: AgiChannel,
    ctx: CallContext,
    tenants: TenantLookups | None,
    decision: TenantDecision,
) -> None:
    """HOTLINE_TENANT & co. on the channel, then the decision queued for the call log."""
    slug = tenants.slug(decision.tenant_id) if tenants is not None else ""
    building = str(decision.building_id) if decision.building_id is not None else ""
    await agi.set_variables(
        [
            (channel_vars.TENANT, slug),
            (channel_vars.TENANT_SOURCE, decision.source),
            (channel_vars.BUILDING, building),
        ]
    )
    if ctx.linkedid:
        ctx.writer.submit(
            "record_tenant",
            ctx.linkedid,
            tenant_id=decision.tenant_id,
            source=decision.source,
            building_id=decision.building_id,
        )


async def set_route(
    agi: AgiChannel,
    ctx: CallContext,
    *,
    queue: str,
    intent: str | None,
    choice: str | None,
    priority: int | None = None,
) -> None:
    """What the dialplan needs to put the caller through, in one round trip where it can.

    HOTLINE_CALL_ID only if the call row is written by now (it normally is, milliseconds after
    the arrival; never waited for). HOTLINE_QUEUE last: the dialplan takes a set queue as
    "the menu finished"."""
    pairs = []
    call_id = ctx.writer.call_id(ctx.linkedid) if ctx.linkedid else None
    if call_id is not None:
        pairs.append((channel_vars.CALL_ID, str(call_id)))
    pairs += [(channel_vars.INTENT, intent or ""), (channel_vars.MENU_CHOICE, choice or "")]
    if priority is not None:
        pairs.append((channel_vars.PRIORITY, str(priority)))
    pairs.append((channel_vars.QUEUE, queue))
    await agi.set_variables(pairs)
