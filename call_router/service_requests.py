"""The service-request store: create (or attach a duplicate), link calls, change state, and
the checks of resident-controlled input every step shares. Beside it: request_assignment.py
(crews take requests), request_reads.py (lists, counts, the menu's read), request_views.py
(JSON shapes, the form prefilled from a call), request_crews.py, open311_keys.py.
Rules as values: call_router/request_lifecycle.py. Tables: call_router/request_models.py.

Every function takes a SQLAlchemy session (its tenant wall applies: call_router/tenant_wall.py)
and an injected `now`. Concurrency: the request row carries a version; every change is an
`UPDATE … WHERE version = <read>`, so of two concurrent changes one wins and the other gets
`RequestError(code="conflict")`: none is lost silently. A caller that read the request earlier
(a page, an API client) may pass the version it saw (`expected_version`) for the same check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from call_router import request_lifecycle as life
from call_router.models import MAX_ROW_ID, Call, utcnow
from call_router.request_lifecycle import Category, LifecycleError
from call_router.request_models import (
    NUMBER_BASE,
    RequestCall,
    RequestEvent,
    ServiceRequest,
)

# Length limits of resident-controlled text (characters).
MAX_DESCRIPTION = 4000
MAX_STREET = 128
MAX_HOUSE = 16
MAX_FLAT = 16
MAX_DISTRICT = 64
MAX_NAME = 128
MAX_NOTE = 1000
MAX_NUMBER = 32
# Concurrent reports of one problem: how often one report retries attaching.
ATTACH_ATTEMPTS = 20
SOURCES = ("phone", "api", "open311", "cli")
# Control characters other than newline and tab: PostgreSQL refuses NUL, terminals obey ESC.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# Bad input or a refused change (the lifecycle's own refusals included); `code`: invalid,
# too_long, unknown_category, not_found, conflict, transition, state, priority, crew_mismatch …
RequestError = LifecycleError


def clean_text(value: str | None, field: str, limit: int, *, required: bool = False) -> str | None:
    if value is None or not value.strip():
        if required:
            raise RequestError(f"{field}: required", "invalid")
        return None
    clean = _CONTROL.sub("", value).strip()
    if len(clean) > limit:
        raise RequestError(f"{field}: at most {limit} characters", "too_long")
    return clean


def checked_coordinate(value: float | None, field: str, bound: float) -> float | None:
    if value is None:
        return None
    if not -bound <= value <= bound or value != value:  # NaN != NaN
        raise RequestError(f"{field}: a number between -{bound:g} and {bound:g}", "invalid")
    return float(value)


def clean_caller_number(value: str | None) -> str | None:
    if not value:
        return None
    number = "".join(ch for ch in value if ch.isascii() and (ch.isdigit() or ch in "+*#"))
    return number[:MAX_NUMBER] or None


@dataclass(frozen=True)
class NewRequest:
    """What a new request says; checked by `create_request`."""

    category: str
    street: str
    house: str
    flat: str | None = None
    district: str | None = None
    lat: float | None = None
    long: float | None = None
    description: str = ""
    caller_number: str | None = None
    caller_name: str | None = None
    priority: str | int = "normal"
    source: str = "api"


@dataclass(frozen=True)
class Created:
    request: ServiceRequest
    # True: an open request for the same address and category existed; this report attached.
    attached: bool


def id_of(number: str) -> int | None:
    """The row id of a request number; None for what cannot be one."""
    if not number.isascii() or not number.isdigit() or len(number) > 12:
        return None
    row_id = int(number) - NUMBER_BASE
    return row_id if 0 < row_id <= MAX_ROW_ID else None


def add_event(
    request: ServiceRequest,
    action: str,
    actor: str,
    now: datetime,
    *,
    from_state: str | None = None,
    to_state: str | None = None,
    note: str | None = None,
) -> None:
    request.events.append(
        RequestEvent(
            tenant_id=request.tenant_id,
            at=now,
            action=action,
            actor=actor[:MAX_NAME],
            from_state=from_state,
            to_state=to_state,
            note=note,
        )
    )


def _open_request(session: Session, key: str) -> ServiceRequest | None:
    # populate_existing: a retry must see the version another session just wrote.
    stmt = select(ServiceRequest).where(ServiceRequest.open_key == key)
    return session.scalar(stmt.execution_options(populate_existing=True))


def _flush(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError as exc:
        raise RequestError(
            "the request was changed by someone else meanwhile: reload and try again",
            "conflict",
        ) from exc


flush = _flush  # the same, for the feedback call (call_router/request_feedback.py)


def create_request(
    session: Session,
    new: NewRequest,
    *,
    categories: dict[str, Category],
    actor: str,
    tenant_id: int | None = None,
    call_id: int | None = None,
    token: str | None = None,
    now: datetime | None = None,
) -> Created:
    """A new request, or - an open one for the same address and category exists - the report
    attached to that one (counted, its call linked, noted in its history)."""
    now = now or utcnow()
    category = categories.get(new.category)
    if category is None:
        raise RequestError(f"unknown category {new.category!r}", "unknown_category")
    if new.source not in SOURCES:
        raise RequestError(f"source: one of {', '.join(SOURCES)}", "invalid")
    street = clean_text(new.street, "street", MAX_STREET, required=True)
    house = clean_text(new.house, "house", MAX_HOUSE, required=True)
    assert street is not None and house is not None
    flat = clean_text(new.flat, "flat", MAX_FLAT)
    description = clean_text(new.description, "description", MAX_DESCRIPTION) or ""
    priority = life.priority_value(new.priority)
    key = life.open_key(tenant_id, category.code, life.address_key(street, house, flat))
    fields = {
        "district": clean_text(new.district, "district", MAX_DISTRICT),
        "lat": checked_coordinate(new.lat, "lat", 90),
        "long": checked_coordinate(new.long, "long", 180),
        "caller_name": clean_text(new.caller_name, "caller_name", MAX_NAME),
        "caller_number": clean_caller_number(new.caller_number),
    }
    # The call is checked first: everything below is written in one flush (on SQLite the
    # savepoint's RELEASE commits, so nothing may fail after it).
    call = _call(session, call_id, tenant_id) if call_id is not None else None
    for _attempt in range(ATTACH_ATTEMPTS):
        existing = _open_request(session, key)
        if existing is None:
            request = ServiceRequest(
                tenant_id=tenant_id,
                category=category.code,
                street=street,
                house=house,
                flat=flat,
                description=description,
                priority=priority,
                state=life.NEW,
                source=new.source,
                open_key=key,
                reports=1,
                token=token,
                created_at=now,
                updated_at=now,
                sla_deadline=category.deadline(now, priority),
                **fields,
            )
            add_event(request, "created", actor, now, to_state=life.NEW)
            if call is not None:
                request.calls.append(
                    RequestCall(call_id=call.id, tenant_id=tenant_id, linked_at=now)
                )
                add_event(request, "call_linked", actor, now, note=f"call {call.id}")
            try:
                # A savepoint: a concurrent report of the same problem may win the open key;
                # then this report attaches to that one (next turn of the loop).
                with session.begin_nested():
                    session.add(request)
                    session.flush()
            except IntegrityError:
                continue
            return Created(request, attached=False)
        try:
            # A savepoint again: another report may attach at the same moment (its version
            # wins); then this one reads the request afresh and attaches after it.
            with session.begin_nested():
                existing.reports += 1
                existing.updated_at = now
                existing.priority = max(existing.priority, priority)
                if token is not None and existing.token is None:
                    existing.token = token
                add_event(
                    existing, "reported_again", actor, now, note=description[:MAX_NOTE] or None
                )
                if call is not None:
                    _link(session, existing, call, actor, now)
                session.flush()
        except StaleDataError:
            session.expire(existing)
            continue
        return Created(existing, attached=True)
    raise RequestError("too many reports of this problem at once: try again", "conflict")


def _call(session: Session, call_id: int, tenant_id: int | None) -> Call:
    # Behind the wall: another tenant's call is not found, like a call that does not exist.
    call = session.scalar(select(Call).where(Call.id == call_id))
    if call is None or call.tenant_id != tenant_id:
        raise RequestError(f"no call {call_id}", "not_found")
    return call


def _link(session: Session, request: ServiceRequest, call: Call, actor: str, now: datetime) -> None:
    if any(link.call_id == call.id for link in request.calls):
        return
    request.calls.append(RequestCall(call_id=call.id, tenant_id=request.tenant_id, linked_at=now))
    add_event(request, "call_linked", actor, now, note=f"call {call.id}")


def link_call(
    session: Session, number: str, call_id: int, *, actor: str, now: datetime | None = None
) -> ServiceRequest:
    """Note that a call mentions a request (a resident asking how it is going)."""
    request = get_request(session, number)
    _link(session, request, _call(session, call_id, request.tenant_id), actor, now or utcnow())
    request.updated_at = now or utcnow()
    _flush(session)
    return request


def get_request(session: Session, number: str) -> ServiceRequest:
    """By the number the resident says (also the Open311 service_request_id)."""
    row_id = id_of(number)
    request = None
    if row_id is not None:
        request = session.scalar(select(ServiceRequest).where(ServiceRequest.id == row_id))
    if request is None:
        raise RequestError(f"no request {number}", "not_found")
    return request


def check_version(request: ServiceRequest, expected: int | None) -> None:
    if expected is not None and expected != request.version:
        raise RequestError(
            f"the request changed since you read it (version {expected}, now {request.version})",
            "conflict",
        )


def change_state(
    session: Session,
    number: str,
    target: str,
    *,
    actor: str,
    note: str | None = None,
    expected_version: int | None = None,
    duplicate_of: str | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    now = now or utcnow()
    request = get_request(session, number)
    check_version(request, expected_version)
    life.check_move(request.state, target)
    clean_note = clean_text(note, "note", MAX_NOTE)
    if target == life.DUPLICATE:
        if not duplicate_of:
            raise RequestError("duplicate: name the original request (duplicate_of)", "invalid")
        original = get_request(session, duplicate_of)
        if original.id == request.id:
            raise RequestError("a request cannot duplicate itself", "invalid")
        request.duplicate_of_id = original.id
    previous = request.state
    request.state = target
    request.updated_at = now
    request.status_notes = clean_note
    if life.is_open(target):
        request.closed_at = None
        if request.open_key is None:  # reopened
            key = life.open_key(
                request.tenant_id,
                request.category,
                life.address_key(request.street, request.house, request.flat),
            )
            other = _open_request(session, key)
            if other is not None:
                raise RequestError(
                    f"request {other.number} is open for the same address and category",
                    "conflict",
                )
            request.open_key = key
    else:
        request.open_key = None
        request.closed_at = request.closed_at or now
    if target == life.NEW:
        request.crew = None
    # Done: the resident is called and asked whether it is fixed (request_feedback.py).
    request.feedback_due_at = now if target == life.DONE and request.caller_number else None
    if target == life.DONE:
        request.feedback_attempts, request.feedback_score, request.feedback_at = 0, None, None
    add_event(request, "status", actor, now, from_state=previous, to_state=target, note=clean_note)
    _flush(session)
    return request
