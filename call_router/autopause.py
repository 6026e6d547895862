"""Auto-pause policy: pause an operator after N consecutive rings they did not answer.

Pure logic, no I/O: the router feeds it queue events and applies what it returns. Asterisk's own
`autopause` pauses on the very first miss, which is too eager for operators who sometimes take a
second to reach the headset; the count here is configurable (0 disables it).

What counts:
- a ring that timed out (AgentRingNoAnswer) is a miss, in any queue: an operator who is away
  misses calls from every queue they serve, so the count is per operator, not per queue;
- an answered call (AgentConnect) resets the count;
- a pause or unpause of the operator (by anyone) resets it too: after a break they start fresh,
  and an operator we have just paused does not get paused again by rings still in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PauseDecision:
    member: str  # the queue member's interface, e.g. PJSIP/1001
    missed: int
    reason: str


def pause_reason(missed: int) -> str:
    return f"auto: missed {missed} rings" if missed != 1 else "auto: missed 1 ring"


@dataclass
class AutoPausePolicy:
    threshold: int
    _missed: dict[str, int] = field(default_factory=dict)

    def missed_ring(self, member: str, *, paused: bool = False) -> PauseDecision | None:
        """One unanswered ring of `member`; a decision to pause it when the count is reached."""
        if self.threshold <= 0 or paused:
            # Already paused (a ring can still be in flight when the pause lands): no double pause.
            return None
        count = self._missed.get(member, 0) + 1
        if count >= self.threshold:
            # Reset now: the pause itself is the consequence, the next count starts after it.
            self._missed.pop(member, None)
            return PauseDecision(member, count, pause_reason(count))
        self._missed[member] = count
        return None

    def answered(self, member: str) -> None:
        self._missed.pop(member, None)

    def pause_changed(self, member: str) -> None:
        self._missed.pop(member, None)

    def removed(self, member: str) -> None:
        self._missed.pop(member, None)

    def missed(self, member: str) -> int:
        return self._missed.get(member, 0)
