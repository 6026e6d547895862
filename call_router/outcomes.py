"""How a finished call ended, from plain facts. Pure: no I/O, unit-tested with plain values.

The call log gathers the facts from the AGI server and Asterisk events; this module only
decides. Keep the vocabulary here so the dashboard, reports and callbacks agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ANSWERED = "answered"
ABANDONED_IN_QUEUE = "abandoned_in_queue"
ABANDONED_IN_MENU = "abandoned_in_menu"
VOICEMAIL = "voicemail"
QUEUE_TIMEOUT = "queue_timeout"
QUEUE_FULL = "queue_full"
NO_AGENTS = "no_agents"
AFTER_HOURS = "after_hours"
# The caller pressed 1 in a queue (virtual hold) and was put on the callback list.
CALLBACK_REQUESTED = "callback_requested"
# Asterisk went away (crash, kill, restart) while the call was in progress.
DROPPED = "dropped"

OUTCOMES = (
    ANSWERED,
    ABANDONED_IN_QUEUE,
    ABANDONED_IN_MENU,
    VOICEMAIL,
    QUEUE_TIMEOUT,
    QUEUE_FULL,
    NO_AGENTS,
    AFTER_HOURS,
    CALLBACK_REQUESTED,
    DROPPED,
)
# Outcomes where a resident wanted an operator and did not get one: callback candidates.
MISSED_OUTCOMES = frozenset({ABANDONED_IN_QUEUE, QUEUE_TIMEOUT, QUEUE_FULL, NO_AGENTS})

BY_CALLER = "caller"
BY_AGENT = "agent"
BY_SYSTEM = "system"
# A supervisor ended the call (call_router/call_control/): the timeline names who.
BY_SUPERVISOR = "supervisor"

# app_queue's QUEUESTATUS values when Queue() returns without an operator.
_QUEUE_STATUS_OUTCOME = {
    "TIMEOUT": QUEUE_TIMEOUT,
    "FULL": QUEUE_FULL,
    "JOINEMPTY": NO_AGENTS,
    "LEAVEEMPTY": NO_AGENTS,
    "JOINUNAVAIL": NO_AGENTS,
    "LEAVEUNAVAIL": NO_AGENTS,
}
# AgentComplete's Reason: who ended the conversation.
_COMPLETE_REASON_BY = {"caller": BY_CALLER, "agent": BY_AGENT, "transfer": BY_AGENT}


@dataclass(frozen=True)
class CallFacts:
    """What is known about a call when it ends. Every field may be missing."""

    started_at: datetime
    ended_at: datetime
    queue_joined_at: datetime | None = None
    # When the caller left the last queue without an operator (timeout, full, abandon).
    queue_left_at: datetime | None = None
    answered_at: datetime | None = None
    abandoned_in_queue: bool = False
    queue_status: str | None = None
    voicemail: bool = False
    after_hours: bool = False
    callback_requested: bool = False
    # AgentComplete's Reason (caller/agent/transfer) and TalkTime, when Asterisk sent them.
    complete_reason: str | None = None
    talk_time: int | None = None
    # True when the router closed the call itself (channel gone while it was disconnected).
    reconciled: bool = False
    # True when the call was cut because Asterisk itself went away (see ami_listener.py).
    dropped: bool = False
    # A supervisor ended it from the dashboard or the CLI (call_router/call_control/).
    ended_by_supervisor: bool = False


@dataclass(frozen=True)
class CallSummary:
    outcome: str
    wait_seconds: int | None
    talk_seconds: int | None
    hangup_by: str


def summarize(facts: CallFacts) -> CallSummary:
    outcome = derive_outcome(facts)
    return CallSummary(
        outcome=outcome,
        wait_seconds=wait_seconds(facts),
        talk_seconds=talk_seconds(facts),
        hangup_by=hangup_by(facts, outcome),
    )


def derive_outcome(facts: CallFacts) -> str:
    if facts.dropped:
        return DROPPED
    if facts.answered_at is not None:
        return ANSWERED
    if facts.voicemail:
        return VOICEMAIL
    if facts.after_hours:
        return AFTER_HOURS
    if facts.callback_requested:
        return CALLBACK_REQUESTED
    if facts.abandoned_in_queue:
        return ABANDONED_IN_QUEUE
    status_outcome = _QUEUE_STATUS_OUTCOME.get((facts.queue_status or "").upper())
    if status_outcome is not None:
        return status_outcome
    if facts.queue_joined_at is not None:
        # In a queue, no operator, no abandon event seen (e.g. the router missed it): the
        # caller was still waiting when the call ended, which is an abandon.
        return ABANDONED_IN_QUEUE
    return ABANDONED_IN_MENU


def wait_seconds(facts: CallFacts) -> int | None:
    """Queue join → operator answer, or → leaving the queue / end of call."""
    if facts.queue_joined_at is None:
        return None
    until = facts.answered_at or facts.queue_left_at or facts.ended_at
    return _seconds(facts.queue_joined_at, until)


def talk_seconds(facts: CallFacts) -> int | None:
    if facts.answered_at is None:
        return None
    if facts.talk_time is not None and facts.talk_time >= 0:
        return facts.talk_time
    return _seconds(facts.answered_at, facts.ended_at)


def hangup_by(facts: CallFacts, outcome: str) -> str:
    if facts.ended_by_supervisor and outcome != DROPPED:
        return BY_SUPERVISOR
    if facts.reconciled or outcome == DROPPED:
        return BY_SYSTEM
    if outcome == ANSWERED:
        return _COMPLETE_REASON_BY.get((facts.complete_reason or "").lower(), BY_CALLER)
    if outcome in (ABANDONED_IN_QUEUE, ABANDONED_IN_MENU, VOICEMAIL, CALLBACK_REQUESTED):
        return BY_CALLER
    # Timeout, full queue, no operators, after hours: the system ended the attempt.
    return BY_SYSTEM


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds()))
