"""Runs one flow for one call, node by node, over the AGI channel.

Every node visit is a call-timeline event (`flow_step`), so the dashboard can show where a
caller went and where they left. A caller hang-up raises CallerHangup out of `run`; the
handler records where it happened (`state.node`). Anything else that goes wrong raises too,
and the handler sends the caller to the coordinator: a broken flow never drops a caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from agi_scripts.agi import (
    AgiChannel,
    AgiError,
    CallerHangup,
    digit_from_code,
    printable,
    quote_argument,
)
from agi_scripts.flows.runtime import (
    ANY_AREA,
    ActionCall,
    ActionResult,
    ActiveIncident,
    FlowLookups,
    FlowRuntime,
    TenantLookups,
)
from agi_scripts.voicemail import Trimmed, trim_voicemail
from call_router import channel_vars
from call_router.flows.conditions import CallFacts, evaluate, luhn_ok
from call_router.flows.schema import (
    ACTION_OUTCOMES,
    REPEAT_KEY,
    ActionNode,
    AreaNode,
    AskNode,
    CollectNode,
    CompanyNode,
    ConditionNode,
    Flow,
    FlowJumpNode,
    GotoNode,
    HangupNode,
    IncidentNode,
    MenuNode,
    Node,
    PlayNode,
    RequestsNode,
    RouteNode,
    SayNode,
    SetNode,
    TransferNode,
    VoicemailNode,
)
from call_router.flows.tenant_menus import TenantMenu, tenant_prompt_path
from call_router.tenant_routing import (
    CENTRE_DECISION,
    UNKNOWN_DECISION,
    Source,
    TenantDecision,
    clean_house_code,
)

if TYPE_CHECKING:
    from agi_scripts.call_context import CallContext

# A flow that visits this many nodes in one call is looping (validation should have caught it).
MAX_STEPS = 200
# The queue when the engine cannot decide (or fails): a coordinator helps.
FALLBACK_QUEUE = "coordinator"
# The longest keypad input we keep (calls.menu_choice is String(32)); longer is junk anyway.
MAX_CHOICE_LENGTH = 16
_NOT_A_KEY = re.compile(r"[^0-9*#A-D]")
CONFIRM_YES = "1"
# How long database work that needs the call's row waits for the call-log writer.
CALL_ROW_WAIT = 3.0
# The longest a caller waits in silence for a database lookup or action; then the flow goes
# on as if it failed (an unknown fact is false, an action takes its on_error path).
LOOKUP_TIMEOUT = 5.0

T = TypeVar("T")


class FlowLoopError(RuntimeError):
    """The flow kept going without ending: the caller goes to the coordinator."""


def clean_choice(digits: str) -> str:
    """What may be stored/logged of keypad input: keypad symbols only, bounded."""
    return _NOT_A_KEY.sub("", digits)[:MAX_CHOICE_LENGTH]


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


class FlowEngine:
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
        # The company the call is for, as decided before the flow (hotline.py) or by a
        # `company` node; `ask` until the caller has told us.
        self.tenant = tenant
        # Its own calendar, prompts and flows, where it has them (else the centre's).
        self.menu = tenant_menu(runtime, tenant)
        # The house code of the building the caller named in words (asked once per call).
        self._spoken_code: str | None = None
        self._address_asked = False

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> FlowState:
        node_id: str | None = self.flow.start
        while node_id is not None:
            self.state.steps += 1
            if self.state.steps > MAX_STEPS:
                raise FlowLoopError(f"flow {self.name!r} ran {MAX_STEPS} steps without ending")
            self.state.node = node_id
            node = self.flow.nodes[node_id]
            next_id, detail = await self._step(node_id, node)
            await self._record_step(node_id, node, next_id, detail)
            if isinstance(node, FlowJumpNode):
                next_id = self._jump(node)
            node_id = next_id
        return self.state

    def _jump(self, node: FlowJumpNode) -> str:
        """Continue at the start of another flow (the tenant's own version where it has one);
        its variables are the call's so far."""
        target = self.menu.flows.get(node.flow) if self.menu is not None else None
        if target is None and self.rt.flows is not None:
            target = self.rt.flows(node.flow)
        if target is None:
            raise LookupError(f"flow {node.flow!r} is not loaded")
        self.name, self.flow = node.flow, target
        return target.start

    async def _step(self, node_id: str, node: Node) -> tuple[str | None, dict[str, Any]]:
        match node:
            case PlayNode():
                keys = self._menu_keys(node.keys_to) if node.keys_to else ""
                key = await self.play(node.prompt, keys, node.language)
                if key and node.keys_to:
                    self._pending[node.keys_to] = key
                    return node.keys_to, {"key": key}
                return node.next, {}
            case MenuNode():
                return await self._menu(node_id, node)
            case AskNode():
                return await self._ask(node_id, node)
            case CollectNode():
                return await self._collect(node_id, node)
            case RouteNode():
                await self._route(node)
                return None, {"queue": node.queue, "intent": node.intent}
            case ConditionNode():
                return await self._condition(node)
            case SetNode():
                self.state.variables.update(node.vars)
                if "language" in node.vars:
                    await self._switch_language(node.vars["language"])
                return node.next, {"vars": dict(node.vars)}
            case GotoNode():
                return node.next, {}
            case HangupNode():
                if node.prompt:
                    await self.play(node.prompt, "")
                self.state.result = "hangup"
                await self.agi.hangup()
                return None, {}
            case VoicemailNode():
                return await self._voicemail(node)
            case IncidentNode():
                return await self._incident(node_id, node)
            case AreaNode():
                return await self._area(node_id, node)
            case RequestsNode():
                return await self._requests(node_id, node)
            case SayNode():
                return await self._say(node)
            case ActionNode():
                return await self._action(node_id, node)
            case FlowJumpNode():
                return None, {"flow": node.flow}
            case TransferNode():
                return await self._transfer(node_id, node)
            case CompanyNode():
                return await self._company(node)
        raise AssertionError(f"unhandled node type {node.type}")  # pragma: no cover

    # --- menus and keys ---------------------------------------------------------------------

    def _menu_keys(self, node_id: str) -> str:
        node = self.flow.nodes.get(node_id)
        if isinstance(node, MenuNode):
            return "".join(node.options) + REPEAT_KEY
        if isinstance(node, AskNode):
            return "".join(c.key for c in node.choices.values() if c.key) + REPEAT_KEY
        return ""

    async def _menu(self, node_id: str, node: MenuNode) -> tuple[str, dict[str, Any]]:
        options = {key: opt.next for key, opt in node.options.items()}
        key = await self._keypad(
            node_id,
            node.prompt,
            options,
            timeout=node.timeout,
            retries=node.retries,
            max_plays=node.max_plays,
            invalid_prompt=node.invalid_prompt,
            no_input_prompt=node.no_input_prompt,
        )
        if key is None:
            return node.on_failure, {"result": "failed", "choice": self.state.choice}
        self.state.choice = key
        intent = node.options[key].intent
        if intent:
            self.state.variables["intent"] = intent
        return options[key], {"choice": key, "intent": intent}

    async def _keypad(
        self,
        node_id: str,
        prompt: str,
        options: dict[str, str],
        *,
        timeout: int | None,
        retries: int | None,
        max_plays: int = 6,
        invalid_prompt: str | None,
        no_input_prompt: str | None,
    ) -> str | None:
        """The key the caller chose, or None when they could not (failures, `*` forever)."""
        timeout_s = timeout or self.rt.menu_timeout
        allowed = self.rt.menu_retries if retries is None else retries
        escape = "".join(options) + REPEAT_KEY
        failures = plays = 0
        pending = self._pending.pop(node_id, "")
        while True:
            if pending:
                digits, pending = pending, ""
            else:
                if plays >= max_plays:
                    return None
                plays += 1
                self.state.menu_plays += 1
                self.state.node = node_id
                try:
                    digits, _ = await self.agi.get_data(
                        self.prompt(prompt), timeout_ms=timeout_s * 1000, max_digits=1
                    )
                except AgiError as exc:
                    if self.agi.desynchronised:
                        raise
                    # Asterisk 22 answers -1 to GET DATA of a missing prompt on a live channel:
                    # the caller cannot be asked, so a coordinator helps them.
                    self.ctx.log.warning("menu_prompt_failed", node=node_id, error=str(exc))
                    return None
            digits = clean_choice(digits)
            if digits in options:
                return digits
            if digits == REPEAT_KEY:
                continue
            kind = "no_input" if digits == "" else "invalid"
            failures += 1
            if digits:
                self.state.choice = digits
            await self._event(
                f"menu_{kind}",
                {"node": node_id, "choice": digits, "attempt": failures},
            )
            if failures > allowed:
                return None
            sorry = no_input_prompt if kind == "no_input" else invalid_prompt
            if sorry:
                pending = await self.play(sorry, escape)

    # --- ask: speech or keypad, then confirm ---------------------------------------------------

    async def _ask(self, node_id: str, node: AskNode) -> tuple[str, dict[str, Any]]:
        by_key = {c.key: intent for intent, c in node.choices.items() if c.key}
        timeout_s = node.timeout or self.rt.menu_timeout
        allowed = self.rt.menu_retries if node.retries is None else node.retries
        misses = 0
        spoken = [intent for intent, c in node.choices.items() if c.speech]
        # A key already pressed (during the greeting) answers the question by keypad.
        while (
            not self._speech_off
            and self.rt.speech is not None
            and spoken
            and node_id not in self._pending
        ):
            try:
                heard = await self.rt.speech(
                    self.agi,
                    prompt=self.prompt(node.speech_prompt or node.prompt),
                    language=self.language,
                    intents=spoken,
                    timeout=float(timeout_s + 10),
                )
            except (AgiError, CallerHangup):
                raise  # the channel itself failed: not the recogniser's problem
            except Exception as exc:  # a broken recogniser must not cost the caller the menu
                self.ctx.log.warning("speech_failed", node=node_id, error=printable(str(exc)))
                heard = None
            if heard is None:
                self._speech_off = True
                break
            if heard.key:
                # The caller pressed a key instead of speaking: the keypad menu takes it.
                self._pending[node_id] = clean_choice(heard.key)
                break
            await self._event(
                "speech",
                {
                    "node": node_id,
                    "intent": heard.intent,
                    "text": printable(heard.text, 200),
                    "confidence": heard.confidence,
                    "candidate": heard.candidate,
                    "runner_up": heard.runner_up,
                },
            )
            sure = heard.intent in spoken
            guess = heard.intent if sure else heard.candidate
            if guess in spoken and (sure or node.confirm):
                assert guess is not None
                # A refused doubtful guess: the runner-up is offered once more ("asked twice").
                later = heard.runner_up if not sure and heard.runner_up in spoken else None
                for offer in (guess, later) if later is not None else (guess,):
                    if await self._confirmed(node, offer, sure=sure):
                        self.state.variables["intent"] = offer
                        how = "speech" if sure else "speech_confirmed"
                        return node.choices[offer].next, {"intent": offer, "by": how}
                break  # "choose again": by keypad, which cannot be misheard
            misses += 1
            if misses > allowed:
                return node.on_failure, {"result": "not_understood"}
            if node.invalid_prompt:
                await self.play(node.invalid_prompt, "")
        key = await self._keypad(
            node_id,
            node.prompt,
            {k: node.choices[i].next for k, i in by_key.items()},
            timeout=node.timeout,
            retries=node.retries,
            max_plays=node.max_plays,
            invalid_prompt=node.invalid_prompt,
            no_input_prompt=node.no_input_prompt,
        )
        if key is None:
            return node.on_failure, {"result": "failed", "choice": self.state.choice}
        self.state.choice = key
        self.state.variables["intent"] = by_key[key]
        return node.choices[by_key[key]].next, {"intent": by_key[key], "by": "keypad"}

    async def _confirmed(self, node: AskNode, intent: str, *, sure: bool = True) -> bool:
        choice = node.choices[intent]
        if choice.confirm_prompt:
            await self.play(choice.confirm_prompt, "")
        if not node.confirm or (sure and not node.confirm_sure):
            return True
        digits, _ = await self.agi.get_data(
            self.prompt(node.confirm),
            timeout_ms=(node.timeout or self.rt.menu_timeout) * 1000,
            max_digits=1,
        )
        return clean_choice(digits) == CONFIRM_YES

    # --- collect ---------------------------------------------------------------------------

    async def _collect(self, node_id: str, node: CollectNode) -> tuple[str, dict[str, Any]]:
        timeout_s = node.timeout or self.rt.menu_timeout
        allowed = self.rt.menu_retries if node.retries is None else node.retries
        failures = 0
        while True:
            self.state.node = node_id
            # One more than allowed, so an over-long entry is seen (and refused), not cut.
            raw, _ = await self.agi.get_data(
                self.prompt(node.prompt),
                timeout_ms=timeout_s * 1000,
                max_digits=node.max_length + 1,
            )
            digits = clean_choice(raw).rstrip("#")
            problem = collect_problem(digits, node)
            if problem is None:
                self.state.variables[node.var] = digits
                return node.next, {"var": node.var, "length": len(digits)}
            failures += 1
            await self._event(
                "collect_invalid",
                {"node": node_id, "problem": problem, "attempt": failures, "length": len(digits)},
            )
            if failures > allowed:
                return node.on_failure, {"result": "failed", "problem": problem}
            if node.invalid_prompt:
                await self.play(node.invalid_prompt, "")

    # --- conditions, route, voicemail ----------------------------------------------------------

    async def _condition(self, node: ConditionNode) -> tuple[str, dict[str, Any]]:
        facts = await self._facts(node)
        for i, branch in enumerate(node.branches):
            if evaluate(branch.when, facts):
                return branch.next, {"branch": i}
        return node.otherwise, {"branch": "else"}

    async def _facts(self, node: ConditionNode) -> CallFacts:
        now = self.rt.clock()
        recent: int | None = None
        incidents: frozenset[str] = frozenset()
        number = self.ctx.env.caller_number
        lookups = self.rt.lookups
        wants_repeat = [b.when for b in node.branches if b.when.repeat_caller is not None]
        if lookups is not None and wants_repeat and number:
            window = timedelta(hours=max(t.repeat_caller_hours for t in wants_repeat))
            recent = await self._lookup(
                lookups.recent_calls, number, now - window, self.ctx.linkedid or ""
            )
        if lookups is not None and any(b.when.incident is not None for b in node.branches):
            active = await self._incidents(lookups)
            incidents = frozenset(incident.category for incident in active or [])
        own = self.menu.calendar if self.menu is not None else None
        return CallFacts(
            now=now,
            calendar=own or self.rt.calendar,
            variables=self.state.variables,
            recent_calls=recent,
            incident_categories=incidents,
        )

    async def _incidents(
        self, lookups: FlowLookups, area: str | None = None
    ) -> list[ActiveIncident] | None:
        area = area or self.state.variables.get("area")
        cached = lookups.incidents_if_fresh(area)
        if cached is not None:
            return cached  # no thread, no database: read at most every few seconds
        return await self._lookup(lookups.active_incidents, area)

    async def _lookup(self, fn: Callable[..., T], *args: Any) -> T | None:
        try:
            # Bounded: a slow database must not leave the caller in silence.
            return await asyncio.wait_for(asyncio.to_thread(fn, *args), LOOKUP_TIMEOUT)
        except TimeoutError:
            self.ctx.log.warning("flow_lookup_timeout", lookup=getattr(fn, "__name__", "?"))
            return None
        except Exception:
            # An unknown fact counts as false: the caller still gets the ordinary path.
            self.ctx.log.exception("flow_lookup_failed", lookup=getattr(fn, "__name__", "?"))
            return None

    async def _switch_language(self, language: str) -> None:
        """Prompts in `language` from now on, and for this number's next calls too."""
        self.language = language
        # Asterisk's own numbers, digits and times (SAY DIGITS) follow the channel language.
        await self.agi.set_language(language)
        number = self.ctx.env.caller_number
        if self.rt.lookups is not None and number:
            await self._lookup(self.rt.lookups.remember_language, number, language)

    # --- the company --------------------------------------------------------------------------

    async def _company(self, node: CompanyNode) -> tuple[str, dict[str, Any]]:
        decided = self.tenant
        if not decided.must_ask:
            return node.next, {"source": decided.source}
        if node.code_var not in self.state.variables:
            spoken = await self._address_in_words(node)
            if spoken is not None and node.heard is not None:
                self.state.variables[node.code_var] = self._spoken_code = spoken
                return node.heard, {"source": "ask", "by": "speech"}
            return node.ask, {"source": "ask"}
        # The caller's keys, checked again whatever the flow's collect node allowed.
        code = clean_house_code(self.state.variables.get(node.code_var, ""))
        found = None
        if code is not None and self.rt.tenants is not None:
            found = await self._lookup(self.rt.tenants.building_by_code, code)
        if found is None:
            await self.decide_tenant(UNKNOWN_DECISION)
            return node.on_failure, {"source": "unknown", "code_found": False}
        building_id, tenant_id = found
        # Said in words and confirmed as read back, or keyed.
        source: Source = "speech" if code == self._spoken_code else "keypad"
        await self.decide_tenant(TenantDecision(source, tenant_id, building_id))
        own = self.menu.flows.get(self.name) if self.menu is not None else None
        if own is not None and own is not self.flow:
            # The company has its own version of this menu: it takes over from its start
            # (its `company` node, now decided, goes straight on).
            self.flow = own
            return own.start, {"source": source, "code_found": True, "own_flow": True}
        return node.next, {"source": source, "code_found": True}

    async def _address_in_words(self, node: CompanyNode) -> str | None:
        """The house code of the building the caller names in words, once per call; None:
        no speech here (no prompt, model or buildings), a key pressed, or not understood."""
        listener, directory = self.rt.address_speech, self.rt.tenants
        if node.speech_prompt is None or listener is None or directory is None:
            return None
        if self._address_asked:
            return None
        self._address_asked = True
        known = await self._lookup(directory.spoken_buildings)
        if not known:
            return None
        try:
            heard = await listener(
                self.agi,
                prompt=self.prompt(node.speech_prompt),
                language=self.language,
                buildings=known,
                timeout=float(self.rt.menu_timeout + 10),
            )
        except (AgiError, CallerHangup):
            raise
        except Exception as exc:  # a broken recogniser must not cost the caller the menu
            self.ctx.log.warning("address_speech_failed", error=printable(str(exc)))
            return None
        if heard is None:
            return None
        building = heard.building
        await self._event(
            "speech",
            {
                "node": self.state.node,
                "address": building is not None,
                "text": printable(heard.text, 200),
                "key": bool(heard.key),
            },
        )
        return building.code if building is not None else None

    async def decide_tenant(self, decision: TenantDecision) -> None:
        """The call is `decision`'s: channel variables first, then (queued) the call log."""
        self.tenant = decision
        self.menu = tenant_menu(self.rt, decision)
        await set_tenant(self.agi, self.ctx, self.rt.tenants, decision)

    async def _route(self, node: RouteNode) -> None:
        await self._route_to(node.queue, node.intent, node.priority, node.prompt)

    async def _route_to(
        self,
        flow_queue: str,
        intent: str | None,
        priority: int | None,
        prompt: str | None,
        tenant_id: int | None = None,
    ) -> None:
        state = self.state
        choice = state.choice or None
        queue = flow_queue
        if self.rt.tenants is not None:
            owner = tenant_id if tenant_id is not None else self.tenant.tenant_id
            queue = self.rt.tenants.queue_for(owner, flow_queue)
        # No log line per routed call (a write per call at carrier scale): the decision is in
        # the call log (the menu_result entry below); the fallbacks are logged (hotline.py).
        if self.ctx.linkedid:
            self.ctx.writer.submit(
                "record_menu_result",
                self.ctx.linkedid,
                choice=choice,
                intent=intent,
                queue=queue,
                language=self.language,
            )
        await set_call_id(self.agi, self.ctx)
        await self.agi.set_variable(channel_vars.INTENT, intent or "")
        await self.agi.set_variable(channel_vars.MENU_CHOICE, choice or "")
        if priority is not None:
            await self.agi.set_variable(channel_vars.PRIORITY, str(priority))
        # QUEUE last: the dialplan takes a set queue as "the menu finished".
        await self.agi.set_variable(channel_vars.QUEUE, queue)
        state.result, state.queue = "routed", queue
        if prompt:
            await self.play(prompt, "")

    async def _incident(self, node_id: str, node: IncidentNode) -> tuple[str, dict[str, Any]]:
        lookups = self.rt.lookups
        active = await self._incidents(lookups) if lookups is not None else None
        if not active:
            return node.next, {"announced": []}
        announced: list[int] = []
        key = ""
        for incident in active[: node.max_announced]:
            key, played = await self._play_announcement(f"incident_{incident.id}", "1")
            if not played:
                continue  # no recording: nothing heard, and no "expected back" without it
            # Heard only once its prompt played (to its end, or until the caller's key): a
            # hang-up during it raises before this line.
            announced.append(incident.id)
            await self._event("incident_announced", {"node": node_id, "incidents": [incident.id]})
            if not key and incident.expected_end is not None and node.expected_prompt:
                key = await self.play(node.expected_prompt, "1")
                if not key:
                    key = await self.say_time(incident.expected_end, "1")
            if key:
                break
        if not announced:
            return node.next, {"announced": []}
        if not key:
            key = await self._one_key(node_id, node.different_prompt, node.timeout)
        self.state.variables["incident_heard"] = ",".join(str(i) for i in announced)
        return node.next, {"announced": announced, "key": clean_choice(key)}

    async def _play_announcement(self, name: str, escape_digits: str) -> tuple[str, bool]:
        """(key, played): played is False when Asterisk had nothing to play (a missing file
        answers -1 on a live channel, or 0 at position 0); a hang-up raises CallerHangup."""
        try:
            reply = await self.agi.channel_command(
                f"STREAM FILE {quote_argument(self.prompt(name))} {quote_argument(escape_digits)}",
                120,
            )
        except AgiError as exc:
            if self.agi.desynchronised:
                raise
            self.ctx.log.warning("prompt_failed", prompt=name, error=str(exc))
            return "", False
        key = digit_from_code(reply.value)
        return key, bool(key) or reply.endpos is None or reply.endpos > 0

    async def _area(self, node_id: str, node: AreaNode) -> tuple[str, dict[str, Any]]:
        """The caller's area into `area` (AreaNode): known, looked up, or keyed."""
        if self.state.variables.get("area"):
            return node.next, {"source": "variable"}
        lookups, places = self.rt.lookups, self.rt.areas
        if lookups is None or places is None:
            return node.next, {"source": "none"}
        active = await self._incidents(lookups, ANY_AREA)
        targeted = {area for incident in active or [] for area in incident.areas}
        if not targeted:
            return node.next, {"source": "not_needed"}  # nothing to narrow: ask nothing
        number = self.ctx.env.caller_number or ""
        fresh, area = places.area_if_fresh(number)
        if not fresh:
            area = await self._lookup(places.caller_area, number)
        if area:
            self.state.variables["area"] = area
            return node.next, {"source": "known", "area": area}
        if not any(places.is_area(target) for target in targeted):
            # Only free labels are targeted (no node a code could name): asking cannot help.
            return node.next, {"source": "not_needed"}
        for attempt in range(node.retries + 1):
            self.state.node = node_id
            raw, _ = await self.agi.get_data(
                self.prompt(node.prompt),
                timeout_ms=(node.timeout or self.rt.menu_timeout) * 1000,
                max_digits=node.max_length,
            )
            code = clean_choice(raw).rstrip("#")
            if not code:
                break  # `#` or silence: the caller does not know it
            area = places.area_by_code(code) if code.isdigit() else None
            if area:
                self.state.variables["area"] = area
                return node.next, {"source": "keypad", "area": area, "attempts": attempt + 1}
            if node.invalid_prompt and attempt < node.retries:
                await self.play(node.invalid_prompt, "")
        return node.next, {"source": "unknown"}

    async def _requests(
        self, node_id: str, node: RequestsNode
    ) -> tuple[str | None, dict[str, Any]]:
        """The caller's open requests first; the key puts them through about the newest."""
        desk = self.rt.requests
        number = self.ctx.env.caller_number
        if desk is None or not number:
            return node.next, {"requests": []}
        found = desk.open_if_fresh(number)  # from memory: no thread, no database
        if found is None:
            found = await self._lookup(desk.open_requests, number)
        if not found:
            return node.next, {"requests": []}
        heard = found[: node.max_announced]
        numbers = [request.number for request in heard]
        # Recorded before playing: the timeline says what the caller was told.
        await self._event(
            "request_status",
            {"node": node_id, "requests": numbers, "states": [r.state for r in heard]},
        )
        key = ""
        for request in heard:
            key = await self.play("request_yours", node.key)
            if not key:
                key = await self._say_number(request.number, node.key)
            if not key:
                key = await self.play(f"request_about_{request.category}", node.key)
            if not key:
                key = await self.play(f"request_state_{request.state}", node.key)
            if key:
                break
        if not key:
            key = await self._one_key(node_id, node.talk_prompt, node.timeout)
        key = clean_choice(key)
        if key != node.key:
            return node.next, {"requests": numbers, "key": key}
        # The caller asks about the newest one read out (the one they heard first).
        request = heard[0]
        self.state.choice = key
        self.state.variables["service_request"] = request.number
        if self.ctx.linkedid:
            await self._call_row_written()
            await self._lookup(desk.link_call, self.ctx.linkedid, request.number)
        await self._route_to(request.queue, "service_request", None, node.prompt, request.tenant_id)
        return None, {"requests": numbers, "key": key, "request": request.number}

    async def _one_key(self, node_id: str, prompt: str, timeout: int | None) -> str:
        """After an announcement: a prompt and one key (none when the caller is silent)."""
        self.state.node = node_id
        key, _ = await self.agi.get_data(
            self.prompt(prompt), timeout_ms=(timeout or self.rt.menu_timeout) * 1000, max_digits=1
        )
        return key

    async def _say_number(self, digits: str, escape: str) -> str:
        try:
            return await self.agi.say_digits(digits[:32], escape)
        except AgiError as exc:
            if self.agi.desynchronised:
                raise
            self.ctx.log.warning("say_failed", var="service_request", error=str(exc))
            return ""

    async def _voicemail(self, node: VoicemailNode) -> tuple[str | None, dict[str, Any]]:
        """Record after the tone into recordings/voicemail/, then open a callback entry.

        A caller who hangs up while speaking has still left a message: Asterisk keeps what was
        recorded, so the callback is opened before the hang-up ends the flow.
        """
        if node.prompt:
            await self.play(node.prompt, "")
        name = f"{self.ctx.linkedid or 'call'}-{self.state.steps}"
        relative = f"voicemail/{name}.wav"
        path = f"{self.rt.recordings_base}/voicemail/{name}"
        # `#` ends the message; s= stops after that much silence; BEEP is the tone.
        cmd = (
            f"RECORD FILE {quote_argument(path)} wav {quote_argument('#')} "
            f"{node.max_seconds * 1000} BEEP s={node.silence_seconds}"
        )
        hung_up: CallerHangup | None = None
        endpos: int | None = None  # unknown when the caller hung up before the reply
        try:
            reply = await self.agi.channel_command(cmd, timeout=node.max_seconds + 30)
            endpos = max(reply.endpos or 0, 0)
        except CallerHangup as exc:
            hung_up = exc
        except AgiError as exc:
            if self.agi.desynchronised:
                raise
            self.ctx.log.warning("voicemail_record_failed", error=str(exc))
            return node.next, {"result": "record_failed"}
        seconds = round(endpos / 8000, 1) if endpos is not None else None  # 8 kHz samples
        trimmed = await self._trim(name, node.max_seconds)
        if trimmed is not None:
            seconds = round(trimmed.seconds, 1)
        await self._event(
            "voicemail",
            {
                "file": relative,
                "seconds": seconds,
                "queue": node.queue,
                "trimmed_seconds": round(trimmed.removed_seconds, 1) if trimmed else None,
                "silent": trimmed.silent if trimmed else None,
            },
        )
        if self.rt.lookups is not None and self.ctx.linkedid:
            await self._call_row_written()
            await self._lookup(
                self.rt.lookups.open_callback,
                self.ctx.linkedid,
                node.queue,
                "voicemail",
                relative,
            )
        self.state.result = "voicemail"
        if hung_up is not None:
            self.state.node = f"{self.state.node} (after voicemail)"
            raise hung_up
        if node.next is None:
            await self.agi.hangup()
        return node.next, {"file": relative, "seconds": seconds}

    async def _trim(self, name: str, max_seconds: int) -> Trimmed | None:
        """Silence trimmed off the message as it lies on this host (None: not reachable)."""
        path = self.ctx.settings.recordings_dir / "voicemail" / f"{name}.wav"
        limit = min(max_seconds, self.ctx.settings.voicemail_max_seconds)
        if not path.is_file():
            return None
        try:
            return await asyncio.to_thread(trim_voicemail, path, limit)
        except Exception:
            self.ctx.log.exception("voicemail_trim_failed", file=str(path))
            return None

    # --- say, actions, other flows, transfers ---------------------------------------------------

    async def _say(self, node: SayNode) -> tuple[str, dict[str, Any]]:
        escape = self._menu_keys(node.keys_to) if node.keys_to else ""
        key = await self.play(node.prompt, escape) if node.prompt else ""
        value = self.state.variables.get(node.var, "")
        digits = value if value.isascii() and value.isdigit() else ""
        if not key and digits:
            try:
                if node.say_as == "number":
                    reply = await self.agi.channel_command(
                        f"SAY NUMBER {int(digits)} {quote_argument(escape)}"
                    )
                    key = digit_from_code(reply.value)
                else:
                    key = await self.agi.say_digits(digits[:32], escape)
            except AgiError as exc:
                if self.agi.desynchronised:
                    raise
                self.ctx.log.warning("say_failed", var=node.var, error=str(exc))
        if key and node.keys_to:
            self._pending[node.keys_to] = key
            return node.keys_to, {"key": key}
        return node.next, {"length": len(digits)}

    async def say_time(self, moment: datetime, escape_digits: str) -> str:
        """A clock time in the caller's language and the hotline's zone (SAY DATETIME)."""
        fmt = "IMp" if self.language == "en" else "HM"
        zone = f" {self.rt.timezone}" if self.rt.timezone else ""
        try:
            reply = await self.agi.channel_command(
                f"SAY DATETIME {int(moment.timestamp())} {quote_argument(escape_digits)} "
                f"{fmt}{zone}"
            )
        except AgiError as exc:
            if self.agi.desynchronised:
                raise
            self.ctx.log.warning("say_time_failed", error=str(exc))
            return ""
        return digit_from_code(reply.value)

    async def _action(self, node_id: str, node: ActionNode) -> tuple[str, dict[str, Any]]:
        call = ActionCall(
            caller_number=self.ctx.env.caller_number,
            linkedid=self.ctx.linkedid,
            now=self.rt.clock(),
        )
        result: ActionResult | None = None
        if self.rt.actions is not None:
            await self._call_row_written()
            result = await self._lookup(
                self.rt.actions.run, node.service, node.args, dict(self.state.variables), call
            )
        if result is None:
            return node.on_error, {"service": node.service, "outcome": "error"}
        self.state.variables.update(result.variables)
        success = ACTION_OUTCOMES[node.service][0]
        if result.outcome == success:
            target = node.next
        else:
            target = node.outcomes.get(result.outcome, node.on_error)
        await self._event(
            "action", {"node": node_id, "service": node.service, "outcome": result.outcome}
        )
        return target, {"service": node.service, "outcome": result.outcome}

    async def _transfer(
        self, node_id: str, node: TransferNode
    ) -> tuple[str | None, dict[str, Any]]:
        """Dial the outside number from the AGI (the caller stays in our dialplan meanwhile)."""
        number = node.number
        if number.startswith("setting:"):
            number = self.rt.numbers.get(number.removeprefix("setting:"), "")
        if not number or not number.lstrip("+").isdigit() or len(number) > 16:
            self.ctx.log.error("transfer_number_missing", node=node_id, number=node.number)
            return node.on_failure, {"result": "no_number"}
        if node.prompt:
            await self.play(node.prompt, "")
        await self._event("transfer", {"node": node_id, "number": number, "status": "dialling"})
        try:
            dial = f"PJSIP/{number}@{self.rt.trunk},{node.ring_seconds}"
            # Bounded by the ring time plus a long emergency conversation.
            await self.agi.channel_command(
                f"EXEC Dial {quote_argument(dial)}", timeout=node.ring_seconds + 4 * 3600
            )
        except CallerHangup:
            # The bridged call ended (or the caller gave up while it rang): DIALSTATUS tells;
            # Asterisk still answers GET VARIABLE on a hung-up channel.
            status = ""
            with contextlib.suppress(AgiError, CallerHangup):
                dialled = await self.agi.get_variable("DIALSTATUS", after_hangup=True)
                status = (dialled or "").upper()[:16]
            if status == "ANSWER":
                await self._transferred(node_id, number, status)
            else:
                await self._event(
                    "transfer", {"node": node_id, "number": number, "status": status or None}
                )
            raise
        except AgiError as exc:
            if self.agi.desynchronised:
                raise
            self.ctx.log.warning("transfer_failed", node=node_id, error=str(exc))
        status = (await self.agi.get_variable("DIALSTATUS") or "").upper()[:16]
        if status == "ANSWER":
            await self._transferred(node_id, number, status)
            await self.agi.hangup()
            return None, {"number": number, "status": status}
        await self._event("transfer", {"node": node_id, "number": number, "status": status})
        return node.on_failure, {"number": number, "status": status}

    async def _transferred(self, node_id: str, number: str, status: str) -> None:
        self.state.result = "transferred"
        # On the call's timeline: where the caller was sent, and that the number answered.
        await self._event("transfer", {"node": node_id, "number": number, "status": status})

    # --- I/O helpers -------------------------------------------------------------------------

    def prompt(self, name: str, language: str | None = None) -> str:
        """The prompt's file for Asterisk: the call's tenant's own where it has one."""
        lang = language or self.language
        if self.menu is not None and (name, lang) in self.menu.prompts:
            own = tenant_prompt_path(self.menu.slug, lang, name)
            return f"{self.rt.recordings_base}/prompts/{own}"
        return f"{self.rt.recordings_base}/prompts/{lang}/{name}"

    async def play(self, name: str, escape_digits: str, language: str | None = None) -> str:
        """Play a prompt; a missing prompt is logged, not fatal: the menu still works by keys."""
        path = self.prompt(name, language)
        try:
            return await self.agi.stream_file(path, escape_digits)
        except AgiError as exc:
            if self.agi.desynchronised:
                raise
            self.ctx.log.warning("prompt_failed", prompt=path, error=str(exc))
            return ""

    async def _record_step(
        self, node_id: str, node: Node, next_id: str | None, detail: dict[str, Any]
    ) -> None:
        data = {"flow": self.name, "node": node_id, "type": node.type, "next": next_id, **detail}
        if self.menu is not None:
            # Whose menu the caller is in: the tenant's own files change what they hear.
            data["tenant_menu"] = self.menu.slug
        await self._event("flow_step", data)

    async def _event(self, kind: str, data: dict[str, Any]) -> None:
        """A timeline entry, queued for the call-log writer (never awaited)."""
        if not self.ctx.linkedid:
            return
        self._seq += 1
        self.ctx.writer.submit(
            "record_event", self.ctx.linkedid, kind=kind, key=f"flow:{self._seq}:{kind}", data=data
        )

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
    await agi.set_variable(channel_vars.TENANT, slug)
    await agi.set_variable(channel_vars.TENANT_SOURCE, decision.source)
    building = str(decision.building_id) if decision.building_id is not None else ""
    await agi.set_variable(channel_vars.BUILDING, building)
    if ctx.linkedid:
        ctx.writer.submit(
            "record_tenant",
            ctx.linkedid,
            tenant_id=decision.tenant_id,
            source=decision.source,
            building_id=decision.building_id,
        )


async def set_call_id(agi: AgiChannel, ctx: CallContext) -> None:
    """HOTLINE_CALL_ID for later dialplan steps, if the call row is written by now (it
    normally is, milliseconds after the arrival); never waited for."""
    call_id = ctx.writer.call_id(ctx.linkedid) if ctx.linkedid else None
    if call_id is not None:
        await agi.set_variable(channel_vars.CALL_ID, str(call_id))


def collect_problem(digits: str, node: CollectNode) -> str | None:
    """Why collected digits are refused, or None. Pure."""
    if not digits:
        return "no_input"
    if not digits.isdigit():
        return "not_digits"
    if len(digits) < node.min_length:
        return "too_short"
    if len(digits) > node.max_length:
        return "too_long"
    if node.checksum == "luhn" and not luhn_ok(digits):
        return "checksum"
    return None
