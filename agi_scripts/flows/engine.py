"""Runs one flow for one call, node by node, over the AGI channel.

Every node visit is a call-timeline event (`flow_step`), so the dashboard can show where a
caller went and where they left; the steps between two waits for the caller are stored as one
row (step_records.py). A caller hang-up raises CallerHangup out of `run`; the
handler records where it happened (`state.node`). Anything else that goes wrong raises too,
and the handler sends the caller to the coordinator: a broken flow never drops a caller.

Node families are classes of their own, which FlowEngine combines: input_nodes.py (menu, ask,
collect), decision_nodes.py (condition, company, action), announcement_nodes.py (incident, area,
say) and handoff_nodes.py (route, requests, voicemail, transfer), on prompt_playback.py (prompts,
playback) and engine_core.py (the call's state, timeline events, lookups, tenant and call id on
the channel).
"""

from __future__ import annotations

from typing import Any

from agi_scripts.flows.announcement_nodes import AnnouncementNodes
from agi_scripts.flows.decision_nodes import DecisionNodes
from agi_scripts.flows.engine_core import FlowState
from agi_scripts.flows.handoff_nodes import HandoffNodes
from agi_scripts.flows.input_nodes import InputNodes
from call_router.flows.schema import (
    ActionNode,
    AreaNode,
    AskNode,
    CollectNode,
    CompanyNode,
    ConditionNode,
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

# A flow that visits this many nodes in one call is looping (validation should have caught it).
MAX_STEPS = 200


class FlowLoopError(RuntimeError):
    """The flow kept going without ending: the caller goes to the coordinator."""


class FlowEngine(InputNodes, DecisionNodes, AnnouncementNodes, HandoffNodes):
    """One flow run for one call: the loop over its nodes, jumps to other flows, step records."""

    async def run(self) -> FlowState:
        try:
            return await self._run()
        finally:
            # Also on a hang-up or a failure: the steps so far, before what the handler adds.
            self._hand_over_steps()
            self.agi.before_wait = None

    async def _run(self) -> FlowState:
        node_id: str | None = self.flow.start
        while node_id is not None:
            self.state.steps += 1
            if self.state.steps > MAX_STEPS:
                raise FlowLoopError(f"flow {self.name!r} ran {MAX_STEPS} steps without ending")
            self.state.node = node_id
            node = self.flow.nodes[node_id]
            next_id, detail = await self._step(node_id, node)
            self._step_done(node_id, node, next_id, detail)
            if isinstance(node, RouteNode) and node.prompt:
                # Routed and on record before the announcement plays: the route's step goes
                # to the writer with the steps before it at that wait, not in a row of its
                # own when the flow ends (one write a call fewer).
                await self.play(node.prompt, "")
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

    def _step_done(
        self, node_id: str, node: Node, next_id: str | None, detail: dict[str, Any]
    ) -> None:
        data = {"flow": self.name, "node": node_id, "type": node.type, "next": next_id, **detail}
        if self.menu is not None:
            # Whose menu the caller is in: the tenant's own files change what they hear.
            data["tenant_menu"] = self.menu.slug
        self._record_step(data)
