"""Nodes that tell the caller something: current incidents, the area they target, a value."""

from __future__ import annotations

from typing import Any

from agi_scripts.agi_protocol import AgiError, digit_from_code, quote_argument
from agi_scripts.flows.prompt_playback import Playback
from agi_scripts.flows.runtime import ANY_AREA
from call_router.flows.schema import AreaNode, IncidentNode, SayNode
from call_router.routing import clean_choice


class AnnouncementNodes(Playback):
    """`incident`, `area` and `say`: what the caller is told, and the area that decides it."""

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
