"""Photos and documents of service requests: kept as files under the state folder
(`Settings.attachments_dir`), their metadata in `request_attachments` (behind the tenant wall,
call_router/tenant_wall.py). What may be uploaded: call_router/attachment_checks.py.

A file is stored under a random name (`stored_as`, 32 hex digits), never the uploader's, so
no file name reaches the file system. The file is written before the row; if the row is not
written (a refused upload, a failed flush), the file is removed again.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router import attachment_checks as checks
from call_router.account_models import DashboardUser
from call_router.accounts import CREW
from call_router.models import utcnow
from call_router.request_crews import get_crew
from call_router.request_lifecycle import LifecycleError
from call_router.request_models import CrewMember, RequestAttachment, RequestEvent, ServiceRequest
from call_router.service_requests import MAX_NAME, get_request

STORED_AS = re.compile(r"^[0-9a-f]{32}$")
# At most this many attachments on one request.
MAX_PER_REQUEST = 50


def _write(folder: Path, data: bytes) -> str:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stored_as = secrets.token_hex(16)
    final = folder / stored_as
    partial = folder / f".{stored_as}.part"
    with open(partial, "xb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, final)
    return stored_as


def add_attachment(
    session: Session,
    request: ServiceRequest,
    data: bytes,
    name: str | None,
    *,
    folder: Path,
    max_bytes: int,
    actor: str,
    now: datetime | None = None,
) -> RequestAttachment:
    """Check `data` and keep it as an attachment of `request` (refused: LifecycleError)."""
    now = now or utcnow()
    verdict = checks.check(data, name, max_bytes=max_bytes)
    if len(list_attachments(session, request)) >= MAX_PER_REQUEST:
        raise LifecycleError(
            f"a request has at most {MAX_PER_REQUEST} attachments", "too_many_attachments"
        )
    stored_as = _write(folder, data)
    try:
        row = RequestAttachment(
            request_id=request.id,
            tenant_id=request.tenant_id,
            name=verdict.name,
            content_type=verdict.content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            stored_as=stored_as,
            uploaded_by=actor[:MAX_NAME],
            uploaded_at=now,
        )
        session.add(row)
        session.add(
            RequestEvent(
                request_id=request.id,
                tenant_id=request.tenant_id,
                at=now,
                action="attachment",
                actor=actor[:MAX_NAME],
                note=verdict.name,
            )
        )
        session.flush()
    except BaseException:
        (folder / stored_as).unlink(missing_ok=True)
        raise
    return row


def list_attachments(session: Session, request: ServiceRequest) -> list[RequestAttachment]:
    stmt = (
        select(RequestAttachment)
        .where(RequestAttachment.request_id == request.id)
        .order_by(RequestAttachment.id)
    )
    return list(session.scalars(stmt))


def get_attachment(session: Session, number: str, attachment_id: int) -> RequestAttachment:
    """Attachment `attachment_id` of request `number`, behind the wall (else not_found)."""
    request = get_request(session, number)
    row = session.scalar(
        select(RequestAttachment).where(
            RequestAttachment.id == attachment_id, RequestAttachment.request_id == request.id
        )
    )
    if row is None:
        raise LifecycleError(f"no attachment {attachment_id} on request {number}", "not_found")
    return row


def path_of(folder: Path, row: RequestAttachment) -> Path:
    """Where the bytes are; only ever a random name of ours inside `folder`."""
    if not STORED_AS.match(row.stored_as):
        raise LifecycleError("attachment file missing", "not_found")
    return folder / row.stored_as


def remove_files(folder: Path, rows: list[RequestAttachment]) -> None:
    """Delete the files of rows that were not kept (the transaction that wrote them failed)."""
    for row in rows:
        if STORED_AS.match(row.stored_as):
            (folder / row.stored_as).unlink(missing_ok=True)


def attachment_dict(row: RequestAttachment, number: str) -> dict[str, object]:
    return {
        "id": row.id,
        "name": row.name,
        "content_type": row.content_type,
        "size": row.size,
        "sha256": row.sha256,
        "uploaded_by": row.uploaded_by,
        "uploaded_at": row.uploaded_at.isoformat(),
        "url": f"/api/requests/{number}/attachments/{row.id}",
    }


# --- which crew a crew account works as ------------------------------------------------------


def crew_of_user(session: Session, user_id: int | None) -> int | None:
    if user_id is None:
        return None
    return session.scalar(select(CrewMember.crew_id).where(CrewMember.user_id == user_id))


def link_member(session: Session, crew_id: int, username: str) -> CrewMember:
    """Make crew-role account `username` work as crew `crew_id` (replacing an earlier link)."""
    crew = get_crew(session, crew_id)
    user = session.scalar(select(DashboardUser).where(DashboardUser.username == username))
    if user is None:
        raise LifecycleError(f"no account {username!r}", "not_found")
    if user.role != CREW:
        raise LifecycleError(f"{username!r} is a {user.role} account, not a crew", "invalid")
    if user.tenant_id != crew.tenant_id:
        raise LifecycleError(f"{username!r} and crew {crew_id} are not one tenant's", "invalid")
    link = session.get(CrewMember, user.id)
    if link is None:
        link = CrewMember(user_id=user.id, crew_id=crew.id)
        session.add(link)
    link.crew_id = crew.id
    session.flush()
    return link
