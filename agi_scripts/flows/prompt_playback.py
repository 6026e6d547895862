"""How the engine speaks: prompt files (the tenant's own first), playback, numbers, times, a key."""

from __future__ import annotations

from datetime import datetime

from agi_scripts.agi_protocol import AgiError, digit_from_code, quote_argument
from agi_scripts.flows.engine_core import EngineCore
from call_router.flows.schema import REPEAT_KEY, AskNode, MenuNode
from call_router.flows.tenant_menus import tenant_prompt_path


class Playback(EngineCore):
    """Prompts and what Asterisk says by itself, a missing file never fatal to the call."""

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

    def _menu_keys(self, node_id: str) -> str:
        """The keys that may cut short a prompt leading to `node_id`: its choices and `*`."""
        node = self.flow.nodes.get(node_id)
        if isinstance(node, MenuNode):
            return "".join(node.options) + REPEAT_KEY
        if isinstance(node, AskNode):
            return "".join(c.key for c in node.choices.values() if c.key) + REPEAT_KEY
        return ""

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
