"""Service-request pages: `/requests` (the list), `/requests/{number}` (detail, history, status
and assignment forms), `/dispatch` (new and overdue requests, assign each to a crew) and
`/crew` (a crew's open jobs on a phone: on the way, working, done with a short report).

Server-rendered; the forms post here (CSRF: dashboard/auth.py) and go through the same store
and the same per-role rules as the JSON API (dashboard/routes/request_access.py allowed_moves).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from call_router import request_assignment, request_crews, request_reads, request_views
from call_router import request_attachments as files
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.accounts import CREW
from call_router.models import utcnow
from call_router.request_lifecycle import LifecycleError
from call_router.request_models import RequestAttachment
from call_router.request_reads import RequestFilter
from dashboard.deps import ActorDep, SessionDep, StateDep
from dashboard.i18n import render
from dashboard.routes import request_files
from dashboard.routes.request_access import (
    DISPATCHERS,
    allowed_moves,
    check_move,
)
from dashboard.routes.schemas import MAX_ROW_ID

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 200
# Where a form may send the browser back to (never a URL from the form: no open redirect).
BACK = {"detail": None, "dispatch": "/dispatch", "crew": "/crew"}
CREW_NEXT = {
    life.ASSIGNED: (life.ON_THE_WAY, life.IN_PROGRESS),
    life.ON_THE_WAY: (life.IN_PROGRESS,),
    life.IN_PROGRESS: (life.DONE, life.WAITING_FOR_PARTS, life.CANNOT_FIX),
    life.WAITING_FOR_PARTS: (life.IN_PROGRESS, life.DONE, life.CANNOT_FIX),
}


def _page(
    state: StateDep, request: Request, name: str, context: dict[str, Any], status: int = 200
) -> Response:
    return render(
        state.templates,
        request,
        name,
        {"labels": life.STATUS_NOTES, "priorities": life.PRIORITIES, **context},
        state.settings.default_language,
        status_code=status,
    )


def _number(number: str) -> str:
    if store.id_of(number) is None:
        raise HTTPException(404, detail="no such request")
    return number


def _back(back: str, number: str, message: str, crew_id: int | None = None) -> Response:
    target = BACK.get(back) or f"/requests/{number}"
    if back == "crew" and crew_id is not None:
        target = f"/crew?crew={crew_id}"  # back to the same crew's jobs
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}msg={quote(message)}", status_code=303)


@router.get("/requests", name="requests_page")
def requests_page(
    request: Request,
    state: StateDep,
    session: SessionDep,
    status: Annotated[str | None, Query(max_length=32)] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    overdue: bool = False,
) -> Response:
    now = utcnow()
    where = RequestFilter(
        states=(status,) if status in life.STATES else (),
        category=category or None,
        overdue_at=now if overdue else None,
    )
    rows = request_reads.list_requests(session, where, limit=PAGE_SIZE)
    return _page(
        state,
        request,
        "requests/list.html",
        {
            "rows": [request_views.request_dict(r, now=now) for r in rows],
            "states": life.STATES,
            "categories": life.load_categories(),
            "chosen": {"status": status or "", "category": category or "", "overdue": overdue},
        },
    )


@router.get("/dispatch", name="dispatch_page")
def dispatch_page(
    request: Request, state: StateDep, session: SessionDep, actor: ActorDep, msg: str | None = None
) -> Response:
    if actor.principal.role not in DISPATCHERS:
        raise HTTPException(403, detail="your role may not open this")
    now = utcnow()
    fresh = request_reads.list_requests(session, RequestFilter(states=(life.NEW,)), limit=PAGE_SIZE)
    late = request_reads.list_requests(session, RequestFilter(overdue_at=now), limit=PAGE_SIZE)
    return _page(
        state,
        request,
        "requests/dispatch.html",
        {
            "fresh": [request_views.request_dict(r, now=now) for r in fresh],
            "late": [request_views.request_dict(r, now=now) for r in late],
            "crews": [
                request_views.crew_dict(c) for c in request_crews.list_crews(session) if c.active
            ],
            "message": msg[:1000] if msg else None,
        },
    )


@router.get("/crew", name="crew_page")
def crew_page(
    request: Request,
    state: StateDep,
    session: SessionDep,
    actor: ActorDep,
    crew: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    msg: str | None = None,
) -> Response:
    crews = request_crews.list_crews(session)
    # A crew account sees its own crew's jobs, the only ones it may move (request_access.py).
    own_only = actor.principal.role == CREW
    if own_only:
        crew = files.crew_of_user(session, actor.principal.user_id)
    chosen = next((c for c in crews if c.id == crew), None)
    jobs: list[dict[str, Any]] = []
    if chosen is not None:
        rows = request_reads.list_requests(
            session,
            RequestFilter(states=tuple(CREW_NEXT), crew_id=chosen.id),
            limit=PAGE_SIZE,
        )
        jobs = [request_views.request_dict(r) for r in rows]
    return _page(
        state,
        request,
        "requests/crew.html",
        {
            "crews": [request_views.crew_dict(c) for c in crews],
            "chosen": request_views.crew_dict(chosen) if chosen else None,
            "jobs": jobs,
            "next_states": CREW_NEXT,
            "may_choose": not own_only,
            "message": msg[:200] if msg else None,
        },
    )


@router.get("/requests/{number}", name="request_page")
def request_page(
    number: str,
    request: Request,
    state: StateDep,
    session: SessionDep,
    actor: ActorDep,
    msg: str | None = None,
) -> Response:
    return _detail(number, request, state, session, actor, message=msg[:200] if msg else None)


def _detail(
    number: str,
    request: Request,
    state: StateDep,
    session: SessionDep,
    actor: ActorDep,
    *,
    message: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    try:
        found = store.get_request(session, _number(number))
    except LifecycleError:
        raise HTTPException(404, detail="no such request") from None
    role = actor.principal.role
    moves = sorted(life.TRANSITIONS[found.state] & allowed_moves(session, actor, found))
    may_see_files = request_files.may_see(session, actor, found)
    attachments = (
        [files.attachment_dict(a, found.number) for a in files.list_attachments(session, found)]
        if may_see_files
        else []
    )
    return _page(
        state,
        request,
        "requests/detail.html",
        {
            "r": request_views.request_dict(found, detail=True),
            "moves": moves,
            "crews": [
                request_views.crew_dict(c) for c in request_crews.list_crews(session) if c.active
            ]
            if role in DISPATCHERS
            else [],
            "message": message,
            "error": error,
            "may_see_files": may_see_files,
            "attachments": attachments,
            "max_upload": state.settings.attachment_max_bytes,
        },
        status,
    )


@router.post("/requests/{number}/status", name="request_status_form")
def request_status_form(
    number: str,
    request: Request,
    state: StateDep,
    session: SessionDep,
    actor: ActorDep,
    new_state: Annotated[str, Form(alias="state", max_length=32)],
    note: Annotated[str, Form(max_length=store.MAX_NOTE)] = "",
    version: Annotated[int | None, Form(ge=1, le=MAX_ROW_ID)] = None,
    duplicate_of: Annotated[str, Form(max_length=12)] = "",
    back: Annotated[str, Form(max_length=16)] = "detail",
    photo: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """A state change; a crew marking a job done may add a photo (both kept, or neither)."""
    kept: list[RequestAttachment] = []
    try:
        # Its own transaction: a refused change rolls back there, the page is read afresh.
        with state.db.session() as work:
            check_move(work, actor, store.get_request(work, _number(number)), new_state)
            changed = store.change_state(
                work,
                _number(number),
                new_state,
                actor=actor.by,
                note=note or None,
                expected_version=version,
                duplicate_of=duplicate_of or None,
            )
            if photo is not None and photo.filename:
                if not request_files.may_see(work, actor, changed):
                    raise LifecycleError("you may not add photos to this request", "forbidden")
                kept.append(request_files.save(work, state.settings, actor, changed, photo))
    except LifecycleError as exc:
        status = request_files.UPLOAD_CODES.get(exc.code, 409)
        return _detail(number, request, state, session, actor, error=str(exc), status=status)
    except BaseException:
        files.remove_files(state.settings.attachments_dir, kept)  # the commit failed
        raise
    message = f"Request {number}: {life.STATUS_NOTES[new_state]}"
    return _back(back, number, message, crew_id=changed.crew_id)


@router.post("/requests/{number}/assign", name="request_assign_form")
def request_assign_form(
    number: str,
    request: Request,
    state: StateDep,
    session: SessionDep,
    actor: ActorDep,
    crew_id: Annotated[int, Form(ge=1, le=MAX_ROW_ID)],
    note: Annotated[str, Form(max_length=store.MAX_NOTE)] = "",
    version: Annotated[int | None, Form(ge=1, le=MAX_ROW_ID)] = None,
    force: Annotated[bool, Form()] = False,
    back: Annotated[str, Form(max_length=16)] = "detail",
) -> Response:
    if actor.principal.role not in DISPATCHERS:
        raise HTTPException(403, detail="your role may not assign requests")
    try:
        with state.db.session() as work:
            request_assignment.assign(
                work,
                _number(number),
                crew_id,
                actor=actor.by,
                note=note or None,
                expected_version=version,
                force=force,
            )
    except LifecycleError as exc:
        return _detail(number, request, state, session, actor, error=str(exc), status=409)
    return _back(back, number, f"Request {number} assigned.")


@router.post("/requests/{number}/attachments", name="request_attach_form")
def request_attach_form(
    number: str,
    request: Request,
    state: StateDep,
    session: SessionDep,
    actor: ActorDep,
    file: Annotated[UploadFile, File()],
) -> Response:
    """Attach a photo or a PDF from the request page."""
    kept: list[RequestAttachment] = []
    try:
        with state.db.session() as work:
            found = request_files.readable_request(work, actor, _number(number))
            kept.append(request_files.save(work, state.settings, actor, found, file))
    except LifecycleError as exc:
        status = request_files.UPLOAD_CODES.get(exc.code, 422)
        return _detail(number, request, state, session, actor, error=str(exc), status=status)
    except HTTPException:
        raise
    except BaseException:
        files.remove_files(state.settings.attachments_dir, kept)
        raise
    return _back("detail", number, f"Request {number}: {kept[0].name} attached.")


def _picks(values: list[str]) -> list[tuple[str, int | None]]:
    """Form values "NUMBER:VERSION" (the version the dispatcher saw)."""
    picks: list[tuple[str, int | None]] = []
    for value in values:
        number, _, version = value.partition(":")
        if store.id_of(number) is None or (version and not version.isdigit()):
            raise HTTPException(422, detail=f"not a request: {value[:20]!r}")
        picks.append((number, int(version) if version else None))
    return picks


@router.post("/dispatch/assign", name="dispatch_assign_form")
def dispatch_assign_form(
    state: StateDep,
    actor: ActorDep,
    crew_id: Annotated[int, Form(ge=1, le=MAX_ROW_ID)],
    pick: Annotated[list[str], Form(max_length=request_assignment.MAX_BULK)],
    force: Annotated[bool, Form()] = False,
) -> Response:
    """Assign the ticked requests to one crew; one changed meanwhile is named, not assigned."""
    if actor.principal.role not in DISPATCHERS:
        raise HTTPException(403, detail="your role may not assign requests")
    picks = _picks([value[:32] for value in pick])
    try:
        with state.db.session() as work:
            result = request_assignment.assign_many(
                work, picks, crew_id, actor=actor.by, force=force
            )
            crew = request_crews.get_crew(work, crew_id).name
    except LifecycleError as exc:
        return _back("dispatch", "", f"Nothing assigned: {exc}")
    parts = []
    if result.assigned:
        numbers = ", ".join(r.number for r in result.assigned)
        parts.append(f"Assigned to {crew}: {numbers}.")
    if result.refused:
        why = "; ".join(f"{r.number} ({r.message})" for r in result.refused)
        parts.append(f"Not assigned: {why}.")
    return _back("dispatch", "", " ".join(parts))
