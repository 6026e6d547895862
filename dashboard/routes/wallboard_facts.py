"""What the wallboard shows, without the HTTP: the board's facts (today's sums from the call
log, the open calls, the roster, the live state cut to the reader's tenant wall) and their
composition into one screen's JSON snapshot in its language (dashboard/routes/wallboard.py
serves it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from call_router import (
    board_reads,
    call_search,
    call_sums,
    reports,
    request_reads,
    service_figures,
    tenant_boards,
    tenant_wall,
)
from call_router import wallboard as wb
from call_router.db import Database
from call_router.models import Call
from call_router.settings import QUEUES, Settings
from dashboard.i18n import translate
from dashboard.live import LiveView, parse_time
from dashboard.live_nodes import operator_entries
from dashboard.routes.schemas import iso_utc


def _db_call(row: Call, now: datetime) -> wb.LiveCall:
    """A call in progress as the call log alone knows it."""
    stage = wb.stage_of(row.answered_at, row.queue_joined_at)
    since = wb.stage_started(stage, row.started_at, row.queue_joined_at, row.answered_at)
    return wb.LiveCall(
        call_id=row.id,
        caller_number=row.caller_number,
        caller_name=row.caller_name,
        stage=stage,
        queue=row.queue,
        operator=row.operator,
        seconds_in_stage=wb.seconds_between(since, now),
        node=row.node,
    )


def _live_calls(rows: list[Call], live: LiveView, now: datetime) -> list[wb.LiveCall]:
    by_id = {row.id: row for row in rows}
    result: list[wb.LiveCall] = []
    if live.calls is not None:
        stale_nodes = live.stale_nodes
        if stale_nodes:
            # A cluster node without a recent heartbeat: its open calls from the call log.
            result.extend(
                _db_call(row, now)
                for row in rows
                if row.ended_at is None and row.node in stale_nodes
            )
        # Redis knows which calls are still up (the listener rebuilds it after a restart).
        for entry in live.calls.values():
            row = by_id.get(entry.get("call_id"))  # type: ignore[arg-type]
            started = (row.started_at if row else None) or parse_time(entry.get("started_at"))
            answered = (row.answered_at if row else None) or parse_time(entry.get("answered_at"))
            joined = row.queue_joined_at if row else None
            stage = str(entry.get("stage") or wb.stage_of(answered, joined))
            since = wb.stage_started(stage, started or now, joined, answered)
            result.append(
                wb.LiveCall(
                    call_id=entry.get("call_id") or (row.id if row else None),
                    caller_number=str(
                        entry.get("caller_number") or (row.caller_number if row else "")
                    ),
                    caller_name=entry.get("caller_name") or (row.caller_name if row else None),
                    stage=stage,
                    queue=entry.get("queue") or (row.queue if row else None),
                    operator=entry.get("operator") or (row.operator if row else None),
                    seconds_in_stage=wb.seconds_between(since, now),
                    node=entry.get("node") or (row.node if row else None),
                )
            )
    else:
        result.extend(_db_call(row, now) for row in rows if row.ended_at is None)
    result.sort(key=lambda c: -c.seconds_in_stage)
    return result


def _operators(
    roster: list[board_reads.RosterEntry],
    live: LiveView,
    calls: list[wb.LiveCall],
    now: datetime,
    lang: str,
) -> list[dict[str, Any]]:
    """Operator rows. Most specific source first: the live hash (if the listener writes one),
    then a call in progress, then the desired state in the database."""

    cluster = bool(live.nodes)

    def row(
        name: str,
        state: str,
        seconds: int | None,
        reason: str | None = None,
        node: str | None = None,
    ) -> dict[str, Any]:
        label = translate(lang, f"op.{state}")
        if label == f"op.{state}":
            label = state  # a state this UI has no words for yet: show the code
        if reason:
            label = f"{label} ({reason})"
        shown = {"name": name, "state": state, "state_label": label, "seconds_in_state": seconds}
        # In a cluster, the node the operator is on (one box: the rows as they always were).
        return {**shown, "node": node} if cluster else shown

    # The live hash is keyed by SIP login (call_router.agents): show the roster's name for it.
    names = {entry.login: entry.name for entry in roster if entry.login}
    seen: dict[tuple[str, str | None], dict[str, Any]] = {}
    for key, entry in operator_entries(live):
        name = names.get(key) or str(entry.get("name") or key)
        since = parse_time(
            entry.get("since") or entry.get("state_since") or entry.get("changed_at")
        )
        node = entry.get("node")
        seen[(name, node)] = row(
            name,
            str(entry.get("state") or "unknown"),
            wb.seconds_between(since, now) if since else None,
            entry.get("reason") or entry.get("pause_reason"),
            node,
        )
    shown = {name for name, _node in seen}
    for call in calls:
        if call.stage == wb.STAGE_TALKING and call.operator and call.operator not in shown:
            shown.add(call.operator)
            seen[(call.operator, call.node)] = row(
                call.operator, "talking", call.seconds_in_stage, node=call.node
            )
    for member in roster:
        if member.name not in shown:
            seconds = wb.seconds_between(member.since, now) if member.since else None
            seen[(member.name, None)] = row(
                member.name, member.state or "unknown", seconds, member.reason
            )
    return sorted(seen.values(), key=lambda op: (str(op["name"]).lower(), op.get("node") or ""))


def _alert_text(lang: str, alert: wb.Alert) -> str:
    percent = alert.kind == "service_level"
    value = round(alert.value * 100) if percent else int(alert.value)
    threshold = round(alert.threshold * 100) if percent else int(alert.threshold)
    return translate(
        lang, f"wb.alert.{alert.kind}", queue=alert.queue or "", value=value, threshold=threshold
    )


def _queue_owner(queue: str, labels: dict[str, tenant_boards.QueueLabel]) -> dict[str, Any]:
    """Whose queue it is (added fields): a tenant's own (`tenant`, "Name · service") or the
    centre's (`tenant` null, the queue's name)."""
    own = labels.get(queue)
    if own is None:
        return {"tenant": None, "label": queue}
    return {"tenant": own.tenant, "label": own.label}


@dataclass(frozen=True)
class BoardFacts:
    """What the board is computed from at `now`, before any language or per-screen detail:
    the part shared by every screen of a dashboard process (see `shared_facts`)."""

    now: datetime
    live: LiveView
    totals: list[service_figures.QueueTotals]
    calls: list[wb.LiveCall]
    roster: list[board_reads.RosterEntry]
    overdue_callbacks: int
    # The target the scope is measured against (a tenant's own, else the centre's), and the
    # tenants' own queues the scope may see, labelled.
    level: tenant_boards.ServiceLevel
    own_queues: list[tenant_boards.QueueLabel]
    # Service requests past their deadline, by who must act now (dispatchers, supervisors).
    requests: request_reads.Escalated = request_reads.Escalated()


def walled_live(
    live: LiveView, rows: list[Call], roster: list[board_reads.RosterEntry]
) -> LiveView:
    """Redis's live state cut down to what a scope's database rows allow: the calls among
    `rows` (the scope's open calls), the operators on `roster` (the scope's), callers waiting
    counted from those calls. Redis holds every tenant's live state; it is not behind the ORM
    wall, so a walled board takes from it only what the wall let through."""
    if live.calls is None:
        return live
    ids = {row.id for row in rows}
    calls = {key: entry for key, entry in live.calls.items() if entry.get("call_id") in ids}
    waiting: dict[str, int] = {}
    for entry in calls.values():
        if entry.get("stage") == wb.STAGE_QUEUE and entry.get("queue"):
            queue = str(entry["queue"])
            waiting[queue] = waiting.get(queue, 0) + 1
    logins = {member.login for member in roster if member.login}
    operators = {key: entry for key, entry in (live.operators or {}).items() if key in logins}
    by_node = live.operators_by_node
    if by_node is not None:
        by_node = {
            node: {key: entry for key, entry in mine.items() if key in logins}
            for node, mine in by_node.items()
        }
    return replace(
        live, calls=calls, waiting=waiting, operators=operators, operators_by_node=by_node
    )


def gather_facts(
    db: Database,
    settings: Settings,
    zone: ZoneInfo,
    live: LiveView,
    now: datetime | None = None,
    scope: tenant_wall.Scope = tenant_wall.EVERYTHING,
) -> BoardFacts:
    """The database side of the board, behind `scope`'s wall. Sync: runs in the thread pool."""
    now = now or datetime.now(UTC)
    since = call_search.start_of_day(now, zone)
    centre = tenant_boards.ServiceLevel(
        settings.service_level_seconds, settings.service_level_target
    )
    with db.session() as session:
        tenant_wall.set_scope(session, scope)
        level = tenant_boards.service_level_of(session, scope, centre)
        own_queues = tenant_boards.own_queue_labels(session)
        # Today's figures are summed by the database; only calls still open are read as rows.
        totals = call_sums.queue_totals(
            session,
            since,
            now + timedelta(days=1),
            threshold=level.seconds,
            now=now,
        )
        rows = board_reads.open_calls(session, now)
        roster = board_reads.roster(session)
        overdue_db = board_reads.overdue_callbacks(session, now)
        requests = request_reads.escalated_requests(session, now)
        if not scope.everything:
            live = walled_live(live, rows, roster)
        calls = _live_calls(rows, live, now)
    return BoardFacts(
        now, live, totals, calls, roster, overdue_db or 0, level, own_queues, requests
    )


def _call_fields(call: wb.LiveCall, cluster: bool) -> dict[str, Any]:
    fields = asdict(call)
    if not cluster:
        del fields["node"]  # one box: the rows as they always were
    return fields


def _waiting_by_node(calls: list[wb.LiveCall]) -> dict[str, dict[str, int]]:
    """Queue -> node -> callers waiting there (a cluster's queues exist on every node)."""
    counts: dict[str, dict[str, int]] = {}
    for call in calls:
        if call.stage == wb.STAGE_QUEUE and call.queue and call.node:
            mine = counts.setdefault(call.queue, {})
            mine[call.node] = mine.get(call.node, 0) + 1
    return counts


def compose_snapshot(
    facts: BoardFacts, settings: Settings, lang: str, *, overdue_events: int = 0
) -> dict[str, Any]:
    """The wallboard as JSON-ready values, in `lang`. Pure and cheap: per request."""
    calls, live, now = facts.calls, facts.live, facts.now
    cluster = bool(live.nodes)
    current_waits: dict[str, list[float]] = {}
    for call in calls:
        if call.stage == wb.STAGE_QUEUE and call.queue:
            current_waits.setdefault(call.queue, []).append(call.seconds_in_stage)
    labels = {q.queue: q for q in facts.own_queues}
    stats = reports.queue_figures(
        facts.totals,
        [*QUEUES, *labels],
        waiting=live.waiting or {},
        current_waits=current_waits,
    )
    by_node = _waiting_by_node(calls) if cluster else {}
    found = wb.alerts(
        stats,
        service_level_target=facts.level.target,
        waiting_threshold=settings.wallboard_waiting_alert,
        overdue_callbacks=max(facts.overdue_callbacks, overdue_events),
        overdue_requests=facts.requests.dispatcher,
        escalated_requests=facts.requests.supervisor,
    )
    return {
        "generated_at": iso_utc(now),
        **live.status(now),
        "service_level_seconds": facts.level.seconds,
        "service_level_target": facts.level.target,
        "queues": [
            {
                **asdict(s),
                **_queue_owner(s.queue, labels),
                # A cluster: where the callers wait (the queue's figures sum every node's).
                **({"waiting_by_node": by_node.get(s.queue, {})} if cluster else {}),
            }
            for s in stats
        ],
        "operators": _operators(facts.roster, live, calls, now, lang),
        "calls": [
            {**_call_fields(c, cluster), "stage_label": translate(lang, f"stage.{c.stage}")}
            for c in calls
        ],
        "alerts": [{**asdict(a), "text": _alert_text(lang, a)} for a in found],
    }
