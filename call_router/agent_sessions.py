"""Agent sessions: each operator's log-ins, pauses, ready, talk and wrap-up time, calls answered
and missed, and occupancy, per local day and over a period.

Pure: plain values in, plain values out (call_router/agent_sessions_store.py reads them from the
agent state log and the call log). One definition of each figure, here:

- logged in   from a `login` row of the agent state log to the next `logout` (or the end of the
              range while it goes on); a `login` while logged in (other queues) starts nothing.
- paused      from a `pause` row to the operator's next row (unpause, another pause, log-out), the
              same rule as the reports' pause time (call_router/call_sums.py operator_pauses);
              per reason.
- talk        an answered inbound call, from its answer to its end (or its logged talk time).
- callback    an operator's own click-to-call (direction callback), answered: its talk time.
- wrap-up     after each answered inbound call, the queue's wrap-up time (settings.wrapup_seconds,
              queues.conf wrapuptime), as the staffing forecast counts it.
- ready       logged in, not paused, not talking (inbound or callback) and not in wrap-up.
- answered    inbound calls the operator answered (AgentConnect), by the answer's day.
- missed      rings the operator let ring out (AgentRingNoAnswer / queue_log RINGNOANSWER).
- occupancy   (talk + callback + wrap-up) / (logged in - paused): the share of the time the
              operator was available that they spent on calls.

Durations that cross midnight are split between the days; counts go to the day they happened.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Final

LOGIN, LOGOUT, PAUSE, UNPAUSE = "login", "logout", "pause", "unpause"
NO_REASON: Final = "unspecified"


@dataclass(frozen=True)
class StateEvent:
    """One row of the agent state log."""

    login: str
    at: datetime
    action: str  # login / logout / pause / unpause
    reason: str | None = None


@dataclass(frozen=True)
class Span:
    """A stretch of one operator's logged-in time in one state (paused or not)."""

    login: str
    begin: datetime
    end: datetime
    paused: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class CallLeg:
    """One answered call of one operator: [begin, end) on the phone."""

    login: str
    begin: datetime
    end: datetime
    inbound: bool = True


@dataclass
class AgentFigures:
    """One operator over one day (`day` set) or the whole period (`day` None)."""

    login: str
    name: str
    day: date | None = None
    logins: int = 0
    logouts: int = 0
    pauses: int = 0
    logged_in_seconds: float = 0.0
    paused_seconds: float = 0.0
    ready_seconds: float = 0.0
    talk_seconds: float = 0.0
    callback_seconds: float = 0.0
    wrapup_seconds: float = 0.0
    answered: int = 0
    callbacks: int = 0
    missed: int = 0
    pause_reasons: dict[str, float] = field(default_factory=dict)

    @property
    def occupancy(self) -> float | None:
        available = self.logged_in_seconds - self.paused_seconds
        if available <= 0:
            return None
        busy = self.talk_seconds + self.callback_seconds + self.wrapup_seconds
        return round(min(1.0, busy / available), 3)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["day"] = self.day.isoformat() if self.day is not None else None
        for key, value in data.items():
            if key.endswith("_seconds"):
                data[key] = round(value)
        data["pause_reasons"] = {k: round(v) for k, v in sorted(self.pause_reasons.items())}
        data["occupancy"] = self.occupancy
        return data


CSV_COLUMNS: Final = (
    "day", "login", "name", "logins", "logouts", "pauses", "logged_in_seconds", "paused_seconds",
    "ready_seconds", "talk_seconds", "callback_seconds", "wrapup_seconds", "answered",
    "callbacks", "missed", "occupancy", "pause_reasons",
)  # fmt: skip


def spans(events: Iterable[StateEvent], start: datetime, end: datetime) -> list[Span]:
    """Logged-in time per state, clipped to [start, end). `events` holds, per login, its last
    event before `start` (the state it entered the range in) and every event inside."""
    by_login: dict[str, list[StateEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.at):
        by_login[event.login].append(event)
    result: list[Span] = []
    for login, history in by_login.items():
        logged_in, paused, reason, since = False, False, None, start
        for event in [*history, StateEvent(login, end, "")]:
            at = min(max(event.at, start), end)
            if logged_in and at > since:
                result.append(Span(login, since, at, paused, reason if paused else None))
            since = at
            if event.action == LOGIN and not logged_in:
                logged_in, paused, reason = True, False, None
            elif event.action == LOGOUT:
                logged_in, paused, reason = False, False, None
            elif event.action == PAUSE and logged_in:
                paused, reason = True, event.reason or NO_REASON
            elif event.action == UNPAUSE:
                paused, reason = False, None
    return result


def day_bounds(first: date, last: date, zone: tzinfo) -> list[tuple[date, datetime, datetime]]:
    """The local days first..last as (day, start, end) aware moments."""
    days = []
    day = first
    while day <= last:
        begin = datetime.combine(day, time.min, tzinfo=zone)
        days.append((day, begin, datetime.combine(day + timedelta(days=1), time.min, zone)))
        day += timedelta(days=1)
    return days


def _overlap(begin: datetime, end: datetime, lo: datetime, hi: datetime) -> float:
    return max(0.0, (min(end, hi) - max(begin, lo)).total_seconds())


def agent_figures(
    events: Sequence[StateEvent],
    legs: Sequence[CallLeg],
    missed: Sequence[tuple[str, datetime]],
    *,
    first: date,
    last: date,
    zone: tzinfo,
    wrapup_seconds: float,
    names: dict[str, str],
    now: datetime | None = None,
) -> tuple[list[AgentFigures], list[AgentFigures]]:
    """(per operator and day, per operator over the period), sorted by name then day.

    `missed`: (login, when) of each ring not answered. `now` caps open spans (today's report
    does not count the future as logged in)."""
    days = day_bounds(first, last, zone)
    start, end = days[0][1], days[-1][2]
    if now is not None:
        end = max(start, min(end, now))
    logged = spans(events, start, end)
    wraps = [
        CallLeg(leg.login, leg.end, leg.end + timedelta(seconds=wrapup_seconds))
        for leg in legs
        if leg.inbound
    ]
    logins = {e.login for e in events} | {leg.login for leg in legs} | {m for m, _ in missed}
    per_day: list[AgentFigures] = []
    for login in sorted(logins, key=lambda x: (names.get(x, x), x)):
        name = names.get(login, login)
        for day, lo, hi in days:
            fig = AgentFigures(login, name, day)
            for event in events:
                if event.login == login and lo <= event.at < hi:
                    fig.logins += event.action == LOGIN
                    fig.logouts += event.action == LOGOUT
                    fig.pauses += event.action == PAUSE
            for span in logged:
                if span.login != login:
                    continue
                seconds = _overlap(span.begin, span.end, lo, hi)
                fig.logged_in_seconds += seconds
                if span.paused and seconds:
                    fig.paused_seconds += seconds
                    key = span.reason or NO_REASON
                    fig.pause_reasons[key] = fig.pause_reasons.get(key, 0.0) + seconds
            for leg in legs:
                if leg.login != login:
                    continue
                seconds = _overlap(leg.begin, leg.end, lo, hi)
                if leg.inbound:
                    fig.talk_seconds += seconds
                    fig.answered += lo <= leg.begin < hi
                else:
                    fig.callback_seconds += seconds
                    fig.callbacks += lo <= leg.begin < hi
            for wrap in wraps:
                if wrap.login == login:
                    fig.wrapup_seconds += _overlap(wrap.begin, wrap.end, lo, hi)
            fig.missed = sum(1 for who, at in missed if who == login and lo <= at < hi)
            busy = fig.talk_seconds + fig.callback_seconds + fig.wrapup_seconds
            fig.ready_seconds = max(0.0, fig.logged_in_seconds - fig.paused_seconds - busy)
            per_day.append(fig)
    return per_day, period_totals(per_day)


def period_totals(per_day: Iterable[AgentFigures]) -> list[AgentFigures]:
    """The days of each operator added up (occupancy is recomputed from the sums)."""
    totals: dict[str, AgentFigures] = {}
    for fig in per_day:
        total = totals.setdefault(fig.login, AgentFigures(fig.login, fig.name))
        for key in (
            "logins", "logouts", "pauses", "logged_in_seconds", "paused_seconds",
            "ready_seconds", "talk_seconds", "callback_seconds", "wrapup_seconds", "answered",
            "callbacks", "missed",
        ):  # fmt: skip
            setattr(total, key, getattr(total, key) + getattr(fig, key))
        for reason, seconds in fig.pause_reasons.items():
            total.pause_reasons[reason] = total.pause_reasons.get(reason, 0.0) + seconds
    return list(totals.values())


def active(figures: Iterable[AgentFigures]) -> list[AgentFigures]:
    """The rows worth showing: an operator's day with anything in it."""
    return [
        f
        for f in figures
        if f.logged_in_seconds or f.logins or f.logouts or f.answered or f.callbacks or f.missed
    ]


def csv_rows(figures: Iterable[AgentFigures]) -> Iterable[list[Any]]:
    """The header, then one row per figure (`day` "period" for the totals). Names and pause
    reasons are as typed: defuse them for spreadsheets (dashboard/csv_export.py safe_cell)."""
    yield list(CSV_COLUMNS)
    for fig in figures:
        data = fig.as_dict()
        data["day"] = data["day"] or "period"
        data["occupancy"] = "" if data["occupancy"] is None else data["occupancy"]
        data["pause_reasons"] = ";".join(f"{k}={v}" for k, v in data["pause_reasons"].items())
        yield [data[column] for column in CSV_COLUMNS]
