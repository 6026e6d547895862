"""Report buckets and bar geometry from plain values."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from call_router.reports import (
    Bar,
    bars,
    fold_slots,
    operator_figures,
    per_bucket,
    per_key,
    queue_figures,
    service_level_buckets,
    slot_of,
    summary,
)
from call_router.service_figures import OperatorTotals, QueueStats, QueueTotals

MOSCOW = ZoneInfo("Europe/Moscow")


def test_per_hour_uses_the_local_hour_and_lists_all_24() -> None:
    started = [
        datetime(2026, 11, 23, 6, 30, tzinfo=UTC),  # 09:30 in Moscow
        datetime(2026, 11, 23, 6, 59, tzinfo=UTC),
        datetime(2026, 11, 23, 21, 5, tzinfo=UTC),  # 00:05 the next local day
    ]
    result = dict(per_bucket(started, MOSCOW, "hour", date(2026, 11, 23), date(2026, 11, 23)))
    assert len(result) == 24
    assert result["09"] == 2 and result["00"] == 1 and result["12"] == 0


def test_per_day_lists_every_day_of_the_range() -> None:
    started = [datetime(2026, 11, 23, 21, 5, tzinfo=UTC)]  # 24th locally
    result = per_bucket(started, MOSCOW, "day", date(2026, 11, 22), date(2026, 11, 24))
    assert result == [("2026-11-22", 0), ("2026-11-23", 0), ("2026-11-24", 1)]


def test_per_key_counts_largest_first_with_a_label_for_missing() -> None:
    assert per_key(["no_heat", None, "leak", "no_heat", None, None]) == [
        ("—", 3),
        ("no_heat", 2),
        ("leak", 1),
    ]


def test_bars_scale_to_the_largest_value() -> None:
    result = bars([("a", 2), ("b", 4), ("c", 0)], width=300, height=100, gap=0)
    assert result == [
        Bar("a", 2, 0.0, 50.0, 100.0, 50.0),
        Bar("b", 4, 100.0, 0.0, 100.0, 100.0),
        Bar("c", 0, 200.0, 100.0, 100.0, 0.0),
    ]
    assert bars([], width=10, height=10) == []
    # All zero: flat bars, no division by zero.
    assert [b.height for b in bars([("a", 0)], width=10, height=10)] == [0.0]


def test_few_bars_keep_a_sensible_width() -> None:
    [bar] = bars([("only", 5)], width=120, height=10, gap=0, min_slots=12)
    assert bar.width == 10.0 and bar.x == 0.0


def test_slots_fold_into_local_hours_in_a_half_hour_zone() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+5:30: UTC hours would straddle local ones
    started = [datetime(2026, 11, 23, 3, 29, tzinfo=UTC), datetime(2026, 11, 23, 3, 30, tzinfo=UTC)]
    slots = {slot_of(at): 1 for at in started}
    hours = dict(fold_slots(slots, kolkata, "hour", date(2026, 11, 23), date(2026, 11, 23)))
    assert (hours["08"], hours["09"]) == (1, 1)


def test_slots_fold_into_local_days_across_a_dst_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # 29 Mar 2026: 02:00 CET -> 03:00 CEST
    started = [
        datetime(2026, 3, 28, 22, 59, tzinfo=UTC),  # 23:59 CET on the 28th
        datetime(2026, 3, 28, 23, 0, tzinfo=UTC),  # 00:00 CET on the 29th
        datetime(2026, 3, 29, 21, 59, tzinfo=UTC),  # 23:59 CEST on the 29th
        datetime(2026, 3, 29, 22, 0, tzinfo=UTC),  # 00:00 CEST on the 30th
    ]
    days = per_bucket(started, berlin, "day", date(2026, 3, 28), date(2026, 3, 30))
    assert days == [("2026-03-28", 1), ("2026-03-29", 2), ("2026-03-30", 1)]


def _totals(queue: str, **values: float) -> QueueTotals:
    base = dict.fromkeys(
        ("offered", "answered", "abandoned", "within", "decided", "wait_count", "talk_count"), 0
    )
    base.update(values)  # type: ignore[arg-type]
    return QueueTotals(
        queue=queue,
        wait_sum=float(values.get("wait_sum", 0)),
        talk_sum=float(values.get("talk_sum", 0)),
        **{k: int(v) for k, v in base.items() if k not in ("wait_sum", "talk_sum")},
    )


def test_queue_figures_list_configured_queues_first_and_make_means() -> None:
    totals = [
        _totals("zeta", offered=2, answered=1, decided=2, within=1, wait_sum=30, wait_count=1),
        _totals("heating", offered=4, answered=3, abandoned=1, decided=4, within=2,
                wait_sum=60, wait_count=3, talk_sum=300, talk_count=2),
    ]  # fmt: skip
    figures = queue_figures(totals, ("plumbing", "heating"))
    assert [f.queue for f in figures] == ["plumbing", "heating", "zeta"]
    assert figures[0] == QueueStats(queue="plumbing")
    heating = figures[1]
    assert (heating.offered, heating.answered, heating.abandoned) == (4, 3, 1)
    assert (heating.service_level, heating.asa_seconds, heating.aht_seconds) == (0.5, 20, 150)
    assert figures[2].aht_seconds is None


def test_summary_weighs_calls_not_queues() -> None:
    busy = _totals("a", offered=9, answered=9, decided=9, within=9, wait_sum=9, wait_count=9)
    quiet = _totals("b", offered=1, abandoned=1, decided=1)
    result = summary([busy, quiet])
    assert result.service_level == 0.9  # not the mean of 1.0 and 0.0
    assert (result.offered, result.abandon_rate, result.asa_seconds) == (10, 0.1, 1.0)
    assert summary([]).service_level is None


def test_operator_figures() -> None:
    totals = [
        OperatorTotals("Boris", answered=0, pauses=1, pause_seconds=60.0),
        OperatorTotals("Anna", answered=3, talk_sum=300.0, talk_count=2),
    ]
    anna, boris = operator_figures(totals)
    assert (anna.operator, anna.answered, anna.talk_seconds, anna.aht_seconds) == (
        "Anna", 3, 300.0, 150.0,
    )  # fmt: skip
    assert (boris.aht_seconds, boris.pauses, boris.pause_seconds) == (None, 1, 60.0)


def test_service_level_per_local_day_and_percent_bars() -> None:
    zone = ZoneInfo("Europe/Moscow")
    # 2026-12-01 22:30 UTC is already 2 December in Moscow.
    late = slot_of(datetime(2026, 12, 1, 22, 30, tzinfo=UTC))
    early = slot_of(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    levels = service_level_buckets(
        {early: 3, late: 1}, {early: 4, late: 4}, zone, "day", date(2026, 12, 1), date(2026, 12, 3)
    )
    assert levels == [("2026-12-01", 0.75), ("2026-12-02", 0.25), ("2026-12-03", None)]
    drawn = bars([("a", 50), ("b", 0)], width=100, height=100, top=100)
    assert drawn[0].height == 50 and drawn[1].height == 0
