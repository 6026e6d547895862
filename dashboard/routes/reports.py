"""`/reports`: calls per hour or day, by queue, intent and operator, abandonment, ASA, service
level, operators' talk and pause time.

Charts are SVG rendered on the server (call_router.reports.bars): no chart library, no script,
nothing the strict CSP has to allow. `/reports/export.csv` gives the same tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from call_router import call_sums, report_rollup_reads, reports, tenant_boards, tenant_wall, tenants
from call_router.service_figures import QueueStats
from call_router.settings import QUEUES, Settings
from dashboard import csv_export
from dashboard.deps import SessionDep, SettingsDep, StateDep
from dashboard.i18n import render
from dashboard.routes.analytics_params import local_days

router = APIRouter(include_in_schema=False)

DEFAULT_DAYS = 7
# Closed quarter hours are read pre-aggregated (call_router.report_rollup_reads); a range's first
# visit rolls them up (one live pass): keep it bounded.
MAX_DAYS = 92
CHART_WIDTH, CHART_HEIGHT = 720, 160

Section = Literal[
    "buckets", "queues", "intents", "operators", "tenants", "service_level", "directions"
]


@dataclass(frozen=True)
class Report:
    first: date
    last: date
    by: reports.Bucket
    total: int
    answered: int
    abandoned: int
    abandon_rate: float | None
    service_level: float | None
    asa_seconds: float | None
    buckets: list[tuple[str, int]]
    queues: list[QueueStats]
    intents: list[tuple[str, int]]
    operators: list[reports.OperatorFigures]
    aht_seconds: float | None = None
    # The roll-up by tenant (`queue` is the tenant's slug, or `centre`): one row per tenant
    # whose calls the reader may see (a tenant's supervisor: its own only).
    tenants: list[QueueStats] = field(default_factory=list)
    # The service level per bucket (None: no call decided in it): the SLA-over-time chart.
    service_levels: list[tuple[str, float | None]] = field(default_factory=list)
    # Calls per direction (inbound / callback / internal): every figure above, `total` and
    # the calls and intents charts included, counts callers (inbound) only.
    directions: dict[str, int] = field(default_factory=dict)
    # What the service level is measured against: one tenant's own target where its report
    # is read and it set one, else the centre's (the roll-up by tenant keeps the centre's).
    service_level_seconds: int = 20
    service_level_target: float = 0.8


def _range(zone: ZoneInfo, date_from: str | None, date_to: str | None) -> tuple[date, date]:
    return local_days(zone, date_from, date_to, default_days=DEFAULT_DAYS, max_days=MAX_DAYS)


def build_report(
    session: Session,
    settings: Settings,
    zone: ZoneInfo,
    first: date,
    last: date,
    by: reports.Bucket,
    *,
    now: datetime | None = None,
) -> Report:
    """The local days first..last: the database aggregates (rolled-up quarter hours plus the
    live GROUP BY of the rest: call_router.report_rollup_reads), this only folds."""
    now = now or datetime.now(UTC)
    since = datetime.combine(first, time.min, tzinfo=zone)
    until = datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone)
    level = tenant_boards.service_level_of(
        session,
        tenant_wall.scope_of(session),
        tenant_boards.ServiceLevel(settings.service_level_seconds, settings.service_level_target),
    )
    figures = report_rollup_reads.report_figures(
        session, since, until, threshold=level.seconds, now=now
    )
    slots, totals = figures.slots, figures.queues
    overall = reports.summary(totals)
    names = tenants.slugs(session)
    by_tenant = [
        replace(t, queue=names.get(tenant_id, str(tenant_id)) if tenant_id else tenant_wall.CENTRE)
        for tenant_id, t in call_sums.tenant_totals(
            session, since, until, threshold=settings.service_level_seconds, now=now
        ).items()
    ]
    within, decided = report_rollup_reads.service_level_slots(
        session, since, until, threshold=level.seconds, now=now
    )
    return Report(
        first=first,
        last=last,
        by=by,
        total=sum(slots.values()),
        answered=overall.answered,
        abandoned=overall.abandoned,
        abandon_rate=overall.abandon_rate,
        service_level=overall.service_level,
        asa_seconds=overall.asa_seconds,
        aht_seconds=overall.aht_seconds,
        buckets=reports.fold_slots(slots, zone, by, first, last),
        queues=reports.queue_figures(totals, QUEUES),
        intents=reports.ranked(figures.intents),
        operators=reports.operator_figures(
            call_sums.operator_totals(session, since, until, now=now, calls=figures.operators)
        ),
        tenants=reports.queue_figures(by_tenant, ()),
        service_levels=reports.service_level_buckets(within, decided, zone, by, first, last),
        directions=call_sums.calls_per_direction(session, since, until),
        service_level_seconds=level.seconds,
        service_level_target=level.target,
    )


DateText = Annotated[str | None, Query(max_length=10)]
ByParam = Annotated[Literal["hour", "day"], Query()]
# `?tenant=SLUG` (or `centre`): one tenant's report; it only narrows the reader's wall.
TenantParam = Annotated[str | None, Query(max_length=32)]


@router.get("/reports", response_class=HTMLResponse)
def reports_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    state: StateDep,
    date_from: DateText = None,
    date_to: DateText = None,
    by: ByParam = "day",
    tenant: TenantParam = None,
) -> Response:
    first, last = _range(state.zone, date_from or None, date_to or None)
    tenant_wall.narrow(session, tenant)
    report = build_report(session, settings, state.zone, first, last, by)
    query = {"date_from": first.isoformat(), "date_to": last.isoformat(), "by": by}
    if tenant:
        query["tenant"] = tenant
    return render(
        state.templates,
        request,
        "reports.html",
        {
            "search": None,
            "r": report,
            "tenant": tenant or "",
            # The filter's choices: only the centre's staff may know every tenant's slug.
            "tenant_choices": [t.slug for t in tenants.list_tenants(session)]
            if tenant_wall.current().everything
            else [],
            "query": query,
            # The abandoned-call and agent-session pages open on the period (and tenant) shown.
            "period_query": {k: v for k, v in query.items() if k != "by"},
            "sl_seconds": report.service_level_seconds,
            "sl_target": round(report.service_level_target * 100),
            "size": {"width": CHART_WIDTH, "height": CHART_HEIGHT},
            "bucket_bars": reports.bars(report.buckets, width=CHART_WIDTH, height=CHART_HEIGHT),
            "sl_bars": reports.bars(
                [
                    (label, round(100 * sl) if sl is not None else 0)
                    for label, sl in report.service_levels
                ],  # fmt: skip
                width=CHART_WIDTH,
                height=CHART_HEIGHT,
                top=100,
            ),
            "intent_bars": reports.bars(
                report.intents[:20], width=CHART_WIDTH, height=CHART_HEIGHT, min_slots=12
            ),
        },
        settings.default_language,
    )


OPERATOR_COLUMNS = tuple(f.name for f in fields(reports.OperatorFigures))


def _cell(value: object) -> str:
    """Numbers as numbers (seconds rounded to whole ones), text defused for spreadsheets."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(round(value))
    if isinstance(value, int):
        return str(value)
    return csv_export.safe_cell(value)


def _section_rows(report: Report, section: Section) -> Iterator[list[str]]:
    if section == "buckets":
        yield [report.by, "calls"]
        for label, count in report.buckets:
            yield [label, str(count)]
    elif section == "service_level":
        yield [report.by, "service_level"]
        for label, sl in report.service_levels:
            yield [label, "" if sl is None else f"{sl:.3f}"]
    elif section == "directions":
        yield ["direction", "calls"]
        for direction, count in sorted(report.directions.items()):
            yield [csv_export.safe_cell(direction), str(count)]
    elif section == "intents":
        yield ["intent", "calls"]
        for label, count in report.intents:
            yield [csv_export.safe_cell(label), str(count)]
    elif section == "operators":
        yield list(OPERATOR_COLUMNS)
        for figures in report.operators:
            values = asdict(figures)
            yield [_cell(values[f]) for f in OPERATOR_COLUMNS]
    else:
        table = report.tenants if section == "tenants" else report.queues
        fields = list(asdict(table[0])) if table else ["queue"]
        if section == "tenants":
            fields = ["tenant" if f == "queue" else f for f in fields]
        yield fields
        for stats in table:
            values = asdict(stats)
            values["tenant"] = values["queue"]
            yield ["" if values[f] is None else csv_export.safe_cell(values[f]) for f in fields]


@router.get("/reports/export.csv")
def reports_export(
    session: SessionDep,
    settings: SettingsDep,
    state: StateDep,
    date_from: DateText = None,
    date_to: DateText = None,
    by: ByParam = "day",
    section: Annotated[Section, Query()] = "queues",
    tenant: TenantParam = None,
) -> StreamingResponse:
    first, last = _range(state.zone, date_from or None, date_to or None)
    tenant_wall.narrow(session, tenant)
    report = build_report(session, settings, state.zone, first, last, by)
    rows = list(_section_rows(report, section))
    name = f"report-{section}-{first.isoformat()}-{last.isoformat()}.csv"
    return StreamingResponse(
        csv_export.encode_rows(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
