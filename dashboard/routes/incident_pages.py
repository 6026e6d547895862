"""The supervisor's incidents page: `/incidents` lists active and recent announcements with
their effect, creates one (`POST /incidents`) and ends one early (`POST /incidents/{id}/end`).

Everything is call_router/incidents.py's, as for `hotline incidents`: the same validation, the
same spoken prompts, the same "heard, then hung up" counts.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from call_router import areas, incidents
from call_router.models import utcnow
from dashboard.deps import SessionDep, StateDep
from dashboard.i18n import render
from dashboard.routes.schemas import RowId

router = APIRouter(include_in_schema=False)

# Ended incidents shown under "recent".
RECENT = 20
# Far above what the form allows (textarea maxlength); longer is refused outright.
FORM_MAX = 4000
FORM_FIELDS = ("category", "area_pick", "areas", "until", "message_ru", "message_en")


def _page(
    request: Request,
    session: SessionDep,
    state: StateDep,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    status_code: int = 200,
) -> Response:
    now = utcnow()
    current = incidents.summaries(session, ended=False)
    ended = incidents.summaries(session, ended=True, limit=RECENT)
    context: dict[str, Any] = {
        "search": None,
        "current": current,
        "ended": ended,
        "now": now,
        "categories": incidents.CATEGORIES,
        # The hierarchy to choose from (`hotline areas import`), each node after its parent.
        "area_nodes": areas.listing(session),
        "form": form or dict.fromkeys(FORM_FIELDS, ""),
        "errors": errors or {},
        "zone": state.settings.timezone or str(state.zone),
        "max_message": incidents.MAX_MESSAGE,
        "created": _int_param(request, "created"),
        "unspoken": request.query_params.get("unspoken") == "1",
        "ended_id": _int_param(request, "ended"),
    }
    return render(
        state.templates,
        request,
        "incidents.html",
        context,
        state.settings.default_language,
        status_code=status_code,
    )


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() and len(value) < 12 else None


@router.get("/incidents", response_class=HTMLResponse)
def incidents_page(request: Request, session: SessionDep, state: StateDep) -> Response:
    return _page(request, session, state)


@router.post("/incidents", response_class=HTMLResponse)
def create_incident(
    request: Request,
    session: SessionDep,
    state: StateDep,
    category: Annotated[str, Form(max_length=64)] = "",
    areas: Annotated[str, Form(max_length=FORM_MAX)] = "",
    area_pick: Annotated[str, Form(max_length=FORM_MAX)] = "",
    until: Annotated[str, Form(max_length=64)] = "",
    message_ru: Annotated[str, Form(max_length=FORM_MAX)] = "",
    message_en: Annotated[str, Form(max_length=FORM_MAX)] = "",
) -> Response:
    """Create and speak the announcement; on bad input the page again, with what was typed."""
    now = utcnow()
    # The area chosen from the list, and any typed ones.
    targets = ", ".join(a for a in (area_pick.strip(), areas.strip()) if a)
    try:
        new = incidents.validate(
            category,
            message_ru,
            message_en,
            areas=targets,
            until=until,
            now=now,
            tz_name=state.settings.timezone,
            require_future=True,
        )
        new = incidents.place(session, new)
    except incidents.IncidentInputError as exc:
        errors: dict[str, list[str]] = defaultdict(list)
        for problem in exc.problems:
            errors[problem.field].append(problem.code)
        form = {
            "category": category,
            "areas": areas,
            "area_pick": area_pick,
            "until": until,
            "message_ru": message_ru,
            "message_en": message_en,
        }
        return _page(request, session, state, form=form, errors=errors, status_code=400)
    # Stored before speaking: a missing synthesiser must not lose the incident.
    with state.db.session() as writer:
        incident_id = incidents.create(writer, new, now).id
    spoken = incidents.speak(state.settings, incident_id, new.messages)
    target = request.app.url_path_for("incidents_page")
    query = f"?created={incident_id}" + ("&unspoken=1" if spoken.problem else "")
    return RedirectResponse(target + query, status_code=303)


@router.post("/incidents/{incident_id}/end")
def end_incident(incident_id: RowId, request: Request, state: StateDep) -> Response:
    with state.db.session() as writer:
        if incidents.end(writer, incident_id, utcnow()) is None:
            raise HTTPException(404, detail="no such incident")
    target = request.app.url_path_for("incidents_page")
    return RedirectResponse(f"{target}?ended={incident_id}", status_code=303)
