"""Staffing forecast: the coming week's operators per quarter hour, from the last N weeks.

Pure: plain values in, plain values out (the call log and agent history are read by
`call_router/staffing_store.py`). For each local weekday and quarter hour of the history window
it averages the calls that reached a queue and their handle time (talk + wrap-up), plans the
operators that quarter hour needs for the target (`call_router/erlang.py`, occupancy-capped),
and sets beside it how many operators were actually logged in then (time-weighted average over
the same weeks), so the gap is plain.

Quarter hours are *local* (the hotline's zone): Monday 09:00 is Monday 09:00 in winter and in
summer. Every UTC offset in use is a multiple of 15 minutes, so local quarter hours are UTC
quarter hours relabelled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cached_property
from typing import Any, Final

from call_router.agent_sessions import StateEvent, spans
from call_router.erlang import ErlangError, Staffing, Target, agents_needed

SLOT_SECONDS: Final = 900
SLOTS_PER_DAY: Final = 24 * 3600 // SLOT_SECONDS
MAX_WEEKS: Final = 52
# Handle time assumed for a quarter hour whose calls were never answered and a log with no
# answered call at all: a typical short hotline call plus nothing else to go on.
FALLBACK_HANDLE_SECONDS: Final = 180.0

# A row of the agent state log (the forecast reads log-ins and pauses).
AgentEvent = StateEvent

Cell = tuple[int, int]  # (local weekday 0 = Monday, quarter hour of the day 0..95)


@dataclass(frozen=True)
class CallSample:
    """One call that reached a queue: when it arrived, and its handle time if answered."""

    arrived_at: datetime
    handle_seconds: float | None


@dataclass(frozen=True)
class Window:
    """The history read (`weeks` whole weeks ending at local midnight `today`) and the week
    forecast (the seven local days from `today`)."""

    today: date
    weeks: int
    zone: tzinfo

    @classmethod
    def ending(cls, now: datetime, weeks: int, zone: tzinfo) -> Window:
        if not 1 <= weeks <= MAX_WEEKS:
            raise ErlangError(f"weeks must be between 1 and {MAX_WEEKS}")
        return cls(now.astimezone(zone).date(), weeks, zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.today, time(0), self.zone).astimezone(UTC)

    @property
    def start(self) -> datetime:
        first = self.today - timedelta(weeks=self.weeks)
        return datetime.combine(first, time(0), self.zone).astimezone(UTC)

    def cell_of(self, at: datetime) -> Cell:
        local = at.astimezone(self.zone)
        return local.weekday(), (local.hour * 3600 + local.minute * 60) // SLOT_SECONDS

    def epoch_slots(self) -> range:
        return range(
            int(self.start.timestamp()) // SLOT_SECONDS, int(self.end.timestamp()) // SLOT_SECONDS
        )

    @cached_property
    def occurrences(self) -> dict[Cell, int]:
        """How many times each local quarter hour occurs in the history (N, DST days aside).
        Cached: every step of a forecast divides by it."""
        seen: dict[Cell, int] = defaultdict(int)
        for slot in self.epoch_slots():
            seen[self.cell_of(datetime.fromtimestamp(slot * SLOT_SECONDS, UTC))] += 1
        return seen


@dataclass(frozen=True)
class ForecastRow:
    day: date
    weekday: int
    slot: int  # quarter hour of the local day
    calls: float  # expected calls in the quarter hour
    handle_seconds: float
    needed: int
    service_level: float
    average_wait: float
    occupancy: float
    limited_by: str
    logged_in: float  # operators logged in then, on average over the history
    ready: float  # of them not paused

    @property
    def time(self) -> str:
        minutes = self.slot * SLOT_SECONDS // 60
        return f"{minutes // 60:02d}:{minutes % 60:02d}"

    @property
    def gap(self) -> float:
        """Logged in minus needed: negative is a shortfall."""
        return round(self.logged_in - self.needed, 2)

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["day"] = self.day.isoformat()
        row["time"] = self.time
        row["gap"] = self.gap
        row["average_wait"] = None if self.average_wait == float("inf") else self.average_wait
        return row


def arrivals(window: Window, calls: Iterable[CallSample]) -> dict[Cell, int]:
    """Calls that arrived in each local quarter hour over the whole history."""
    counts: dict[Cell, int] = defaultdict(int)
    start, end = window.start, window.end
    for call in calls:
        if start <= call.arrived_at < end:
            counts[window.cell_of(call.arrived_at)] += 1
    return counts


def handle_times(window: Window, calls: Iterable[CallSample]) -> tuple[dict[Cell, float], float]:
    """Mean handle time of the answered calls of each cell, and over all of them."""
    sums: dict[Cell, float] = defaultdict(float)
    counts: dict[Cell, int] = defaultdict(int)
    start, end = window.start, window.end
    for call in calls:
        if call.handle_seconds is not None and start <= call.arrived_at < end:
            cell = window.cell_of(call.arrived_at)
            sums[cell] += call.handle_seconds
            counts[cell] += 1
    total = sum(counts.values())
    overall = sum(sums.values()) / total if total else FALLBACK_HANDLE_SECONDS
    return {cell: sums[cell] / counts[cell] for cell in counts}, overall


def staffed_seconds(
    window: Window, events: Sequence[AgentEvent]
) -> tuple[dict[int, float], dict[int, float]]:
    """Operator-seconds logged in, and logged in and not paused, per UTC quarter hour.

    `events` holds, per login, its last event before the window (the state it entered it in)
    and every event inside; an operator still logged in at the window's end counts to the end.
    """
    logged: dict[int, float] = defaultdict(float)
    ready: dict[int, float] = defaultdict(float)
    # The agent-session report's definition of logged in and paused (one rule for both).
    for span in spans(events, window.start, window.end):
        begin, finish = span.begin.timestamp(), span.end.timestamp()
        _spread(logged, begin, finish)
        if not span.paused:
            _spread(ready, begin, finish)
    return logged, ready


def _spread(into: dict[int, float], begin: float, finish: float) -> None:
    slot = int(begin) // SLOT_SECONDS
    while begin < finish:
        boundary = (slot + 1) * SLOT_SECONDS
        into[slot] += min(finish, boundary) - begin
        begin, slot = boundary, slot + 1


def per_cell(window: Window, per_slot: dict[int, float]) -> dict[Cell, float]:
    """UTC quarter-hour seconds → average operators per local cell over the history."""
    total: dict[Cell, float] = defaultdict(float)
    for slot, seconds in per_slot.items():
        total[window.cell_of(datetime.fromtimestamp(slot * SLOT_SECONDS, UTC))] += seconds
    seen = window.occurrences
    return {cell: total[cell] / SLOT_SECONDS / seen[cell] for cell in total if seen.get(cell)}


def forecast(
    window: Window,
    calls: Sequence[CallSample],
    events: Sequence[AgentEvent],
    target: Target,
) -> list[ForecastRow]:
    """The coming week (seven local days from `window.today`), one row per quarter hour."""
    counts = arrivals(window, calls)
    handles, overall_handle = handle_times(window, calls)
    seen = window.occurrences
    logged_seconds, ready_seconds = staffed_seconds(window, events)
    logged, ready = per_cell(window, logged_seconds), per_cell(window, ready_seconds)
    rows = []
    for offset in range(7):
        day = window.today + timedelta(days=offset)
        for slot in range(SLOTS_PER_DAY):
            cell = (day.weekday(), slot)
            expected = counts.get(cell, 0) / seen[cell] if seen.get(cell) else 0.0
            handle = handles.get(cell, overall_handle)
            plan: Staffing = agents_needed(expected, handle, SLOT_SECONDS, target)
            rows.append(
                ForecastRow(
                    day=day,
                    weekday=cell[0],
                    slot=slot,
                    calls=round(expected, 3),
                    handle_seconds=round(handle, 1),
                    needed=plan.agents,
                    service_level=round(plan.service_level, 4),
                    average_wait=round(plan.average_wait, 2),
                    occupancy=round(plan.occupancy, 4),
                    limited_by=plan.limited_by,
                    logged_in=round(logged.get(cell, 0.0), 2),
                    ready=round(ready.get(cell, 0.0), 2),
                )
            )
    return rows


def plan_json(window: Window, target: Target, rows: Iterable[ForecastRow]) -> dict[str, Any]:
    """The forecast as `hotline staffing --json` and `/api/staffing` give it."""
    return {
        "history": {"since": window.start.isoformat(), "until": window.end.isoformat()},
        "weeks": window.weeks,
        "target": target.as_dict(),
        "rows": [row.as_dict() for row in rows],
    }


CSV_COLUMNS: Final = (
    "day", "time", "weekday", "calls", "handle_seconds", "needed", "logged_in", "ready", "gap",
    "service_level", "average_wait", "occupancy", "limited_by",
)  # fmt: skip


def csv_rows(rows: Iterable[ForecastRow]) -> Iterable[list[Any]]:
    """Header then one line per quarter hour (numbers and fixed words only: CSV-safe)."""
    yield list(CSV_COLUMNS)
    for row in rows:
        data = row.as_dict()
        yield [data[column] for column in CSV_COLUMNS]
