"""Route `hotline`: runs the `hotline` flow (ivr_flows/hotline.yaml) for one call.

The handler does what every flow needs: answer, note the call, pick the prompt language, then
hands the call to the flow engine. The flow decides the queue; the dialplan does the queueing.
A caller hang-up is recorded with the node they left from. If the flow is missing or the engine
fails, the caller is sent to the coordinator; if even that cannot be said to Asterisk,
HOTLINE_QUEUE stays unset and the dialplan's fail-safe does the same.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from agi_scripts.agi import AgiChannel, AgiError, CallerHangup, printable
from agi_scripts.database_guard import for_call
from agi_scripts.flows.engine import FlowEngine
from agi_scripts.flows.engine_core import FlowState, set_route, set_tenant, tenant_menu
from agi_scripts.flows.runtime import FlowRuntime
from call_router import channel_vars
from call_router.numbers import normalize_number
from call_router.routing import FALLBACK_QUEUE, pick_language
from call_router.tenant_routing import CENTRE_DECISION, TenantDecision

if TYPE_CHECKING:
    from agi_scripts.call_context import CallContext
    from agi_scripts.flows.services import FlowServices

FLOW = "hotline"
# Before the greeting: the longest a caller waits for their remembered language.
READ_TIMEOUT = 1.0
_LINKEDID = re.compile(r"[^A-Za-z0-9._-]")

T = TypeVar("T")


async def hotline(agi: AgiChannel, ctx: CallContext) -> None:
    await run_flow(agi, ctx, FLOW)


async def run_flow(agi: AgiChannel, ctx: CallContext, flow_name: str) -> None:
    state = FlowState(node="answer")
    await agi.answer()
    # From the dialplan's AGI arguments (channel_vars.ARG_*), else asked for.
    given = ctx.env.get(channel_vars.ARG_LINKEDID)
    linkedid = _clean_linkedid(
        given or await agi.get_variable("CHANNEL(linkedid)")
    ) or _clean_linkedid(ctx.env.uniqueid)
    if not linkedid:
        raise AgiError("call has neither linkedid nor uniqueid")
    ctx.linkedid = linkedid
    ctx.log = ctx.log.bind(linkedid=linkedid, flow=flow_name)

    # Queued, not awaited: the menu goes on while the writer stores it (call_writer.py).
    ctx.writer.submit(
        "ensure_call",
        linkedid,
        caller_number=ctx.env.caller_number,
        # Parsed once per call, here: the menu's lookups find it in normalize_number's cache
        # and the writer stores it as it is.
        caller_key=normalize_number(ctx.env.caller_number, ctx.settings.country_code),
        caller_name=ctx.env.caller_name,
        channel=printable(ctx.env.channel, 128) or None,
        dialed_number=printable(ctx.env.dialed_number or "", 32) or None,
    )
    try:
        # agi_language is the channel's language as the AGI started (the dialplan sets it
        # just before): no need to ask for it again.
        channel_language = ctx.env.language or await agi.get_variable("CHANNEL(language)") or ""
        language = pick_language(channel_language, ctx.settings.default_language)
        root = await _recordings_root(agi, ctx)
        services = ctx.flows
        remembered = await _remembered_language(ctx)
        if remembered:
            language = remembered
        # Asterisk's own numbers and times (SAY DIGITS/DATETIME) follow the channel language
        # (one round trip fewer when it already is the one).
        if language != channel_language:
            await agi.set_language(language)
        flow = services.registry.get(flow_name) if services is not None else None
        if services is None or flow is None:
            ctx.log.error("flow_missing", hint="run `hotline flows check`")
            await _to_coordinator(agi, ctx, state, language, reason="flow_missing")
            return
        runtime = _runtime(ctx, services, language, root.rstrip("/"))
        tenant = await _tenant_decision(ctx)
        if tenant.source not in ("centre", "ask"):
            await set_tenant(agi, ctx, runtime.tenants, tenant)
        menu = tenant_menu(runtime, tenant)
        if menu is not None and flow_name in menu.flows:
            flow = menu.flows[flow_name]  # the tenant's own version of this menu
        engine = FlowEngine(
            agi,
            ctx,
            flow_name,
            flow,
            runtime,
            variables={"caller_known": _known(ctx)},
            tenant=tenant,
        )
        state = engine.state
        try:
            await engine.run()
        except (CallerHangup, asyncio.CancelledError):
            raise
        except Exception as exc:
            if agi.desynchronised or agi.hung_up:
                raise  # nothing more can be said to Asterisk: the dialplan fail-safe decides
            ctx.log.exception("flow_failed", node=state.node)
            ctx.writer.submit(
                "record_event",
                linkedid,
                kind="flow_error",
                key="flow_error",
                data={"flow": flow_name, "node": state.node, "error": printable(repr(exc), 200)},
            )
            if state.result != "routed":
                await _to_coordinator(agi, ctx, state, language, reason="flow_error")
    except CallerHangup as hangup:
        if state.result == "transferred":
            # The call ended after it was handed over (gas emergency): not an abandonment.
            ctx.log.info("hangup_after_transfer", node=state.node)
            return
        # The reason says what told us (HANGUP line, 511, -1 on a dead channel, socket closed).
        ctx.log.info(
            "hangup_in_menu", node=state.node, menu_plays=state.menu_plays, reason=str(hangup)
        )
        ctx.writer.submit(
            "record_event",
            linkedid,
            kind="hangup_in_menu",
            key="hangup_in_menu",
            data={
                "flow": flow_name,
                "node": state.node,
                "menu_plays": state.menu_plays,
                "reason": str(hangup),
                "summary": f"abandoned in menu at node {state.node}",
            },
        )


# Languages x recordings folders kept (the folder comes from the dialplan: a handful).
_MAX_RUNTIMES = 64


def _runtime(ctx: CallContext, services: FlowServices, language: str, base: str) -> FlowRuntime:
    """What the flow engine needs besides the call: the same for every call in one language
    until the flows (their calendar) are reloaded, so it is built once, not per call."""
    settings = ctx.settings
    registry = services.registry
    made_of = (
        registry.current,  # replaced on every (re)load
        services.clock,
        services.speech,
        services.lookups,
        services.actions,
        services.numbers,
        services.tenants,
        services.requests,
        services.areas,
        settings.menu_timeout,
        settings.menu_retries,
        settings.timezone,
    )
    cached = services.runtimes.get((language, base))
    if cached is not None and _same(cached[0], made_of):
        runtime: FlowRuntime = cached[1]
        return runtime
    runtime = FlowRuntime(
        language=language,
        recordings_base=base,
        calendar=registry.calendar,
        clock=services.clock,
        menu_timeout=settings.menu_timeout,
        menu_retries=settings.menu_retries,
        speech=services.speech,
        lookups=services.lookups,
        actions=services.actions,
        flows=registry.get,
        numbers=services.numbers,
        timezone=_zone_name(registry.calendar.tz) or settings.timezone,
        tenants=services.tenants,
        requests=services.requests,
        tenant_menus=registry.tenant,
        areas=services.areas,
        address_speech=services.address_speech,
        database=services.database,
    )
    if len(services.runtimes) >= _MAX_RUNTIMES:
        services.runtimes.clear()
    services.runtimes[(language, base)] = (made_of, runtime)
    return runtime


def _same(before: tuple[object, ...], now: tuple[object, ...]) -> bool:
    return all(a is b or a == b for a, b in zip(before, now, strict=True))


async def _to_coordinator(
    agi: AgiChannel, ctx: CallContext, state: FlowState, language: str, reason: str
) -> None:
    """The fail-safe in Python: a coordinator helps the caller the flow could not."""
    if ctx.linkedid:
        ctx.writer.submit(
            "record_menu_result",
            ctx.linkedid,
            choice=state.choice or None,
            intent=None,
            queue=FALLBACK_QUEUE,
            language=language,
        )
    ctx.log.info("menu_decision", queue=FALLBACK_QUEUE, reason=reason)
    await set_route(agi, ctx, queue=FALLBACK_QUEUE, intent=None, choice=state.choice)
    state.result, state.queue = "routed", FALLBACK_QUEUE


async def _remembered_language(ctx: CallContext) -> str | None:
    """The language this number chose on an earlier call (the flow's `set language`)."""
    lookups = ctx.flows.lookups if ctx.flows is not None else None
    number = ctx.env.caller_number
    if lookups is None or not number:
        return None
    fresh, found = lookups.language_if_fresh(number)  # from memory: no thread, no database
    if not fresh:
        found = await _read(ctx, "caller_language", lookups.caller_language, number)
    return pick_language(found, "") or None if found else None


async def _tenant_decision(ctx: CallContext) -> TenantDecision:
    """Which company the call is for, before the menu (call_router/tenant_routing.py): from
    memory for most calls; a centre number's caller is looked up, bounded. A failed read
    leaves the company unknown (the flow's `company` node then sends them to a coordinator
    if it cannot ask)."""
    directory = ctx.flows.tenants if ctx.flows is not None else None
    if directory is None:
        return CENTRE_DECISION
    dialled = ctx.env.dialed_number
    found = directory.decide_if_fresh(dialled)
    if found is None:
        found = await _read(
            ctx, "tenant_decision", directory.decide, dialled, ctx.env.caller_number
        )
    return found if found is not None else CENTRE_DECISION


def _zone_name(tz: object) -> str | None:
    """The IANA name Asterisk needs to speak a time (ZoneInfo has it; a fixed offset not)."""
    name = getattr(tz, "key", None)
    return name if isinstance(name, str) else None


def _known(ctx: CallContext) -> str:
    return "yes" if ctx.env.caller_number else "no"


async def _recordings_root(agi: AgiChannel, ctx: CallContext) -> str:
    root = ctx.env.get(channel_vars.ARG_RECORDINGS) or await agi.get_variable(
        channel_vars.RECORDINGS
    )
    # The global comes from our own config, but a broken one must not break the command line.
    if root and printable(root, 1024) == root and '"' not in root:
        return root
    ctx.log.warning("recordings_global_missing", value=printable(root or "", 80))
    return str(ctx.settings.recordings_dir)


async def _read(ctx: CallContext, what: str, read: Callable[..., T], *args: Any) -> T | None:
    """A database read off the event loop; unknown (None) when the database fails, is slow
    or away (agi_scripts/database_guard.py): the caller is not kept waiting for it."""
    return await for_call(ctx).read(ctx.log, what, read, *args, timeout=READ_TIMEOUT)


def _clean_linkedid(value: str | None) -> str:
    return _LINKEDID.sub("", value or "")[:64]
