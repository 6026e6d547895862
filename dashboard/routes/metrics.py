"""`/metrics`: the live picture in Prometheus' text format, for the ops team's Grafana.

Scraped with a supervisor's API token (`Authorization: Bearer ...`, `hotline tokens create
--role supervisor`); the figures are the centre's (the rule refuses a tenant's token), from the
same sources the wallboard and /healthz read: the wallboard's shared facts (Redis live state, or
the call log when it is stale), the router's health report and the dependency checks. Every
scrape builds a fresh registry, so a queue that empties simply reports 0 and nothing is
remembered between scrapes (several dashboard workers answer alike).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import distinct, func, select
from starlette.concurrency import run_in_threadpool

from call_router import call_search, health
from call_router.call_event_kinds import EVENT_AGI_FAILED
from call_router.db import Database
from call_router.models import Call, CallEvent
from call_router.settings import QUEUES
from dashboard.deps import StateDep
from dashboard.routes.health import dependency_states
from dashboard.routes.wallboard import shared_facts
from dashboard.routes.wallboard_facts import BoardFacts, compose_snapshot

router = APIRouter(tags=["metrics"])


def _failsafe_calls_today(db: Database, since: datetime) -> int:
    """Calls since local midnight that met the FastAGI fail-safe (`[agi-fail]`)."""
    with db.session() as session:
        stmt = (
            select(func.count(distinct(CallEvent.call_id)))
            .join(Call, Call.id == CallEvent.call_id)
            .where(Call.started_at >= since, CallEvent.kind == EVENT_AGI_FAILED)
        )
        return int(session.scalar(stmt) or 0)


class _Picture(Collector):
    """The figures of one scrape, already read; `collect` only shapes them."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, doc)
    if value is not None:
        gauge.add_metric([], value)
    return gauge


def board_metrics(snapshot: dict[str, object], facts: BoardFacts) -> list[Metric]:
    queues = snapshot["queues"]
    assert isinstance(queues, list)
    by_queue = {
        "hotline_queue_waiting": ("Callers waiting in the queue now.", "waiting"),
        "hotline_queue_longest_wait_seconds": (
            "How long the longest-waiting caller has waited.",
            "longest_wait_seconds",
        ),
        "hotline_queue_offered_today": (
            "Calls that reached the queue since local midnight.",
            "offered",
        ),
        "hotline_queue_answered_today": ("Of them answered.", "answered"),
        "hotline_queue_abandoned_today": ("Of them abandoned while waiting.", "abandoned"),
        "hotline_queue_service_level_today": (
            "Share answered within the service-level time since local midnight (0..1).",
            "service_level",
        ),
        "hotline_queue_asa_seconds_today": ("Average speed of answer today.", "asa_seconds"),
    }
    metrics: list[Metric] = []
    for name, (doc, field) in by_queue.items():
        gauge = GaugeMetricFamily(name, doc, labels=["queue"])
        for stats in queues:
            value = stats.get(field)
            if field == "longest_wait_seconds" and value is None:
                value = 0
            if value is not None:
                gauge.add_metric([str(stats["queue"])], float(value))
        metrics.append(gauge)
    live = facts.live
    metrics += [
        _gauge(
            "hotline_calls_in_progress",
            "Calls in progress (menu, queue, talking).",
            len(facts.calls),
        ),
        _gauge(
            "hotline_callbacks_overdue",
            "Callback entries past their due time.",
            facts.overdue_callbacks,
        ),
        _gauge(
            "hotline_live_state_ok",
            "1: live figures from Redis are fresh; 0: stale or down.",
            int(live.ok),
        ),
        _gauge(
            "hotline_live_state_age_seconds",
            "Age of the router's last live-state heartbeat.",
            (facts.now - live.updated_at).total_seconds() if live.updated_at else None,
        ),
    ]
    if live.nodes:
        # A cluster: which node's live state counts (0: its router is not vouching for it).
        nodes = GaugeMetricFamily(
            "hotline_live_state_node_ok",
            "1: the node's live figures are fresh and counted; 0: stale, left out.",
            labels=["node"],
        )
        for node in live.nodes:
            nodes.add_metric([node.node], float(node.live))
        metrics.append(nodes)
    operators = snapshot.get("operators")
    states = GaugeMetricFamily("hotline_operators", "Operators by state.", labels=["state"])
    counted: dict[str, int] = {}
    if isinstance(operators, list):
        for operator in operators:
            state = (
                str(operator.get("state") or "unknown") if isinstance(operator, dict) else "unknown"
            )
            counted[state] = counted.get(state, 0) + 1
    for state, count in sorted(counted.items()):
        states.add_metric([state], count)
    metrics.append(states)
    return metrics


def router_metrics(report: health.RouterReport | None, now: datetime) -> list[Metric]:
    age = (now - report.updated_at).total_seconds() if report is not None else None
    running = report is not None and age is not None and age <= health.ROUTER_REPORT_STALE
    # A counter (resets when the router restarts; Prometheus' rate() allows for that).
    failed = CounterMetricFamily(
        "hotline_router_failed_events",
        "AMI events the router could not write (an error, not an outage) since it started.",
    )
    if report is not None:
        failed.add_metric([], report.failed_events)
    return [
        failed,
        _gauge("hotline_router_up", "1: the router reported recently.", int(running)),
        _gauge("hotline_router_report_age_seconds", "Age of the router's health report.", age),
        _gauge(
            "hotline_ami_connected",
            "1: the router is connected to Asterisk's AMI.",
            int(running and report is not None and report.ami_connected),
        ),
        _gauge(
            "hotline_ami_lag_seconds",
            "Seconds from an event leaving Asterisk to the router having written it.",
            report.lag_seconds if report is not None else None,
        ),
        _gauge(
            "hotline_router_pending_events",
            "Events received from Asterisk not yet handed to a writer.",
            report.pending_events if report is not None else None,
        ),
        _gauge(
            "hotline_router_backlog_events",
            "Events waiting for the database (memory and disk).",
            report.backlog if report is not None else None,
        ),
        _gauge(
            "hotline_router_spool_depth",
            "Events kept in the router's on-disk spool.",
            (report.spool_depth or 0) if report is not None else None,
        ),
        _gauge(
            "hotline_database_reachable",
            "1: the router's last write reached the database.",
            int(report.database_reachable) if report is not None else None,
        ),
    ]


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, state: StateDep) -> Response:
    settings = state.settings
    now = datetime.now(UTC)
    facts = await shared_facts(state)
    snapshot = compose_snapshot(facts, settings, settings.default_language)
    report = await run_in_threadpool(health.read_router_report, settings)
    dependencies = await run_in_threadpool(dependency_states, request, settings)
    since = call_search.start_of_day(now, state.zone)
    failsafe = await run_in_threadpool(_failsafe_calls_today, state.db, since)
    up = GaugeMetricFamily(
        "hotline_dependency_up", "1: the dependency answers.", labels=["dependency"]
    )
    for name, status in sorted(dependencies.items()):
        up.add_metric([name], int(status == "ok"))
    metrics = [
        *board_metrics(snapshot, facts),
        *router_metrics(report, now),
        up,
        _gauge(
            "hotline_agi_failsafe_calls_today",
            "Calls since local midnight that met the FastAGI fail-safe (errors on the menu path).",
            failsafe,
        ),
        _gauge("hotline_queues_configured", "Queues the hotline serves.", len(QUEUES)),
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Picture(metrics))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
