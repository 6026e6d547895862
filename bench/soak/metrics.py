"""The soak's arithmetic, kept free of I/O so it can be unit-tested: a process's memory and
open files at the start (after the warm-up) and at the end of the call phase, the growth
between them, the trend over the run, and the lag per minute."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.callstack import ms, percentile

GROWTH_PASS_PCT = 5.0  # RSS growth after the warm-up must stay below this

Series = Sequence[tuple[float, float]]  # (epoch seconds, value)


def window_median(series: Series, start: float, end: float) -> float | None:
    """The median of the values sampled in [start, end]; None when nothing was sampled there.
    A median over a window, not one sample, so a passing allocation spike is not 'growth'."""
    values = [v for t, v in series if start <= t <= end]
    return statistics.median(values) if values else None


def growth_pct(start: float | None, end: float | None) -> float | None:
    """How much `end` exceeds `start`, in % of `start` (negative: it shrank)."""
    if start is None or end is None or start <= 0:
        return None
    return 100.0 * (end - start) / start


def slope_per_hour(series: Series) -> float | None:
    """Least-squares trend of the values, in value units per hour (None under two samples or
    when all samples share one time)."""
    if len(series) < 2:
        return None
    ts = [t for t, _ in series]
    vs = [v for _, v in series]
    t_mean, v_mean = statistics.fmean(ts), statistics.fmean(vs)
    var = sum((t - t_mean) ** 2 for t in ts)
    if var == 0:
        return None
    cov = sum((t - t_mean) * (v - v_mean) for t, v in series)
    return cov / var * 3600.0


@dataclass(frozen=True)
class Phase:
    """Times (epoch s) of the call phase: its steady part starts after the warm-up; the start
    and end values are medians over `window` s at either end of the steady part."""

    warmup_end: float
    end: float
    window: float

    @property
    def start_window(self) -> tuple[float, float]:
        return self.warmup_end, self.warmup_end + self.window

    @property
    def end_window(self) -> tuple[float, float]:
        return self.end - self.window, self.end


def process_report(rss: Series, fds: Series, phase: Phase) -> dict[str, object]:
    """RSS (MB) and open files at start and end of the steady phase, growth % and trend, and
    whether the growth passes (< GROWTH_PASS_PCT)."""
    mb = [(t, v / 2**20) for t, v in rss]
    start = window_median(mb, *phase.start_window)
    end = window_median(mb, *phase.end_window)
    growth = growth_pct(start, end)
    steady = [(t, v) for t, v in mb if phase.warmup_end <= t <= phase.end]
    slope = slope_per_hour(steady)
    fd_start = window_median(fds, *phase.start_window)
    fd_end = window_median(fds, *phase.end_window)
    return {
        "rss_start_mb": None if start is None else round(start, 1),
        "rss_end_mb": None if end is None else round(end, 1),
        "rss_peak_mb": round(max((v for _, v in mb), default=0.0), 1),
        "growth_pct": None if growth is None else round(growth, 2),
        "trend_mb_per_hour": None if slope is None else round(slope, 1),
        "fds_start": fd_start,
        "fds_end": fd_end,
        "pass": growth is not None and growth < GROWTH_PASS_PCT,
    }


def per_minute(points: Iterable[tuple[float, float]], t0: float) -> list[dict[str, float | int]]:
    """(time, lag s) points grouped per minute from t0: count and p95 (ms) of each minute."""
    minutes: dict[int, list[float]] = {}
    for t, lag in points:
        minutes.setdefault(int((t - t0) // 60), []).append(lag)
    out: list[dict[str, float | int]] = []
    for minute, lags in sorted(minutes.items()):
        p95 = ms(percentile(lags, 0.95))
        out.append({"minute": minute, "events": len(lags), "p95_ms": p95 or 0.0})
    return out
