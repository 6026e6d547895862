"""Nodes that take the caller's input: keypad menus, spoken questions with confirmation, digits."""

from __future__ import annotations

from typing import Any

from agi_scripts.agi_protocol import AgiError, CallerHangup, printable
from agi_scripts.flows.prompt_playback import Playback
from call_router.flows.conditions import luhn_ok
from call_router.flows.schema import REPEAT_KEY, AskNode, CollectNode, MenuNode
from call_router.routing import clean_choice

CONFIRM_YES = "1"


class InputNodes(Playback):
    """`menu`, `ask` and `collect`: what the caller chose or keyed, with retries."""

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
            # Cut one past the node's own maximum, not the menus' choice length: an over-long
            # entry must still be seen as too long.
            digits = clean_choice(raw, node.max_length + 1).rstrip("#")
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
