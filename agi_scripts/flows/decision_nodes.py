"""Nodes that choose the path: conditions on the call's facts, the caller's company, actions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from agi_scripts.agi_protocol import AgiError, CallerHangup, printable
from agi_scripts.flows.engine_core import set_tenant, tenant_menu
from agi_scripts.flows.prompt_playback import Playback
from agi_scripts.flows.runtime import ActionCall, ActionResult
from call_router.flows.conditions import CallFacts, evaluate
from call_router.flows.schema import ACTION_OUTCOMES, ActionNode, CompanyNode, ConditionNode
from call_router.tenant_routing import UNKNOWN_DECISION, Source, TenantDecision, clean_house_code


class DecisionNodes(Playback):
    """`condition`, `company`, `action`: the next node by facts, the caller's company, a service."""

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

    async def _action(self, node_id: str, node: ActionNode) -> tuple[str, dict[str, Any]]:
        call = ActionCall(
            caller_number=self.ctx.env.caller_number,
            linkedid=self.ctx.linkedid,
            now=self.rt.clock(),
        )
        result: ActionResult | None = None
        if self.rt.actions is not None:
            await self._call_row_written()
            result = await self._act(
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
