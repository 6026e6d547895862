"""The soak benchmark's arithmetic (bench/soak/metrics.py; bench/callstack.py's percentile and
lag summary)."""

from __future__ import annotations

import pytest

from bench.callstack import lag_summary, percentile, row_faults
from bench.soak.metrics import (
    Phase,
    growth_pct,
    per_minute,
    process_report,
    slope_per_hour,
    window_median,
)

MB = 2**20


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert percentile([float(v) for v in range(101)], 0.95) == pytest.approx(95.0)
    assert percentile([1.0, 2.0], 1.0) == 2.0


def test_window_median_ignores_samples_outside_and_spikes_inside() -> None:
    series = [(0.0, 100.0), (10.0, 10.0), (11.0, 500.0), (12.0, 12.0), (30.0, 1.0)]
    assert window_median(series, 10, 12) == 12.0
    assert window_median(series, 40, 50) is None


def test_growth_pct() -> None:
    assert growth_pct(100.0, 104.0) == pytest.approx(4.0)
    assert growth_pct(200.0, 150.0) == pytest.approx(-25.0)
    assert growth_pct(None, 5.0) is None
    assert growth_pct(0.0, 5.0) is None


def test_slope_per_hour() -> None:
    # 1 unit per minute = 60 per hour, whatever the noise-free offset.
    assert slope_per_hour([(60.0 * i, 10.0 + i) for i in range(10)]) == pytest.approx(60.0)
    assert slope_per_hour([(5.0, 1.0)]) is None
    assert slope_per_hour([(5.0, 1.0), (5.0, 2.0)]) is None


def test_process_report_growth_after_warmup_and_pass_line() -> None:
    phase = Phase(warmup_end=100.0, end=400.0, window=50.0)
    # Warm-up doubles the memory (not counted); then 100 MB → 104 MB: 4 % passes.
    rss = [(float(t), 50.0 * MB) for t in range(0, 100, 10)]
    rss += [(float(t), 100.0 * MB) for t in range(100, 160, 10)]
    rss += [(float(t), 104.0 * MB) for t in range(350, 410, 10)]
    fds = [(110.0, 40.0), (120.0, 42.0), (360.0, 41.0), (390.0, 45.0)]
    report = process_report(rss, fds, phase)
    assert report["rss_start_mb"] == 100.0
    assert report["rss_end_mb"] == 104.0
    assert report["growth_pct"] == 4.0
    assert report["fds_start"] == 41.0
    assert report["fds_end"] == 43.0
    assert report["pass"] is True
    # 100 MB → 106 MB: 6 % fails.
    grown = [(t, 106.0 * MB if t >= 350 else v) for t, v in rss if t >= 100]
    failing = process_report(grown, [], phase)
    assert failing["growth_pct"] == 6.0
    assert failing["pass"] is False
    assert failing["fds_start"] is None


def test_process_report_without_samples_at_the_end_does_not_pass() -> None:
    phase = Phase(warmup_end=100.0, end=400.0, window=50.0)
    gone = process_report([(110.0, 10.0 * MB)], [], phase)
    assert gone["growth_pct"] is None
    assert gone["pass"] is False


def test_lag_summary_and_per_minute() -> None:
    summary = lag_summary([0.010, 0.020, 0.030, 1.0])
    assert summary["n"] == 4
    assert summary["p50"] == 25.0
    assert summary["max"] == 1000.0
    assert lag_summary([])["p95"] is None
    minutes = per_minute([(1000.0, 0.01), (1030.0, 0.02), (1065.0, 0.5)], t0=1000.0)
    assert minutes == [
        {"minute": 0, "events": 2, "p95_ms": 19.5},
        {"minute": 1, "events": 1, "p95_ms": 500.0},
    ]


def test_row_faults_lost_duplicated_unfinished() -> None:
    done = {"ended_at": "t", "outcome": "answered"}
    rows = {
        "+1": [done],
        "+2": [done, done],
        "+3": [{"ended_at": None, "outcome": None}],
    }
    faults = row_faults({"+1", "+2", "+3", "+4"}, rows)
    assert faults == {"lost": ["+4"], "duplicated": ["+2"], "unfinished": ["+3"]}
    assert row_faults({"+1"}, rows) == {"lost": [], "duplicated": [], "unfinished": []}
