"""Who is called back first, by when, how often, and never at night. Pure: no I/O.

Every function takes plain values and an explicit `now` (the caller's clock), so the rules are
unit-tested without a database, and the list, the API and the escalation job agree on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from enum import IntEnum, StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_

from call_router.numbers import ANONYMOUS, normalize_number

# --- vocabulary ---------------------------------------------------------------------------


class Outcome(StrEnum):
    """What an operator (or the dialler) reports after calling a resident back."""

    REACHED = "reached"  # talked to the resident, the request is handled: entry resolved
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    WRONG_NUMBER = "wrong_number"  # nobody there wanted us: closed, never retried
    RETRY = "retry"  # talked, but call again at a time agreed with the resident


# Outcomes that count as a failed try and go through the retry policy.
FAILED_TRIES = frozenset({Outcome.NO_ANSWER, Outcome.BUSY})
# Outcomes that close the entry for good.
CLOSING = frozenset({Outcome.REACHED, Outcome.WRONG_NUMBER})

EMERGENCY = "emergency"
DEFAULT_CATEGORY = "default"
# Reasons (sources of entries) that matter for the category.
REASON_VOICEMAIL = "voicemail"
REASON_VIRTUAL_HOLD = "virtual_hold"

# Problems where people are in danger or property is being damaged right now. The keypad menu
# only knows broad intents; the speech/flow engine may report the specific ones.
EMERGENCY_INTENTS = frozenset(
    {"flooding", "water_flooding", "lift_stuck", "people_stuck", "gas", "gas_leak", "fire"}
)
# A heating complaint while it freezes outside is an emergency (pipes burst, people freeze).
HEATING_INTENTS = frozenset({"heating", "no_heating", "heating_outage"})
# Menu queues → the category whose deadline applies when no intent was recorded.
_QUEUE_CATEGORY = {"plumbing": "water"}


class Priority(IntEnum):
    """Higher is called first."""

    NORMAL = 0
    REPEAT_CALLER = 1
    EMERGENCY = 2


# --- priority and deadline ------------------------------------------------------------------


def is_frost(now_local: datetime, frost_months: Iterable[int]) -> bool:
    return now_local.month in set(frost_months)


def category(intent: str | None, reason: str | None, queue: str | None, *, frost: bool) -> str:
    """The deadline category: `emergency`, the intent (`heating`, `lift`, …) or `default`."""
    if intent in EMERGENCY_INTENTS or (frost and intent in HEATING_INTENTS):
        return EMERGENCY
    if intent:
        return intent
    if queue == "heating" and frost:
        return EMERGENCY
    if queue:
        return _QUEUE_CATEGORY.get(queue, queue)
    if reason == REASON_VOICEMAIL:
        return REASON_VOICEMAIL
    return DEFAULT_CATEGORY


def priority(category_name: str, missed_calls: int) -> Priority:
    """Emergencies first, then residents who tried more than once, then everyone else."""
    if category_name == EMERGENCY:
        return Priority.EMERGENCY
    if missed_calls > 1:
        return Priority.REPEAT_CALLER
    return Priority.NORMAL


def deadline_minutes(category_name: str, deadlines: Mapping[str, int]) -> int:
    return deadlines.get(category_name, deadlines.get(DEFAULT_CATEGORY, 120))


def due_at(first_missed_at: datetime, category_name: str, deadlines: Mapping[str, int]) -> datetime:
    """The promise to the resident runs from the first missed call, not the latest one."""
    return first_missed_at + timedelta(minutes=deadline_minutes(category_name, deadlines))


@dataclass(frozen=True)
class ListItem:
    """What ordering needs to know about an open entry."""

    id: int
    priority: int
    due_at: datetime | None
    created_at: datetime
    next_attempt_at: datetime | None = None


def order_key(item: ListItem, now: datetime) -> tuple[int, int, datetime, datetime, int]:
    """Callable now before waiting for a retry; then priority; then earliest due; then oldest."""
    waiting = item.next_attempt_at is not None and item.next_attempt_at > now
    due = item.due_at or item.created_at
    return (int(waiting), -item.priority, due, item.created_at, item.id)


def ordered(items: Iterable[ListItem], now: datetime) -> list[ListItem]:
    return sorted(items, key=lambda item: order_key(item, now))


def is_overdue(due: datetime | None, now: datetime) -> bool:
    """Past its deadline. `overdue_condition` below is the same rule for SQL queries."""
    return due is not None and now > due


def overdue_condition(due: Any, now: datetime) -> ColumnElement[bool]:
    """`is_overdue` as a SQL condition on a deadline column (a query builds it, runs nothing):
    the wallboard's count and the escalation job's pick agree with the list's mark."""
    return and_(due.is_not(None), due < now)


# --- retries and quiet hours ------------------------------------------------------------------


@dataclass(frozen=True)
class RetryDecision:
    """After a failed try: give up (`give_up`), or call again not before `at`."""

    give_up: bool
    at: datetime | None


def retry_after_failure(
    failed_tries: int, now: datetime, *, delays: Sequence[int], max_attempts: int
) -> RetryDecision:
    """`failed_tries` counts the try that just failed. Delays are seconds; the last one repeats."""
    if failed_tries >= max_attempts:
        return RetryDecision(give_up=True, at=None)
    if not delays:
        return RetryDecision(give_up=False, at=now)
    delay = delays[min(failed_tries - 1, len(delays) - 1)] if failed_tries > 0 else delays[0]
    return RetryDecision(give_up=False, at=now + timedelta(seconds=delay))


def parse_hhmm(value: str) -> time:
    hours, _, minutes = value.strip().partition(":")
    return time(int(hours), int(minutes or 0))


@dataclass(frozen=True)
class QuietHours:
    """Local times between which residents are not called; the window may span midnight."""

    start: time
    end: time
    zone: tzinfo

    @classmethod
    def parse(cls, start: str, end: str, zone: tzinfo) -> QuietHours:
        return cls(parse_hhmm(start), parse_hhmm(end), zone)

    def is_quiet(self, at: datetime) -> bool:
        if self.start == self.end:  # an empty window: calls allowed all day
            return False
        local = at.astimezone(self.zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_allowed(self, at: datetime) -> datetime:
        """`at` itself if calls are allowed then, else the end of this quiet period."""
        if not self.is_quiet(at):
            return at
        local = at.astimezone(self.zone)
        end_today = datetime.combine(local.date(), self.end, tzinfo=self.zone)
        # Past the end time today means the window started today and ends tomorrow.
        # Aware datetimes with a zoneinfo keep the wall time across + timedelta and take that
        # date's UTC offset, so a DST change inside the window is handled.
        return end_today if local.time() < self.end else end_today + timedelta(days=1)


def may_call_now(
    now: datetime, quiet: QuietHours, next_attempt_at: datetime | None
) -> tuple[bool, str | None]:
    """Whether a call-back may be dialled now; the reason if not."""
    if quiet.is_quiet(now):
        return False, "quiet_hours"
    if next_attempt_at is not None and next_attempt_at > now:
        return False, "retry_not_due"
    return True, None


# --- numbers ---------------------------------------------------------------------------------


def caller_key(raw: str | None, country: str = "RU") -> str | None:
    """One key per resident (`+7 495…`, `8 495…` and `495…` are one); None for anonymous."""
    number = normalize_number(raw, country)
    return None if number == ANONYMOUS else number


# --- virtual hold ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldCallback:
    """A virtual-hold request: the caller left the queue at `placed_at` and keeps that place."""

    id: int
    queue: str
    placed_at: datetime


@dataclass(frozen=True)
class LiveCaller:
    """A caller still waiting in a queue (AMI QueueStatus/QueueEntry): joined at `joined_at`
    (now − Wait); `priority` > 0 when the dialplan raised them (an emergency, an overflow)."""

    queue: str
    joined_at: datetime
    priority: int = 0


def release_virtual_hold(
    held: Iterable[HeldCallback],
    free_operators: Mapping[str, int],
    in_progress: Mapping[str, int] | None = None,
    live: Iterable[LiveCaller] = (),
) -> list[HeldCallback]:
    """Which held callbacks to dial now.

    Per queue, held and live callers stand in one line by the time they joined it (a live
    caller Asterisk raised with a priority stands before every held one, as in the queue); the
    first `free − in_progress` places of that line are served now: the live ones by Asterisk,
    the held ones here. So a held caller is dialled only when fewer operators are needed by
    callers ahead of them than are free, never more callbacks than free operators, and a
    held caller who joined before every live caller takes the next free operator."""
    in_progress = in_progress or {}
    by_queue: dict[str, list[HeldCallback]] = {}
    for item in held:
        by_queue.setdefault(item.queue, []).append(item)
    lives: dict[str, list[LiveCaller]] = {}
    for caller in live:
        lives.setdefault(caller.queue, []).append(caller)
    released: list[HeldCallback] = []
    for queue, items in by_queue.items():
        slots = max(0, free_operators.get(queue, 0) - in_progress.get(queue, 0))
        items.sort(key=lambda item: (item.placed_at, item.id))
        for taken, item in enumerate(items):
            # Ties go to the held caller: it joined in that same second and was waiting first.
            ahead = sum(
                1
                for caller in lives.get(queue, ())
                if caller.priority > 0 or caller.joined_at < item.placed_at
            )
            if ahead + taken >= slots:
                break  # later held callers have at least as many callers ahead of them
            released.append(item)
    released.sort(key=lambda item: (item.placed_at, item.id))
    return released
