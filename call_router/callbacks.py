"""The callback list: residents who wanted an operator and did not get one.

One open entry per (tenant, caller number) (a partial unique index enforces it, migration
0017); later misses of the same number with the same tenant attach to that entry instead of
adding rows. Operators claim an entry (an atomic
conditional UPDATE, so two operators never hold the same one), call the resident back and
report the outcome; every step is written to the entry's history (`callback_attempts`).
The rules (priority, deadlines, retries, quiet hours) live in call_router/callback_policy.py.

This module holds what every step shares (errors, rules, the change journal, row helpers);
the steps: callback_intake.py (entries come in), callback_list.py (the operators' list,
escalation), callback_claims.py (claims and outcomes), callback_dialing.py (calling back).

Functions take the caller's session so they join its transaction, and an explicit `now`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.orm import Session

from call_router import callback_policy as policy
from call_router.callback_models import CallbackAttempt
from call_router.dial_plan import DialPlan
from call_router.models import CALLBACK_OPEN, Callback
from call_router.settings import Settings

CALLBACK_CLOSED = "closed"
# Where a session keeps the changes it made to the list until they are committed (and then
# published live: call_router/live_state.py `CallbackPublisher`).
CHANGES_KEY = "hotline_callback_changes"


class CallbackError(Exception):
    """A refused operation; `code` is stable (the API returns it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CallbackChange:
    """One step in an entry's history (created, claimed, released, outcome, escalated, ...)."""

    callback_id: int
    action: str
    operator: str | None


def take_changes(session: Session) -> list[CallbackChange]:
    """The changes this session recorded since the last take (forgotten on rollback by the
    publisher; nothing here does I/O)."""
    changes: list[CallbackChange] = session.info.pop(CHANGES_KEY, [])
    return changes


@dataclass(frozen=True)
class CallbackRules:
    """The settings the callback rules need, handed in (tests build their own)."""

    deadlines: Mapping[str, int]
    frost_months: frozenset[int]
    quiet: policy.QuietHours
    claim_timeout: int
    max_attempts: int
    retry_delays: tuple[int, ...]
    country: str = "RU"
    # Where a call-back may dial; None: the national plan of `country` (dial_plan.py).
    dial_plan: DialPlan | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> CallbackRules:
        zone = hotline_zone(settings)
        return cls(
            deadlines=dict(settings.callback_deadlines),
            frost_months=frozenset(settings.callback_frost_months),
            quiet=policy.QuietHours.parse(
                settings.callback_quiet_start, settings.callback_quiet_end, zone
            ),
            claim_timeout=settings.callback_claim_timeout,
            max_attempts=settings.callback_max_attempts,
            retry_delays=tuple(settings.callback_retry_delays),
            country=settings.country_code,
            dial_plan=DialPlan.from_settings(settings),
        )

    @property
    def plan(self) -> DialPlan:
        return self.dial_plan or DialPlan.national(self.country)

    @property
    def zone(self) -> tzinfo:
        return self.quiet.zone


def hotline_zone(settings: Settings) -> tzinfo:
    if settings.timezone:
        return ZoneInfo(settings.timezone)
    local = datetime.now().astimezone().tzinfo
    return local if local is not None else ZoneInfo("UTC")


_default_rules: CallbackRules | None = None


def default_rules() -> CallbackRules:
    """For writers that were not handed rules (the call log): the process's settings, once."""
    global _default_rules
    if _default_rules is None:
        _default_rules = CallbackRules.from_settings(Settings())
    return _default_rules


# --- internals ------------------------------------------------------------------------------


def checked_operator(login: str) -> str:
    login = login.strip()
    if not login or len(login) > 64:
        raise CallbackError("bad_operator", "operator login must be 1-64 characters")
    return login


def claim_live(entry: Callback, now: datetime) -> bool:
    return entry.claimed_by is not None and (
        entry.claimed_until is None or entry.claimed_until > now
    )


def get_entry(session: Session, callback_id: int) -> Callback:
    entry = session.get(Callback, callback_id)
    if entry is None:
        raise CallbackError("not_found", f"no callback {callback_id}")
    return entry


def close_entry(
    session: Session,
    callback_id: int,
    now: datetime,
    *,
    note: str,
    outcome: policy.Outcome | None,
    operator: str | None,
) -> int:
    values: dict[str, Any] = {
        "status": CALLBACK_CLOSED,
        "closed_at": now,
        "updated_at": now,
        "note": note,
        "claimed_by": None,
        "claimed_until": None,
        "next_attempt_at": None,
    }
    if outcome is not None:
        values["last_outcome"] = outcome.value
    if operator is not None and outcome == policy.Outcome.REACHED:
        values["resolved_by"] = operator
    result = session.execute(
        update(Callback)
        .where(Callback.id == callback_id, Callback.status == CALLBACK_OPEN)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    entry = session.get(Callback, callback_id)
    if entry is not None:
        session.refresh(entry)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def rank_entry(entry: Callback, rules: CallbackRules, now: datetime) -> None:
    """Category, priority and deadline from what is known now (a repeat call may raise them)."""
    frost = policy.is_frost(now.astimezone(rules.zone), rules.frost_months)
    entry.category = policy.category(entry.intent, entry.reason, entry.queue, frost=frost)
    entry.priority = int(policy.priority(entry.category, entry.attempts))
    due = policy.due_at(entry.created_at, entry.category, rules.deadlines)
    # A deadline only ever moves earlier (an emergency reported later tightens it).
    entry.due_at = min(due, entry.due_at) if entry.due_at is not None else due


def record_history(
    session: Session,
    callback_id: int,
    action: str,
    at: datetime,
    *,
    operator: str | None = None,
    outcome: str | None = None,
    call_id: int | None = None,
    note: str | None = None,
    data: dict[str, Any] | None = None,
    by: str | None = None,
) -> None:
    """One history row. `by`: who did it, when that is not `operator` themself (a supervisor
    acting for them) or there is no operator (kept in `data`, the table is unchanged)."""
    data = dict(data or {})
    if by is not None:
        data["by"] = by
    session.add(
        CallbackAttempt(
            callback_id=callback_id,
            at=at,
            action=action,
            operator=operator,
            outcome=outcome,
            call_id=call_id,
            note=note,
            data=data,
        )
    )
    session.flush()
    session.info.setdefault(CHANGES_KEY, []).append(
        CallbackChange(callback_id=callback_id, action=action, operator=operator)
    )


def of_tenant(tenant_id: int | None) -> Any:
    return Callback.tenant_id.is_(None) if tenant_id is None else Callback.tenant_id == tenant_id
