"""The router's own health report (call_router/health.py), from plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from call_router import health
from call_router.settings import Settings

NOW = datetime(2026, 12, 4, 22, 0, tzinfo=UTC)


def report(**changes: object) -> health.RouterReport:
    values: dict[str, object] = {
        "updated_at": NOW - timedelta(seconds=3),
        "ami_connected": True,
        "asterisk_started_at": NOW - timedelta(hours=1),
        "lag_seconds": 0.05,
        "pending_events": 0,
        "spool_depth": None,
        **changes,
    }
    return health.RouterReport(**values)  # type: ignore[arg-type]


def by_name(checks: list[health.Check]) -> dict[str, health.Check]:
    return {check.name: check for check in checks}


def test_a_fresh_report_of_a_connected_router_is_healthy() -> None:
    checks = by_name(health.router_checks(report(), NOW))
    assert checks["ami_link"].ok and checks["router_lag"].ok and checks["router_spool"].ok
    assert "0.05" in checks["router_lag"].detail


def test_no_report_or_an_old_one_means_the_router_is_not_running() -> None:
    for missing in (None, report(updated_at=NOW - timedelta(minutes=5))):
        checks = by_name(health.router_checks(missing, NOW))
        assert not checks["ami_link"].ok and "not running" in checks["ami_link"].detail
        assert "hotline up" in checks["ami_link"].hint


def test_a_lost_ami_link_and_a_long_lag_are_reported_with_what_to_do() -> None:
    checks = by_name(
        health.router_checks(report(ami_connected=False, lag_seconds=42.0, pending_events=900), NOW)
    )
    assert not checks["ami_link"].ok and "hotline asterisk up" in checks["ami_link"].hint
    assert not checks["router_lag"].ok and "42.0 s behind" in checks["router_lag"].detail


def test_the_report_survives_its_file_and_a_broken_file_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "run" / health.ROUTER_HEALTH_FILE
    written = report(spool_depth=12, heard_until=NOW - timedelta(seconds=3))
    health.write_router_health(path, written)
    assert health.read_router_health(path) == written
    path.write_text("{not json")
    assert health.read_router_health(path) is None


def test_check_names_are_the_names_check_all_gives(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path, ami_port=1, agi_port=1, redis_url="redis://127.0.0.1:1/0"
    )
    assert tuple(check.name for check in health.check_all(settings)) == health.CHECK_NAMES


def test_what_the_router_had_heard_is_carried_over_its_restart(tmp_path: Path) -> None:
    """A restarted router must know since when calls may have gone unlogged: the moment its
    predecessor's link was last up, whatever that one wrote after losing it."""
    from call_router.listener_health import ListenerHealth

    settings = Settings(state_dir=tmp_path)
    path = health.router_health_path(settings)
    clock = [NOW]
    holding = [False]  # events waiting for the database (in memory: lost to a kill)

    def started() -> ListenerHealth:
        class Backlog(list[object]):
            spool_depth = None

        writer = SimpleNamespace(
            backlog=Backlog(), db_reachable=True, failed_events=0, holding=lambda: holding[0]
        )
        return ListenerHealth(
            settings,
            writer,  # type: ignore[arg-type]
            clock=lambda: clock[0],
            pending_events=lambda: 0,
            failed_events=lambda: 0,
        )

    assert started().heard_until() is None  # no router ever ran here
    # A report from before the field: its own time, if its link was up.
    health.write_router_health(path, report(updated_at=NOW - timedelta(minutes=1)))
    first = started()
    assert first.heard_until() == NOW - timedelta(minutes=1)
    first.link_changed(object())  # type: ignore[arg-type]
    clock[0] = NOW + timedelta(minutes=5)
    assert first.report().heard_until == NOW + timedelta(minutes=5)
    first.link_changed(None)  # the link lost at +5 min; the report goes on being written
    clock[0] = NOW + timedelta(minutes=9)
    health.write_router_health(path, first.report())
    assert health.read_router_health(path).ami_connected is False  # type: ignore[union-attr]
    # Killed at +9 min: the next router knows nothing was heard after +5 min.
    second = started()
    assert second.heard_until() == NOW + timedelta(minutes=5)
    # Linked again, but the database is away: what it hears waits in memory, so the moment
    # stays where the outage found it until the backlog is written.
    second.link_changed(object())  # type: ignore[arg-type]
    assert second.heard_until() == NOW + timedelta(minutes=9)
    holding[0] = True
    clock[0] = NOW + timedelta(minutes=20)
    assert second.report().heard_until == NOW + timedelta(minutes=9)
    holding[0] = False
    assert second.heard_until() == NOW + timedelta(minutes=20)
