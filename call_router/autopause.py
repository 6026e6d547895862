"""Auto-pause policy: pause an operator after N consecutive rings they did not answer.

Pure logic, no I/O: the router counts the misses (call_router/missed_rings.py keeps the count in
the database, so a router restart does not forget it) and asks here what to do. Asterisk's own
`autopause` pauses on the very first miss, which is too eager for operators who sometimes take a
second to reach the headset; the count here is configurable (0 disables it).

What counts:
- a ring that timed out (AgentRingNoAnswer) is a miss, in any queue: an operator who is away
  misses calls from every queue they serve, so the count is per operator, not per queue;
- an answered call (AgentConnect) resets the count;
- a pause or unpause of the operator (by anyone) resets it too: after a break they start fresh,
  and an operator we have just paused does not get paused again by rings still in flight;
- the pause itself resets it: the next count starts after it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PauseDecision:
    member: str  # the queue member's interface, e.g. PJSIP/1001
    missed: int
    reason: str


def pause_reason(missed: int) -> str:
    return f"auto: missed {missed} rings" if missed != 1 else "auto: missed 1 ring"


@dataclass(frozen=True)
class AutoPausePolicy:
    threshold: int

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    def decide(self, member: str, missed: int, *, paused: bool = False) -> PauseDecision | None:
        """`missed` consecutive misses of `member` so far (this one included): pause it?"""
        if not self.enabled or paused or missed < self.threshold:
            # Already paused (a ring can still be in flight when the pause lands): no double pause.
            return None
        return PauseDecision(member, missed, pause_reason(missed))
