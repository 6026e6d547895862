"""Nodes that put the caller through: to a queue, about a request, to voicemail, to a number."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from agi_scripts.agi_protocol import AgiError, CallerHangup, quote_argument
from agi_scripts.flows.engine_core import set_route
from agi_scripts.flows.prompt_playback import Playback
from agi_scripts.voicemail import Trimmed, trim_voicemail
from call_router.flows.schema import RequestsNode, RouteNode, TransferNode, VoicemailNode
from call_router.routing import clean_choice


class HandoffNodes(Playback):
    """`route`, `requests`, `voicemail` and `transfer`: where the caller leaves the menu for."""

    async def _route(self, node: RouteNode) -> None:
        """The caller's queue, decided; the node's announcement is played by the engine once
        the step is recorded (engine.py `_run`)."""
        await self._route_to(node.queue, node.intent, node.priority, None)

    async def _route_to(
        self,
        flow_queue: str,
        intent: str | None,
        priority: int | None,
        prompt: str | None,
    ) -> None:
        state = self.state
        choice = state.choice or None
        queue = flow_queue
        if self.rt.tenants is not None:
            queue = self.rt.tenants.queue_for(self.tenant.tenant_id, flow_queue)
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
        await set_route(
            self.agi, self.ctx, queue=queue, intent=intent, choice=choice, priority=priority
        )
        state.result, state.queue = "routed", queue
        if prompt:
            await self.play(prompt, "")

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
        # Only the call's own company's: a phone may have requests with several (a family, a
        # resident who moved), and another company's are neither read out to this call nor a
        # way into that company's own queues (found by a tenant review, 2026-12-06).
        found = [r for r in found or () if r.tenant_id == self.tenant.tenant_id]
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
            await self._act(desk.link_call, self.ctx.linkedid, request.number)
        await self._route_to(request.queue, "service_request", None, node.prompt)
        return None, {"requests": numbers, "key": key, "request": request.number}

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
            await self._act(
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
