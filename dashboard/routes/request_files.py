"""Attachments of service requests: `GET/POST /api/requests/{number}/attachments` and the one
route that serves a file back, `GET /api/requests/{number}/attachments/{id}`.

Who: the office roles (supervisor, dispatcher, operator) of the request's tenant; a crew
account only for its own crew's jobs (call_router/attachment_checks.py `may_read`). Another
tenant's request or attachment is a 404 (the wall, call_router/tenant_wall.py), so is a request
whose files the reader may not see (never a 403 that would confirm it exists).

Served with the type sniffed at upload (JPEG, PNG, WebP or PDF, never HTML or SVG),
`nosniff`, a sandboxing CSP, no caching, and a Content-Disposition with the cleaned name;
images inline (the request page shows them), PDFs as downloads.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from call_router import attachment_checks as checks
from call_router import request_attachments as files
from call_router import service_requests as store
from call_router.request_lifecycle import LifecycleError
from call_router.request_models import RequestAttachment, ServiceRequest
from call_router.settings import Settings
from dashboard.deps import Actor, ActorDep, SessionDep, SettingsDep
from dashboard.routes.schemas import RowId

router = APIRouter(tags=["requests"])

# Status codes of the refusals (call_router/attachment_checks.py codes).
UPLOAD_CODES = {"too_large": 413, "file_type": 415, "empty": 422, "too_many_attachments": 409}
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class AttachmentOut(BaseModel):
    id: int
    name: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: str
    url: str


def _missing(number: str) -> HTTPException:
    return HTTPException(404, detail={"code": "not_found", "message": f"no request {number}"})


def may_see(session: Session, actor: Actor, request: ServiceRequest) -> bool:
    own_crew = files.crew_of_user(session, actor.principal.user_id)
    return checks.may_read(actor.principal.role, own_crew, request.crew_id)


def readable_request(session: Session, actor: Actor, number: str) -> ServiceRequest:
    """Request `number` if it exists behind the wall and the actor may see its files."""
    if store.id_of(number) is None:
        raise _missing(number)
    try:
        request = store.get_request(session, number)
    except LifecycleError:
        raise _missing(number) from None
    if not may_see(session, actor, request):
        raise _missing(number)
    return request


def read_upload(upload: UploadFile, settings: Settings) -> bytes:
    """The upload's bytes, reading at most one byte past the limit."""
    return upload.file.read(settings.attachment_max_bytes + 1)


def refusal(exc: LifecycleError) -> HTTPException:
    return HTTPException(
        UPLOAD_CODES.get(exc.code, 422), detail={"code": exc.code, "message": str(exc)}
    )


def save(
    session: Session,
    settings: Settings,
    actor: Actor,
    request: ServiceRequest,
    upload: UploadFile,
) -> RequestAttachment:
    """Check and keep `upload` as an attachment of `request` (LifecycleError if refused)."""
    return files.add_attachment(
        session,
        request,
        read_upload(upload, settings),
        upload.filename,
        folder=settings.attachments_dir,
        max_bytes=settings.attachment_max_bytes,
        actor=actor.by,
    )


@router.get("/api/requests/{number}/attachments", response_model=list[AttachmentOut])
def list_attachments(number: str, session: SessionDep, actor: ActorDep) -> list[dict[str, Any]]:
    """A request's photos and documents (metadata; `url` serves the file)."""
    request = readable_request(session, actor, number)
    return [files.attachment_dict(a, number) for a in files.list_attachments(session, request)]


@router.post("/api/requests/{number}/attachments", response_model=AttachmentOut, status_code=201)
def upload_attachment(
    number: str, file: UploadFile, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> dict[str, Any]:
    """Attach a photo (JPEG, PNG, WebP) or a PDF, sent as multipart field `file`. Judged by
    its content, not its name: anything else is 415, a file over the limit 413."""
    request = readable_request(session, actor, number)
    try:
        row = save(session, settings, actor, request, file)
    except LifecycleError as exc:
        raise refusal(exc) from None
    return files.attachment_dict(row, number)


@router.get("/api/requests/{number}/attachments/{attachment_id}", response_class=FileResponse)
def get_attachment(
    number: str, attachment_id: RowId, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> FileResponse:
    """The file itself, as uploaded."""
    readable_request(session, actor, number)
    try:
        row = files.get_attachment(session, number, attachment_id)
        path = files.path_of(settings.attachments_dir, row)
    except LifecycleError:
        raise _missing(number) from None
    if not path.is_file():
        raise HTTPException(404, detail={"code": "not_found", "message": "the file is missing"})
    inline = row.content_type in checks.PILLOW_FORMATS.values()
    return FileResponse(
        path,
        media_type=row.content_type,
        filename=row.name,
        content_disposition_type="inline" if inline else "attachment",
        headers=FILE_HEADERS,
    )
