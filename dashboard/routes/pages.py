"""HTML pages: today's calls (`/`), the call log (`/calls`, its CSV export) and call detail.

Server-rendered first, so every page works without JavaScript; static/dashboard.js then keeps the
home page fresh from the JSON API. All texts go through dashboard.i18n.
"""

from __future__ import annotations

import math
import time as time_module
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from call_router import board_reads, call_search, callback_list, date_range, tenant_wall
from call_router.call_search import CallFilter
from call_router.callbacks import CALLBACK_OPEN
from call_router.db import Database
from call_router.dispositions import disposition_history
from call_router.settings import QUEUES
from dashboard import csv_export
from dashboard.deps import SessionDep, SettingsDep, StateDep
from dashboard.i18n import render
from dashboard.routes.schemas import RowId

router = APIRouter(include_in_schema=False)

# How often the page asks the API for news; "a test call shows up within a few seconds".
REFRESH_MS = 2000
PAGE_SIZE = 50
# The call log counts matching calls up to here (or up to the page asked for): an exact count
# reads every match, ~170 ms for a million calls. Beyond it the page says "10000+".
COUNT_CAP = 10_000
# One export is a file for a spreadsheet, not a backup: bound it.
EXPORT_MAX = 100_000
EXPORT_CHUNK = 1000

FilterText = Annotated[str | None, Query(max_length=64)]
FILTER_COLUMNS = ("queue", "intent", "outcome", "operator")
# The filter menus' choices (values seen in the log) change rarely, and reading them is four
# index walks per page: each process reads them again after this long.
OPTIONS_TTL_SECONDS = 30.0


class FilterOptions:
    """The call log's menu choices, read at most every OPTIONS_TTL_SECONDS (per app)."""

    def __init__(self, clock: Callable[[], float] = time_module.monotonic) -> None:
        self._clock = clock
        # Per tenant wall (call_router/tenant_wall.py): one tenant never sees another's values.
        self._read: dict[tenant_wall.Scope, tuple[float, dict[str, list[str]]]] = {}

    def get(self, session: Session) -> dict[str, list[str]]:
        now = self._clock()
        scope = tenant_wall.scope_of(session)
        read = self._read.get(scope)
        if read is None or now - read[0] >= OPTIONS_TTL_SECONDS:
            # Two threads may both read at expiry: same values, no lock needed.
            values = {name: call_search.distinct_values(session, name) for name in FILTER_COLUMNS}
            read = self._read[scope] = (now, values)
        return read[1]

    @staticmethod
    def of(request: Request) -> FilterOptions:
        state = request.app.state
        if not hasattr(state, "call_log_options"):
            state.call_log_options = FilterOptions()
        options: FilterOptions = state.call_log_options
        return options


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
def calls_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    state: StateDep,
    caller: FilterText = None,
) -> Response:
    caller = (caller or "").strip() or None
    now = datetime.now(UTC)
    since = call_search.start_of_day(now, state.zone)
    if caller is None:
        calls = call_search.todays_calls(session, now, state.zone)
    else:
        # A search looks through the whole log, not just today.
        calls = call_search.list_calls(session, caller=caller, country=settings.country_code)
    # The same calling order as the callbacks page and the live refresh of this list.
    open_callbacks = callback_list.list_callbacks(session, CALLBACK_OPEN, now=now)[
        : call_search.MAX_PAGE
    ]
    return render(
        state.templates,
        request,
        "calls/list.html",
        {
            "calls": calls,
            "callbacks": open_callbacks,
            "search": caller,
            "since": None if caller else since,
            "day": since.date(),
            "zone": state.zone.key,
            "refresh_ms": REFRESH_MS,
            "limit": call_search.TODAY_LIMIT,
        },
        settings.default_language,
    )


def _clean(value: str | None) -> str | None:
    """A form sends empty strings for untouched fields: those mean "any"."""
    value = (value or "").strip()
    return value or None


def _local_day(value: str | None, zone: ZoneInfo) -> tuple[datetime | None, bool]:
    """Local midnight of a YYYY-MM-DD date; (None, False) when empty, (None, True) when bad."""
    if value is None:
        return None, False
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None, True
    if not date_range.usable(day):
        return None, True
    return datetime.combine(day, time.min, tzinfo=zone), False


class CallLogForm:
    """The call log's filter fields as typed: the page and its CSV export take the same."""

    def __init__(
        self,
        caller: FilterText = None,
        date_from: Annotated[str | None, Query(max_length=10)] = None,
        date_to: Annotated[str | None, Query(max_length=10)] = None,
        queue: FilterText = None,
        intent: FilterText = None,
        outcome: FilterText = None,
        operator: FilterText = None,
        direction: FilterText = None,
    ) -> None:
        self.caller = _clean(caller)
        self.date_from = _clean(date_from)
        self.date_to = _clean(date_to)
        self.queue = _clean(queue)
        self.intent = _clean(intent)
        self.outcome = _clean(outcome)
        self.operator = _clean(operator)
        # inbound / callback / internal (Call.direction); anything else matches no call.
        self.direction = _clean(direction)

    def echo(self) -> dict[str, str]:
        """What the form shows again, and what page links carry along."""
        return {key: value or "" for key, value in vars(self).items()}


CallLogFormDep = Annotated[CallLogForm, Depends()]


def page_filter(zone: ZoneInfo, form: CallLogForm) -> tuple[CallFilter, bool]:
    """The call log form as a CallFilter (dates are local days, both ends included)."""
    since, bad_from = _local_day(form.date_from, zone)
    to_day, bad_to = _local_day(form.date_to, zone)
    # "To 3rd" includes the whole 3rd: stop at the next local midnight (DST-safe via date math).
    until = (
        datetime.combine(to_day.date() + timedelta(days=1), time.min, tzinfo=zone)
        if to_day is not None
        else None
    )
    flt = CallFilter(
        caller=form.caller,
        since=since,
        until=until,
        queue=form.queue,
        intent=form.intent,
        outcome=form.outcome,
        operator=form.operator,
        direction=form.direction,
    )
    return flt, bad_from or bad_to


@router.get("/calls", response_class=HTMLResponse)
def call_log_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    state: StateDep,
    form: CallLogFormDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    flt, bad_date = page_filter(state.zone, form)
    # Enough to know whether this page has a next one; past the cap the total is "N+".
    cap = max(COUNT_CAP, page * PAGE_SIZE) + 1
    counted = call_search.count_calls(session, flt, country=settings.country_code, cap=cap)
    exact = counted < cap
    total = counted if exact else cap - 1
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if exact:
        page = min(page, pages)
    calls = call_search.list_calls(
        session,
        where=flt,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        country=settings.country_code,
    )
    # The form echoes what was typed; the links carry the same filters.
    echo = form.echo()
    # The language is not carried along: the cookie remembers it.
    query = {key: value for key, value in echo.items() if value}
    return render(
        state.templates,
        request,
        "calls/log.html",
        {
            "calls": calls,
            "form": echo,
            "query": query,
            "search": form.caller,
            "bad_date": bad_date,
            "total": total if exact else f"{total}+",
            "page": page,
            "pages": pages if exact else f"{pages}+",
            "has_next": page < pages or not exact,
            "options": FilterOptions.of(request).get(session),
            "time_format": "%Y-%m-%d %H:%M:%S",
        },
        settings.default_language,
    )


def _export_rows(db: Database, flt: CallFilter, country: str, zone: ZoneInfo) -> Iterator[str]:
    # Own session: the response streams after the request's dependencies are gone.
    yield from csv_export.encode_rows([csv_export.COLUMNS])
    for offset in range(0, EXPORT_MAX, EXPORT_CHUNK):
        with db.session() as session:
            calls = call_search.list_calls(
                session, where=flt, limit=EXPORT_CHUNK, offset=offset, country=country
            )
            rows = [csv_export.call_row(call, zone) for call in calls]
        yield from csv_export.encode_rows(rows)
        if len(calls) < EXPORT_CHUNK:
            return


@router.get("/calls/export.csv")
def call_log_export(
    settings: SettingsDep,
    state: StateDep,
    form: CallLogFormDep,
) -> StreamingResponse:
    flt, bad_date = page_filter(state.zone, form)
    if bad_date:
        raise HTTPException(status_code=422, detail="dates are YYYY-MM-DD")
    stamp = datetime.now(state.zone).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        _export_rows(state.db, flt, settings.country_code, state.zone),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="calls-{stamp}.csv"'},
    )


# Optional columns and tables other changes add; the page shows them once they exist.
OPTIONAL_FIELDS = ("transcript", "intent_confidence", "utterance_path")


@router.get("/calls/{call_id}", response_class=HTMLResponse)
def call_page(
    call_id: RowId, request: Request, session: SessionDep, settings: SettingsDep, state: StateDep
) -> Response:
    call = call_search.call_with_events(session, call_id)
    if call is None:
        raise HTTPException(status_code=404, detail="call not found")
    extras = {name: getattr(call, name, None) for name in OPTIONAL_FIELDS}
    return render(
        state.templates,
        request,
        "calls/detail.html",
        {
            "call": call,
            "search": None,
            "extras": extras,
            "disposition": board_reads.disposition_of(session, call_id),
            "disposition_history": disposition_history(session, call_id),
            # Where a supervisor may move a waiting caller (dashboard/routes/api_control.py).
            "control_queues": QUEUES,
        },
        settings.default_language,
    )
