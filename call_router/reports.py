"""Report arithmetic: calls per hour / day, per queue, intent and operator, and bar geometry for
the SVG charts. Pure: the database adds up (call_router.call_sums: per UTC quarter hour, per
queue, per operator), this module turns the sums into local buckets; the rates and means are
call_router.service_figures'."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Literal, TypeVar

from call_router.service_figures import OperatorTotals, QueueStats, QueueTotals, share

Bucket = Literal["hour", "day"]
K = TypeVar("K")

# Calls are counted per quarter hour of UTC: every real time zone's offset is a whole number of
# quarter hours, so the slots fold exactly into local hours and days (fold_slots),
# DST included, and a 92-day report returns at most ~8,800 small rows whatever the traffic.
SLOT_SECONDS = 900


T = TypeVar("T", QueueTotals, OperatorTotals)


def slot_of(at: datetime, slot_seconds: int = SLOT_SECONDS) -> int:
    """The UTC slot (seconds since 1970 // slot_seconds) of an aware moment; as the SQL does."""
    return int(at.timestamp()) // slot_seconds


def slot_start(slot: int, slot_seconds: int = SLOT_SECONDS) -> datetime:
    return datetime.fromtimestamp(slot * slot_seconds, UTC)


# --- rolled-up slots (call_router.report_rollups): which part of a range reads them -----------

# A slot is "closed" - its figures can no longer change unless a call in it is changed late,
# which the database trigger of migration 0009 catches - once it ended SETTLE_SLOTS ago and every
# call that started in it has ended, or is older than the stale age (a call the router lost).
SETTLE_SLOTS = 1


def closed_before(now: datetime, oldest_open: datetime | None) -> int:
    """The first slot that is not closed at `now`: every slot before it is closed.

    `oldest_open`: the start of the oldest call still open that is younger than the stale age.
    """
    first_open = slot_of(now) - SETTLE_SLOTS
    if oldest_open is not None:
        first_open = min(first_open, slot_of(oldest_open))
    return first_open


def stale_age(threshold: float, stale_call: timedelta) -> timedelta:
    """How old an open call must be for its slot to close anyway. Its figures must not depend
    on `now` any more: an unanswered open call counts as past the service-level threshold once
    it has waited longer than that."""
    return max(stale_call, timedelta(seconds=threshold + 2 * SLOT_SECONDS))


def runs(slots: Iterable[int], max_length: int) -> list[tuple[int, int]]:
    """Sorted slots as half-open runs [first, last + 1) of consecutive slots, each at most
    `max_length` long (one rollup transaction each)."""
    result: list[tuple[int, int]] = []
    for slot in sorted(set(slots)):
        if result and result[-1][1] == slot and slot - result[-1][0] < max_length:
            result[-1] = (result[-1][0], slot + 1)
        else:
            result.append((slot, slot + 1))
    return result


def day_runs(slots: Iterable[int], day: int) -> list[tuple[int, int]]:
    """Like `runs`, each run within one UTC day (`day` slots, from 1970-01-01)."""
    by_day: dict[int, list[int]] = {}
    for slot in slots:
        by_day.setdefault(slot // day, []).append(slot)
    return [run for key in sorted(by_day) for run in runs(by_day[key], day)]


@dataclass(frozen=True)
class RangePlan:
    """A report range [since, until) split into rolled-up slots and live time ranges."""

    rolled: tuple[int, int] | None  # slots [first, end) to read from the rollup tables
    live: list[tuple[datetime, datetime]]  # ranges the live GROUP BY adds up


def plan_range(
    since: datetime, until: datetime, closed_end: int, covered: Iterable[int] = ()
) -> RangePlan:
    """Whole slots of [since, until) before `closed_end` are read rolled up if `covered`;
    the rest (partial slots at the ends, uncovered slots, open slots) live."""
    first = -(-int(since.timestamp()) // SLOT_SECONDS)  # ceil: a partial first slot is live
    end = min(int(until.timestamp()) // SLOT_SECONDS, closed_end)
    if first >= end:
        return RangePlan(None, [(since, until)] if since < until else [])
    wanted = set(covered)
    gaps = runs((s for s in range(first, end) if s not in wanted), max_length=end - first)
    live = [(slot_start(a), slot_start(b)) for a, b in gaps]
    if since < slot_start(first):
        live.insert(0, (since, slot_start(first)))
    if slot_start(end) < until:
        live.append((slot_start(end), until))
    return RangePlan((first, end), _joined(live))


def _joined(ranges: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    result: list[tuple[datetime, datetime]] = []
    for start, stop in sorted(ranges):
        if result and result[-1][1] >= start:
            result[-1] = (result[-1][0], max(result[-1][1], stop))
        else:
            result.append((start, stop))
    return result


def add_counts(*parts: Mapping[K, int]) -> dict[K, int]:
    """Counts per key added up over several ranges."""
    total: Counter[K] = Counter()
    for part in parts:
        total.update(part)
    return dict(total)


def add_queue_totals(*parts: Iterable[QueueTotals]) -> list[QueueTotals]:
    """QueueTotals of several ranges added up per queue, by queue name."""
    merged: dict[str, QueueTotals] = {}
    for part in parts:
        for t in part:
            base = merged.get(t.queue)
            merged[t.queue] = t if base is None else _add(base, t)
    return [merged[name] for name in sorted(merged)]


def add_operator_totals(*parts: Mapping[str, OperatorTotals]) -> dict[str, OperatorTotals]:
    """OperatorTotals of several ranges added up per operator."""
    merged: dict[str, OperatorTotals] = {}
    for part in parts:
        for name, t in part.items():
            base = merged.get(name)
            merged[name] = t if base is None else _add(base, t)
    return merged


def _add(a: T, b: T) -> T:
    values = {
        f.name: getattr(a, f.name) + getattr(b, f.name)
        for f in fields(a)
        if f.name not in ("queue", "operator")
    }
    return replace(a, **values)


def fold_slots(
    slots: Mapping[int, int],
    zone: tzinfo,
    by: Bucket,
    first: date,
    last: date,
    slot_seconds: int = SLOT_SECONDS,
) -> list[tuple[str, int]]:
    """Counts per UTC slot folded into local hours of day (00..23) or local dates first..last.

    Every bucket is listed, empty ones with 0, so the chart's axis is the same for every range.
    Exact when `slot_seconds` divides every UTC offset of `zone` (900 s does for all zones).
    """
    counts: Counter[str] = Counter()
    for slot, count in slots.items():
        local = datetime.fromtimestamp(slot * slot_seconds, UTC).astimezone(zone)
        counts[f"{local.hour:02d}" if by == "hour" else local.date().isoformat()] += count
    if by == "hour":
        labels = [f"{h:02d}" for h in range(24)]
    else:
        days = (last - first).days
        labels = [(first + timedelta(days=i)).isoformat() for i in range(max(0, days) + 1)]
    return [(label, counts.get(label, 0)) for label in labels]


def per_bucket(
    started: Iterable[datetime], zone: tzinfo, by: Bucket, first: date, last: date
) -> list[tuple[str, int]]:
    """Call counts per local hour of day or per local date, from the start times themselves."""
    return fold_slots(Counter(slot_of(at) for at in started), zone, by, first, last)


def per_key(keys: Iterable[str | None], missing: str = "—") -> list[tuple[str, int]]:
    """Counts per value (e.g. intent), largest first, then by name."""
    return ranked(Counter(key or missing for key in keys))


def ranked(counts: Mapping[str | None, int], missing: str = "—") -> list[tuple[str, int]]:
    """Counts per value, largest first, then by name; None is shown as `missing`."""
    merged: Counter[str] = Counter()
    for key, count in counts.items():
        merged[key or missing] += count
    return sorted(merged.items(), key=lambda item: (-item[1], item[0]))


def queue_figures(
    totals: Sequence[QueueTotals],
    queues: Sequence[str],
    *,
    waiting: Mapping[str, int] | None = None,
    current_waits: Mapping[str, Sequence[float]] | None = None,
) -> list[QueueStats]:
    """The wallboard's per-queue figures from SQL sums: every configured queue (even idle) in
    order, then any other seen, by name.

    `waiting` / `current_waits`: the live part for the wallboard (callers waiting now per
    queue, from Asterisk when known; the seconds each caller seen waiting has waited so far).
    """
    waiting = waiting or {}
    current_waits = current_waits or {}
    by_name = {t.queue: t for t in totals}
    seen = set(by_name) | set(waiting) | set(current_waits)
    ordered = list(queues) + sorted(name for name in seen if name not in queues)
    result = []
    for name in ordered:
        t = by_name.get(name)
        waits_now = current_waits.get(name, ())
        waiting_now = max(waiting.get(name, 0), len(waits_now))
        longest = int(max(waits_now)) if waits_now else None
        if t is None:
            result.append(QueueStats(name, waiting_now, longest))
            continue
        result.append(
            QueueStats(
                queue=name,
                waiting=waiting_now,
                longest_wait_seconds=longest,
                offered=t.offered,
                answered=t.answered,
                abandoned=t.abandoned,
                service_level=t.service_level,
                asa_seconds=t.asa_seconds,
                aht_seconds=t.aht_seconds,
            )
        )
    return result


@dataclass(frozen=True)
class Summary:
    offered: int
    answered: int
    abandoned: int
    abandon_rate: float | None
    service_level: float | None
    asa_seconds: float | None
    aht_seconds: float | None


def summary(totals: Iterable[QueueTotals]) -> Summary:
    """All queues together: sums first, then rates (a mean of per-queue rates would weigh a
    quiet queue like a busy one)."""
    whole = QueueTotals("", 0, 0, 0, 0, 0, 0.0, 0, 0.0, 0)
    for t in totals:
        whole = _add(whole, t)
    return Summary(
        offered=whole.offered,
        answered=whole.answered,
        abandoned=whole.abandoned,
        abandon_rate=whole.abandon_rate,
        service_level=whole.service_level,
        asa_seconds=whole.asa_seconds,
        aht_seconds=whole.aht_seconds,
    )


@dataclass(frozen=True)
class OperatorFigures:
    operator: str
    answered: int
    talk_seconds: float
    aht_seconds: float | None
    pauses: int
    pause_seconds: float


def operator_figures(totals: Iterable[OperatorTotals]) -> list[OperatorFigures]:
    """Per operator: answered calls, talk time, average handle time (talk of finished calls;
    the log has no after-call work time), pauses and paused time. By name."""
    return [
        OperatorFigures(
            operator=t.operator,
            answered=t.answered,
            talk_seconds=t.talk_sum,
            aht_seconds=t.aht_seconds,
            pauses=t.pauses,
            pause_seconds=t.pause_seconds,
        )
        for t in sorted(totals, key=lambda t: t.operator)
    ]


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    x: float
    y: float
    width: float
    height: float


def bars(
    items: Sequence[tuple[str, float]],
    *,
    width: float,
    height: float,
    gap: float = 2.0,
    min_slots: int = 1,
    top: float | None = None,
) -> list[Bar]:
    """Vertical bars filling `width` x `height` (SVG coordinates: y grows downwards).

    `min_slots`: lay out at least this many slots, so two bars are not each half a page wide.
    `top`: the value of a full-height bar (default: the largest value), e.g. 100 for percents.
    """
    if not items:
        return []
    top = top or max((value for _, value in items), default=0) or 1
    slot = width / max(len(items), min_slots)
    bar_width = max(1.0, slot - gap)
    result = []
    for index, (label, value) in enumerate(items):
        h = height * max(0.0, value) / top
        result.append(
            Bar(
                label,
                value,
                round(index * slot, 2),
                round(height - h, 2),
                round(bar_width, 2),
                round(h, 2),
            )
        )
    return result


def service_level_buckets(
    within: Mapping[int, int],
    decided: Mapping[int, int],
    zone: tzinfo,
    by: Bucket,
    first: date,
    last: date,
) -> list[tuple[str, float | None]]:
    """The service level per local hour or day (None: no call decided in it), from the
    per-slot sums (call_router.report_rollup_reads.service_level_slots), folded like fold_slots."""
    inside = fold_slots(within, zone, by, first, last)
    counted = fold_slots(decided, zone, by, first, last)
    return [(label, share(ok, n)) for (label, ok), (_label, n) in zip(inside, counted, strict=True)]
