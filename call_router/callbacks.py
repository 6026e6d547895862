"""The callback list: residents who wanted an operator and did not get one.

One open entry per (tenant, caller number) (a partial unique index enforces it, migration
0017); later misses of the same number with the same tenant attach to that entry instead of
adding rows. Operators claim an entry (an atomic
conditional UPDATE, so two operators never hold the same one), call the resident back and
report the outcome; every step is written to the entry's history (`callback_attempts`).
The rules (priority, deadlines, retries, quiet hours) live in call_router/callback_policy.py.

Functions take the caller's session so they join its transaction, and an explicit `now`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from call_router import callback_policy as policy
from call_router.callback_models import (
    ACTION_ATTACHED,
    ACTION_CALL_ENDED,
    ACTION_CALL_STARTED,
    ACTION_CLAIMED,
    ACTION_CLOSED,
    ACTION_CREATED,
    ACTION_ESCALATED,
    ACTION_OUTCOME,
    ACTION_RELEASED,
    CallbackAttempt,
)
from call_router.dial_plan import DialPlan
from call_router.models import CALLBACK_OPEN, Call, Callback, CallEvent
from call_router.numbers import is_anonymous, normalize_number
from call_router.settings import Settings

CALLBACK_CLOSED = "closed"
# The call log's mark on a missed call that got no entry (withheld number); see call_log.py.
EVENT_CALLBACK_SKIPPED = "callback_skipped"

# Timeline kinds of an outbound (click-to-call) call in the call log.
EVENT_OUTBOUND = "callback_call"  # written when the call is placed: data {callback_id, operator}
# The linkedid of a call an operator places to a resident (click-to-call): not an arrival.
OUTBOUND_LINKEDID_PREFIX: Final = "cb-"
EVENT_DIAL_BEGIN = "callback_dial"  # the operator answered; the resident's leg rings
EVENT_DIAL_END = "callback_dial_end"  # data {status: DIALSTATUS}
# Call-log outcomes of outbound calls (the inbound vocabulary is in call_router/outcomes.py).
OUT_ANSWERED = "callback_answered"
OUT_NO_ANSWER = "callback_no_answer"
OUT_BUSY = "callback_busy"
OUT_FAILED = "callback_failed"
OUT_OPERATOR_MISSED = "callback_operator_no_answer"
# Asterisk DIALSTATUS → the outcome the dialler reports by itself (the resident never spoke).
_DIALSTATUS_OUTCOME = {
    "NOANSWER": policy.Outcome.NO_ANSWER,
    "BUSY": policy.Outcome.BUSY,
    "CONGESTION": policy.Outcome.NO_ANSWER,
    "CHANUNAVAIL": policy.Outcome.NO_ANSWER,
}
# A click-to-call that never reported its end (router down) stops blocking the entry after this.
ACTIVE_CALL_STALE = timedelta(minutes=15)
# Where a session keeps the changes it made to the list until they are committed (and then
# published live: call_router/live_state.py `CallbackPublisher`).
CHANGES_KEY = "hotline_callback_changes"

log = structlog.get_logger(__name__)


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


# --- entries come in ---------------------------------------------------------------------


def open_or_attach(
    session: Session,
    *,
    caller_number: str,
    reason: str,
    queue: str | None,
    call_id: int | None,
    now: datetime,
    intent: str | None = None,
    placed_at: datetime | None = None,
    rules: CallbackRules | None = None,
) -> Callback | None:
    """The number's open entry, created or with this miss attached; None for anonymous callers.

    Replaying the same call (same call_id) does not count a second attempt. `intent` defaults
    to the call's recorded intent; `placed_at` (virtual hold) is the caller's place in the queue.
    """
    rules = rules or default_rules()
    # Writers may pass any spelling (8 495…, +7 495…): one resident, one key (E.164).
    caller_number = normalize_number(caller_number, rules.country)
    if is_anonymous(caller_number):
        log.info("callback_skipped_anonymous", call_id=call_id, reason=reason)
        return None
    # The entry belongs to the call's tenant (call_router/tenants.py); no call: the centre's.
    tenant_id: int | None = None
    if call_id is not None:
        row = session.execute(select(Call.intent, Call.tenant_id).where(Call.id == call_id)).first()
        if row is not None:
            intent = intent if intent is not None else row.intent
            tenant_id = row.tenant_id
    existing = _open_entry(session, caller_number, tenant_id)
    if existing is None:
        created = _try_create(
            session, caller_number, reason, queue, call_id, now, intent, placed_at, rules, tenant_id
        )
        if created is not None:
            return created
        # Another process opened the entry between our read and insert: attach to theirs.
        existing = _open_entry(session, caller_number, tenant_id)
        if existing is None:  # it was closed again in between; nothing sane left to do
            return _try_create(
                session,
                caller_number,
                reason,
                queue,
                call_id,
                now,
                intent,
                placed_at,
                rules,
                tenant_id,
            )
    if call_id is not None and existing.last_call_id == call_id:
        return existing
    if placed_at is not None and existing.placed_at is not None:
        # Pressing 1 again in a later call keeps the place the resident already holds.
        placed_at = min(placed_at, existing.placed_at)
    # A promise to call back in the caller's place (virtual hold) stands, whatever the
    # resident's later calls did (an abandon does not move it to the operators' list).
    kept_reason = existing.reason if existing.reason == policy.REASON_VIRTUAL_HOLD else reason
    # attempts + 1 in SQL, so two concurrent attaches both count.
    session.execute(
        update(Callback)
        .where(Callback.id == existing.id)
        .values(
            attempts=Callback.attempts + 1,
            updated_at=now,
            last_call_id=call_id,
            reason=kept_reason,
            queue=queue if queue is not None else Callback.queue,
            intent=intent if intent is not None else Callback.intent,
            placed_at=placed_at if placed_at is not None else Callback.placed_at,
        )
    )
    session.refresh(existing)
    _rank(existing, rules, now)
    _history(session, existing.id, ACTION_ATTACHED, now, call_id=call_id, data={"reason": reason})
    return existing


def check_dialable(entry: Callback, rules: CallbackRules) -> None:
    """Raise CallbackError("number_refused") for a number outside the dial-out plan (checked
    again at each dial: the plan in force now decides, not the one at creation)."""
    refusal = rules.plan.refusal(entry.caller_number)
    if refusal is not None:
        raise CallbackError(
            "number_refused",
            f"callback {entry.id}: {entry.caller_number} is outside the dial-out plan ({refusal})",
        )


def close_for_number(
    session: Session,
    number: str,
    reason: str,
    now: datetime,
    *,
    tenant_id: int | None = None,
) -> int:
    """Close the number's open entry with `tenant_id` (None: the centre's), e.g. the resident
    later reached that tenant's operator; the number's entries with other tenants stay open."""
    if is_anonymous(number):
        return 0
    ids = list(
        session.scalars(
            select(Callback.id).where(
                Callback.caller_number == number,
                Callback.status == CALLBACK_OPEN,
                _of_tenant(tenant_id),
            )
        )
    )
    closed = 0
    for entry_id in ids:
        closed += _close(session, entry_id, now, note=reason, outcome=None, operator=None)
        _history(session, entry_id, ACTION_CLOSED, now, note=reason)
    return closed


# --- the operators' list -------------------------------------------------------------------


def list_callbacks(
    session: Session, status: str | None = None, *, now: datetime | None = None
) -> Sequence[Callback]:
    """Open entries in calling order (callback_policy.order_key); other statuses newest first."""
    query = select(Callback)
    if status is not None:
        query = query.where(Callback.status == status)
    if status != CALLBACK_OPEN:
        return session.scalars(query.order_by(Callback.updated_at.desc(), Callback.id.desc())).all()
    rows = {row.id: row for row in session.scalars(query)}
    items = [
        policy.ListItem(row.id, row.priority, row.due_at, row.created_at, row.next_attempt_at)
        for row in rows.values()
    ]
    return [rows[item.id] for item in policy.ordered(items, now or datetime.now().astimezone())]


def get_callback(session: Session, callback_id: int) -> Callback | None:
    return session.get(Callback, callback_id)


def history(session: Session, callback_id: int) -> list[CallbackAttempt]:
    return list(
        session.scalars(
            select(CallbackAttempt)
            .where(CallbackAttempt.callback_id == callback_id)
            .order_by(CallbackAttempt.at, CallbackAttempt.id)
        )
    )


def summary(session: Session, now: datetime, since: datetime) -> dict[str, int]:
    """Counters for the supervisor: open, overdue, emergencies, claimed, being dialled, and
    missed calls `since` with a withheld number (no entry possible, but they count)."""
    rows = session.scalars(select(Callback).where(Callback.status == CALLBACK_OPEN)).all()
    anonymous = session.scalar(
        select(func.count())
        .select_from(CallEvent)
        # Through the call: behind a tenant wall, only its own calls count.
        .join(Call, Call.id == CallEvent.call_id)
        .where(CallEvent.kind == EVENT_CALLBACK_SKIPPED, CallEvent.at >= since)
    )
    return {
        "open": len(rows),
        "overdue": sum(1 for row in rows if policy.is_overdue(row.due_at, now)),
        "emergency": sum(1 for row in rows if row.priority == policy.Priority.EMERGENCY),
        "claimed": sum(1 for row in rows if _claim_live(row, now)),
        "dialling": sum(1 for row in rows if row.active_call_id is not None),
        "anonymous_missed": int(anonymous or 0),
    }


# --- claims ------------------------------------------------------------------------------


def claim(
    session: Session,
    callback_id: int,
    operator: str,
    now: datetime,
    *,
    timeout: int,
    by: str | None = None,
) -> Callback:
    """Take the entry for `timeout` seconds (again, for its holder: extends the claim).

    One conditional UPDATE decides: of two operators claiming at once, the database lets
    exactly one row change, so exactly one wins. Raises CallbackError otherwise.
    """
    operator = _operator(operator)
    result = session.execute(
        update(Callback)
        .where(
            Callback.id == callback_id,
            Callback.status == CALLBACK_OPEN,
            or_(
                Callback.claimed_by.is_(None),
                Callback.claimed_by == operator,
                Callback.claimed_until.is_(None),
                Callback.claimed_until <= now,
            ),
        )
        .values(claimed_by=operator, claimed_until=now + timedelta(seconds=timeout), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    entry = session.get(Callback, callback_id)
    if entry is not None:
        session.refresh(entry)
    if not result.rowcount:  # type: ignore[attr-defined]
        if entry is None:
            raise CallbackError("not_found", f"no callback {callback_id}")
        if entry.status != CALLBACK_OPEN:
            raise CallbackError("not_open", f"callback {callback_id} is {entry.status}")
        raise CallbackError("claimed", f"callback {callback_id} is claimed by {entry.claimed_by}")
    assert entry is not None
    _history(session, callback_id, ACTION_CLAIMED, now, operator=operator, by=by)
    return entry


def release(
    session: Session,
    callback_id: int,
    now: datetime,
    *,
    operator: str | None = None,
    by: str | None = None,
) -> Callback:
    """Give the entry back. With `operator`, only that operator's claim is released."""
    entry = _get(session, callback_id)
    mine = operator is None or entry.claimed_by in (None, _operator(operator))
    if not mine and _claim_live(entry, now):
        raise CallbackError("claimed", f"callback {callback_id} is claimed by {entry.claimed_by}")
    holder = entry.claimed_by
    entry.claimed_by = None
    entry.claimed_until = None
    entry.updated_at = now
    _history(session, callback_id, ACTION_RELEASED, now, operator=operator or holder, by=by)
    return entry


# --- calling back -------------------------------------------------------------------------


def start_call(
    session: Session,
    callback_id: int,
    operator: str,
    now: datetime,
    *,
    call_id: int,
    rules: CallbackRules,
    by: str | None = None,
) -> Callback:
    """Mark the entry as being dialled by `operator` (who must hold the claim) on `call_id`.

    Refused at night (quiet hours), before the retry time, and while another call-back of the
    same entry is in progress: a resident is never called twice at once.
    """
    operator = _operator(operator)
    entry = _get(session, callback_id)
    if entry.status != CALLBACK_OPEN:
        raise CallbackError("not_open", f"callback {callback_id} is {entry.status}")
    check_dialable(entry, rules)
    if entry.claimed_by != operator or not _claim_live(entry, now):
        raise CallbackError("not_claimed", f"claim callback {callback_id} before calling")
    allowed, why = policy.may_call_now(now, rules.quiet, entry.next_attempt_at)
    if not allowed:
        assert why is not None
        when = entry.next_attempt_at if why == "retry_not_due" else rules.quiet.next_allowed(now)
        raise CallbackError(why, f"not now: {why.replace('_', ' ')}; next at {when}")
    stale = now - ACTIVE_CALL_STALE
    result = session.execute(
        update(Callback)
        .where(
            Callback.id == callback_id,
            or_(
                Callback.active_call_id.is_(None),
                # The previous call-back ended, or never reported its end (router down).
                Callback.active_call_id.in_(
                    select(Call.id).where(or_(Call.ended_at.is_not(None), Call.started_at < stale))
                ),
            ),
        )
        .values(
            active_call_id=call_id,
            updated_at=now,
            # The call may take a while: keep the claim at least as long as it can ring.
            claimed_until=max(
                entry.claimed_until or now, now + timedelta(seconds=rules.claim_timeout)
            ),
        )
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise CallbackError("call_in_progress", f"callback {callback_id} is being dialled")
    session.refresh(entry)
    _history(
        session, callback_id, ACTION_CALL_STARTED, now, operator=operator, call_id=call_id, by=by
    )
    return entry


def record_outcome(
    session: Session,
    callback_id: int,
    outcome: policy.Outcome | str,
    now: datetime,
    *,
    rules: CallbackRules,
    operator: str | None = None,
    retry_at: datetime | None = None,
    note: str | None = None,
    call_id: int | None = None,
    by: str | None = None,
) -> Callback:
    """Apply an outcome: close (reached, wrong number, too many tries) or schedule the next try.

    The next try never falls into quiet hours. An operator other than the claim holder may not
    report while the claim is live.
    """
    outcome = policy.Outcome(outcome)
    entry = _get(session, callback_id)
    if entry.status != CALLBACK_OPEN:
        raise CallbackError("not_open", f"callback {callback_id} is {entry.status}")
    if operator is not None:
        operator = _operator(operator)
        if entry.claimed_by not in (None, operator) and _claim_live(entry, now):
            raise CallbackError(
                "claimed", f"callback {callback_id} is claimed by {entry.claimed_by}"
            )
    data: dict[str, Any] = {}
    entry.last_outcome = outcome.value
    entry.updated_at = now
    if outcome in policy.CLOSING:
        _close(
            session, entry.id, now, note=note or outcome.value, outcome=outcome, operator=operator
        )
    elif outcome in policy.FAILED_TRIES:
        entry.tries = (entry.tries or 0) + 1
        decision = policy.retry_after_failure(
            entry.tries, now, delays=rules.retry_delays, max_attempts=rules.max_attempts
        )
        if decision.give_up:
            _close(session, entry.id, now, note="unreachable", outcome=outcome, operator=operator)
            data["gave_up_after"] = entry.tries
        else:
            assert decision.at is not None
            entry.next_attempt_at = rules.quiet.next_allowed(decision.at)
            data["next_attempt_at"] = entry.next_attempt_at.isoformat()
    else:  # RETRY: the resident asked for another time; not a failed try
        wanted = retry_at or now + timedelta(
            seconds=rules.retry_delays[0] if rules.retry_delays else 0
        )
        if wanted.tzinfo is None:
            raise CallbackError("bad_time", "retry time needs a time zone")
        entry.next_attempt_at = rules.quiet.next_allowed(wanted)
        data["next_attempt_at"] = entry.next_attempt_at.isoformat()
    if entry.status == CALLBACK_OPEN:
        # The try is over: the entry goes back to the list for whoever is free when it is due.
        entry.claimed_by = None
        entry.claimed_until = None
    session.flush()
    session.refresh(entry)
    _history(
        session,
        entry.id,
        ACTION_OUTCOME,
        now,
        operator=operator,
        outcome=outcome.value,
        call_id=call_id,
        note=note,
        data=data,
        by=by,
    )
    return entry


def is_outbound_call(events: Sequence[CallEvent]) -> bool:
    return any(event.kind == EVENT_OUTBOUND for event in events)


def finish_outbound_call(
    session: Session, call: Call, events: Sequence[CallEvent], *, rules: CallbackRules | None = None
) -> None:
    """A click-to-call ended (the call log's finalize step): settle the call row and the entry.

    The resident not answering (or busy) is recorded on the entry by itself, as the operator
    would; an answered call waits for the operator's outcome (only they know if it is solved).
    """
    assert call.ended_at is not None
    rules = rules or default_rules()
    started = next(e for e in events if e.kind == EVENT_OUTBOUND)
    callback_id = int(started.data.get("callback_id") or 0)
    operator = started.data.get("operator")
    dial_begin = next((e for e in events if e.kind == EVENT_DIAL_BEGIN), None)
    dial_end = next((e for e in reversed(events) if e.kind == EVENT_DIAL_END), None)
    status = str(dial_end.data.get("status") or "") if dial_end is not None else ""
    call.operator = call.operator or (str(operator) if operator else None)
    if dial_begin is None:
        call.outcome = OUT_OPERATOR_MISSED
    elif status == "ANSWER":
        call.outcome = OUT_ANSWERED
        assert dial_end is not None
        call.answered_at = call.answered_at or dial_end.at
        call.talk_seconds = max(0, int((call.ended_at - call.answered_at).total_seconds()))
    elif status == "BUSY":
        call.outcome = OUT_BUSY
    elif status in _DIALSTATUS_OUTCOME:
        call.outcome = OUT_NO_ANSWER
    else:
        call.outcome = OUT_FAILED
    call.hangup_by = None
    entry = session.get(Callback, callback_id)
    if entry is None:
        return
    if entry.active_call_id == call.id:
        entry.active_call_id = None
    _history(
        session,
        entry.id,
        ACTION_CALL_ENDED,
        call.ended_at,
        operator=call.operator,
        call_id=call.id,
        data={"call_outcome": call.outcome, "dial_status": status or None},
    )
    if started.data.get("automatic") and entry.status == CALLBACK_OPEN and dial_begin is None:
        # The operator's phone never took the virtual-hold call-back: the dispatcher's claim
        # goes, so the held caller keeps their place for the next free operator.
        entry.claimed_by = None
        entry.claimed_until = None
    automatic = _DIALSTATUS_OUTCOME.get(status)
    if automatic is not None and entry.status == CALLBACK_OPEN:
        record_outcome(
            session,
            entry.id,
            automatic,
            call.ended_at,
            rules=rules,
            operator=None,
            note=f"dialler: {status}",
            call_id=call.id,
        )


# --- virtual hold -----------------------------------------------------------------------------


def virtual_hold_waiting(
    session: Session, now: datetime, rules: CallbackRules
) -> tuple[list[policy.HeldCallback], dict[str, int]]:
    """Virtual-hold entries ready to dial (in their places), and per queue how many are being
    dialled right now (they already took a free operator)."""
    if rules.quiet.is_quiet(now):
        return [], {}
    rows = session.scalars(
        select(Callback).where(
            Callback.status == CALLBACK_OPEN,
            Callback.reason == policy.REASON_VIRTUAL_HOLD,
            # Outside the dial-out plan: for an operator to look at, never auto-dialled.
            Callback.refused_reason.is_(None),
        )
    ).all()
    held: list[policy.HeldCallback] = []
    dialling: dict[str, int] = {}
    for row in rows:
        queue = row.queue or "coordinator"
        if row.active_call_id is not None:
            dialling[queue] = dialling.get(queue, 0) + 1
        elif not _claim_live(row, now) and (
            row.next_attempt_at is None or row.next_attempt_at <= now
        ):
            held.append(policy.HeldCallback(row.id, queue, row.placed_at or row.created_at))
    return held, dialling


# --- escalation ------------------------------------------------------------------------------


def overdue(session: Session, now: datetime) -> list[Callback]:
    """Open entries past their deadline that nobody has been alerted about yet."""
    return list(
        session.scalars(
            select(Callback)
            .where(
                Callback.status == CALLBACK_OPEN,
                Callback.due_at.is_not(None),
                Callback.due_at < now,
                Callback.escalated_at.is_(None),
            )
            .order_by(Callback.due_at, Callback.id)
        )
    )


def mark_escalated(session: Session, callback_id: int, now: datetime) -> bool:
    """True for the one process that marks it (several routers may run the job)."""
    result = session.execute(
        update(Callback)
        .where(Callback.id == callback_id, Callback.escalated_at.is_(None))
        .values(escalated_at=now)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    _history(session, callback_id, ACTION_ESCALATED, now)
    return True


# --- internals ------------------------------------------------------------------------------


def _operator(login: str) -> str:
    login = login.strip()
    if not login or len(login) > 64:
        raise CallbackError("bad_operator", "operator login must be 1-64 characters")
    return login


def _claim_live(entry: Callback, now: datetime) -> bool:
    return entry.claimed_by is not None and (
        entry.claimed_until is None or entry.claimed_until > now
    )


def _get(session: Session, callback_id: int) -> Callback:
    entry = session.get(Callback, callback_id)
    if entry is None:
        raise CallbackError("not_found", f"no callback {callback_id}")
    return entry


def _close(
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


def _rank(entry: Callback, rules: CallbackRules, now: datetime) -> None:
    """Category, priority and deadline from what is known now (a repeat call may raise them)."""
    frost = policy.is_frost(now.astimezone(rules.zone), rules.frost_months)
    entry.category = policy.category(entry.intent, entry.reason, entry.queue, frost=frost)
    entry.priority = int(policy.priority(entry.category, entry.attempts))
    due = policy.due_at(entry.created_at, entry.category, rules.deadlines)
    # A deadline only ever moves earlier (an emergency reported later tightens it).
    entry.due_at = min(due, entry.due_at) if entry.due_at is not None else due


def _history(
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


def _of_tenant(tenant_id: int | None) -> Any:
    return Callback.tenant_id.is_(None) if tenant_id is None else Callback.tenant_id == tenant_id


def _open_entry(session: Session, number: str, tenant_id: int | None) -> Callback | None:
    """The open entry of `number` with this tenant (at most one: uq_callbacks_open_number)."""
    return session.scalars(
        select(Callback).where(
            Callback.caller_number == number,
            Callback.status == CALLBACK_OPEN,
            _of_tenant(tenant_id),
        )
    ).first()


def _try_create(
    session: Session,
    number: str,
    reason: str,
    queue: str | None,
    call_id: int | None,
    now: datetime,
    intent: str | None,
    placed_at: datetime | None,
    rules: CallbackRules,
    tenant_id: int | None = None,
) -> Callback | None:
    entry = Callback(
        tenant_id=tenant_id,
        caller_number=number,
        status=CALLBACK_OPEN,
        reason=reason,
        queue=queue,
        attempts=1,
        last_call_id=call_id,
        created_at=now,
        updated_at=now,
        intent=intent,
        placed_at=placed_at,
        tries=0,
        # Kept on the list (the operators see who called and why we will not dial them).
        refused_reason=rules.plan.refusal(number),
    )
    _rank(entry, rules, now)
    try:
        # A savepoint: losing the race must not roll back the caller's whole transaction.
        with session.begin_nested():
            session.add(entry)
    except IntegrityError:
        return None
    data: dict[str, Any] = {"reason": reason}
    if entry.refused_reason is not None:
        data["refused"] = entry.refused_reason
        log.warning("callback_number_refused", callback_id=entry.id, refused=entry.refused_reason)
    _history(session, entry.id, ACTION_CREATED, now, call_id=call_id, data=data)
    return entry
