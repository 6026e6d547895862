"""The supervisor's flows page: `/flows` shows which voice-menu flows the running FastAGI server
has live, when it last (re)loaded them, and what `hotline flows check` says about the files now;
`POST /flows/reload` does what `hotline flows reload` does.

Both do what the CLI does, through call_router/flows/admin.py (check_flows, reload_flows,
read_status); which process is the running server comes from call_router/pid_files.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from call_router.flows.admin import (
    ReloadOutcome,
    check_flows,
    flows_status_file,
    read_status,
    reload_flows,
)
from call_router.flows.loader import flow_files
from call_router.flows.schema import Flow
from call_router.pid_files import read_pid
from dashboard.deps import StateDep
from dashboard.i18n import render

router = APIRouter(include_in_schema=False)

# What a reload came to (the `reloaded` query parameter after the redirect).
RELOAD_RESULTS = ("reloaded", "refused", "not_running", "unconfirmed")


@dataclass(frozen=True)
class FlowRow:
    name: str
    file: str | None  # None: running, but its file is gone
    flow: Flow | None  # None: the file does not validate now
    live: bool


def flow_rows(folder_files: list[str], valid: dict[str, Flow], live: list[str]) -> list[FlowRow]:
    """One row per flow file, plus any flow still running whose file is gone."""
    names = {name.removesuffix(".yaml"): name for name in folder_files}
    rows = [FlowRow(n, f, valid.get(n), n in live) for n, f in sorted(names.items())]
    rows += [FlowRow(n, None, None, True) for n in sorted(set(live) - set(names))]
    return rows


def reload_result(outcome: ReloadOutcome) -> str:
    if not outcome.running:
        return "not_running"
    if not outcome.confirmed:
        return "unconfirmed"
    return "refused" if outcome.refused else "reloaded"


@router.get("/flows", response_class=HTMLResponse)
def flows_page(request: Request, state: StateDep) -> Response:
    settings = state.settings
    status = read_status(flows_status_file(settings))
    live_names = status.get("flows")
    live = [str(n) for n in live_names] if isinstance(live_names, list) else []
    loaded_at = status.get("loaded_at")
    server_errors = status.get("errors")
    # As the server validates on (re)load: prompt texts, not built sound files (`hotline
    # prompts build` and the server's start-up warning cover those).
    check = check_flows(settings, settings.flows_dir, texts_only=True)
    files = [p.name for p in flow_files(settings.flows_dir)] if settings.flows_dir.is_dir() else []
    result = request.query_params.get("reloaded")
    context = {
        "search": None,
        "folder": settings.flows_dir.name,
        "rows": flow_rows(files, check.flows, live),
        "errors": check.errors,
        "server_running": read_pid(settings, "agi") is not None,
        "loaded_at": (
            datetime.fromtimestamp(loaded_at, UTC) if isinstance(loaded_at, int | float) else None
        ),
        "server_errors": [str(e) for e in server_errors] if isinstance(server_errors, list) else [],
        "reloaded": result if result in RELOAD_RESULTS else None,
    }
    return render(state.templates, request, "flows.html", context, state.settings.default_language)


@router.post("/flows/reload")
def reload_flows_now(request: Request, state: StateDep) -> Response:
    # Sync: FastAPI runs it in its thread pool while it waits for the server's confirmation.
    outcome = reload_flows(state.settings, read_pid(state.settings, "agi"))
    target = request.app.url_path_for("flows_page")
    return RedirectResponse(f"{target}?reloaded={reload_result(outcome)}", status_code=303)
