"""The service-request report's figures, each defined once (call_router/request_figures.py),
on plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from call_router.request_figures import RequestFacts, figures, report

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)


def fact(**kw: object) -> RequestFacts:
    base: dict[str, object] = {
        "category": "heating",
        "district": "North",
        "crew": "Heat N",
        "created_at": T0,
        "sla_deadline": T0 + 24 * H,
        "assigned_at": None,
        "closed_at": None,
        "reopened": False,
    }
    base.update(kw)
    return RequestFacts(**base)  # type: ignore[arg-type]


def test_each_figure() -> None:
    now = T0 + 48 * H
    rows = [
        # finished in time, assigned after 1 h
        fact(assigned_at=T0 + H, closed_at=T0 + 10 * H),
        # finished late, assigned after 3 h, reopened once before
        fact(assigned_at=T0 + 3 * H, closed_at=T0 + 30 * H, reopened=True),
        # open and past its deadline: decided, not within
        fact(assigned_at=T0 + 2 * H),
        # open, deadline still ahead: not decided yet
        fact(sla_deadline=T0 + 72 * H, crew=None, district=None),
    ]
    f = figures("total", rows, now)
    assert (f.requests, f.assigned, f.finished) == (4, 3, 2)
    assert (f.assign_hours_mean, f.assign_hours_median) == (2.0, 2.0)
    assert (f.close_hours_mean, f.close_hours_median) == (20.0, 20.0)
    assert (f.within_sla, f.sla_decided, f.overdue_open) == (1, 3, 1)
    assert f.sla_share is not None and abs(f.sla_share - 1 / 3) < 1e-9
    # Reopened out of ever finished (the reopened one counts as finished once).
    assert (f.reopened, f.reopened_rate) == (1, 0.5)


def test_nothing_to_divide_is_none_not_zero() -> None:
    f = figures("total", [fact(sla_deadline=T0 + 72 * H)], T0 + H)
    assert f.sla_share is None and f.reopened_rate is None
    assert f.assign_hours_mean is None and f.close_hours_median is None
    assert figures("total", [], T0).requests == 0


def test_groups_by_category_district_and_crew() -> None:
    rows = [
        fact(),
        fact(category="lift", district="South", crew="Lifts"),
        fact(category="lift", district=None, crew=None),
    ]
    r = report(rows, T0)
    assert r.total.requests == 3
    assert [(g.key, g.requests) for g in r.groups["category"]] == [("lift", 2), ("heating", 1)]
    assert {g.key for g in r.groups["district"]} == {"North", "South", "—"}
    assert {g.key: g.requests for g in r.groups["crew"]} == {"Heat N": 1, "Lifts": 1, "—": 1}
