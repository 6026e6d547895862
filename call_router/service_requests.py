"""The service-request store: create (or attach a duplicate), link calls, change state,
assign crews, list, and the Open311 API keys. Rules as values: call_router/request_lifecycle.py.
Tables: call_router/request_models.py.

Every function takes a SQLAlchemy session (its tenant wall applies: call_router/tenants.py)
and an injected `now`. Concurrency: the request row carries a version; every change is an
`UPDATE … WHERE version = <read>`, so of two concurrent changes one wins and the other gets
`RequestError(code="conflict")`: none is lost silently. A caller that read the request earlier
(a page, an API client) may pass the version it saw (`expected_version`) for the same check.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from call_router import request_lifecycle as life
from call_router.models import Call, utcnow
from call_router.request_lifecycle import Category, LifecycleError
from call_router.request_models import (
    NUMBER_BASE,
    Crew,
    Open311Key,
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
KEY_PREFIX = "o311_"
SOURCES = ("phone", "api", "open311", "cli")
# Control characters other than newline and tab: PostgreSQL refuses NUL, terminals obey ESC.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# Bad input or a refused change (the lifecycle's own refusals included); `code`: invalid,
# too_long, unknown_category, not_found, conflict, transition, state, priority, crew_mismatch …
RequestError = LifecycleError


def _text(value: str | None, field: str, limit: int, *, required: bool = False) -> str | None:
    if value is None or not value.strip():
        if required:
            raise RequestError(f"{field}: required", "invalid")
        return None
    clean = _CONTROL.sub("", value).strip()
    if len(clean) > limit:
        raise RequestError(f"{field}: at most {limit} characters", "too_long")
    return clean


def _coordinate(value: float | None, field: str, bound: float) -> float | None:
    if value is None:
        return None
    if not -bound <= value <= bound or value != value:  # NaN != NaN
        raise RequestError(f"{field}: a number between -{bound:g} and {bound:g}", "invalid")
    return float(value)


def _caller_number(value: str | None) -> str | None:
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
    return row_id if row_id > 0 else None


def _event(
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
    street = _text(new.street, "street", MAX_STREET, required=True)
    house = _text(new.house, "house", MAX_HOUSE, required=True)
    assert street is not None and house is not None
    flat = _text(new.flat, "flat", MAX_FLAT)
    description = _text(new.description, "description", MAX_DESCRIPTION) or ""
    priority = life.priority_value(new.priority)
    key = life.open_key(tenant_id, category.code, life.address_key(street, house, flat))
    fields = {
        "district": _text(new.district, "district", MAX_DISTRICT),
        "lat": _coordinate(new.lat, "lat", 90),
        "long": _coordinate(new.long, "long", 180),
        "caller_name": _text(new.caller_name, "caller_name", MAX_NAME),
        "caller_number": _caller_number(new.caller_number),
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
            _event(request, "created", actor, now, to_state=life.NEW)
            if call is not None:
                request.calls.append(
                    RequestCall(call_id=call.id, tenant_id=tenant_id, linked_at=now)
                )
                _event(request, "call_linked", actor, now, note=f"call {call.id}")
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
                _event(existing, "reported_again", actor, now, note=description[:MAX_NOTE] or None)
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
    _event(request, "call_linked", actor, now, note=f"call {call.id}")


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


def _check_version(request: ServiceRequest, expected: int | None) -> None:
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
    _check_version(request, expected_version)
    life.check_move(request.state, target)
    clean_note = _text(note, "note", MAX_NOTE)
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
    _event(request, "status", actor, now, from_state=previous, to_state=target, note=clean_note)
    _flush(session)
    return request


def assign(
    session: Session,
    number: str,
    crew_id: int,
    *,
    actor: str,
    note: str | None = None,
    expected_version: int | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> ServiceRequest:
    """Give a request to a crew (or hand it to another); `force` skips the categories and
    districts check."""
    now = now or utcnow()
    request = get_request(session, number)
    _check_version(request, expected_version)
    crew = session.scalar(select(Crew).where(Crew.id == crew_id))
    if crew is None or crew.tenant_id != request.tenant_id or not crew.active:
        raise RequestError(f"no crew {crew_id}", "not_found")
    if not force and not crew_serves(crew, request.category, request.district):
        raise RequestError(
            f"crew {crew.name!r} does not take {request.category} in"
            f" {request.district or 'this district'} (force to assign anyway)",
            "crew_mismatch",
        )
    previous = request.state
    if previous not in (life.ASSIGNED, life.ON_THE_WAY):
        life.check_move(previous, life.ASSIGNED)
    request.state = life.ASSIGNED
    request.crew = crew
    request.updated_at = now
    clean_note = _text(note, "note", MAX_NOTE)
    _event(
        request,
        "assigned",
        actor,
        now,
        from_state=previous,
        to_state=life.ASSIGNED,
        note=f"crew {crew.name}" + (f": {clean_note}" if clean_note else ""),
    )
    _flush(session)
    return request


# At most this many requests in one bulk assignment.
MAX_BULK = 200


@dataclass(frozen=True)
class Refused:
    number: str
    code: str
    message: str


@dataclass(frozen=True)
class BulkAssigned:
    assigned: list[ServiceRequest]
    # Each with the reason: changed meanwhile (conflict), not found, the crew does not take it.
    refused: list[Refused]


def assign_many(
    session: Session,
    picks: Sequence[tuple[str, int | None]],
    crew_id: int,
    *,
    actor: str,
    note: str | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> BulkAssigned:
    """Give several requests (number, the version the dispatcher saw) to one crew. Each is
    assigned whole or not at all (its own savepoint, `assign`'s rules and optimistic lock):
    one changed meanwhile is refused with the reason and the others are still assigned."""
    if len(picks) > MAX_BULK:
        raise RequestError(f"at most {MAX_BULK} requests at once", "invalid")
    get_crew(session, crew_id)  # an unknown crew refuses the whole action
    now = now or utcnow()
    assigned: list[ServiceRequest] = []
    refused: list[Refused] = []
    seen: set[str] = set()
    for number, version in picks:
        if number in seen:
            continue
        seen.add(number)
        try:
            with session.begin_nested():
                request = assign(
                    session,
                    number,
                    crew_id,
                    actor=actor,
                    note=note,
                    expected_version=version,
                    force=force,
                    now=now,
                )
        except LifecycleError as exc:
            refused.append(Refused(number, exc.code, str(exc)))
            continue
        assigned.append(request)
    return BulkAssigned(assigned, refused)


@dataclass(frozen=True)
class RequestFilter:
    states: Sequence[str] = ()
    category: str | None = None
    crew_id: int | None = None
    caller_number: str | None = None
    overdue_at: datetime | None = None  # only requests open and past their deadline then
    since: datetime | None = None
    until: datetime | None = None
    numbers: Sequence[str] = ()
    categories: Sequence[str] = ()  # any of these (Open311's comma-separated service_code)


def list_requests(
    session: Session, where: RequestFilter, *, limit: int = 100, offset: int = 0
) -> list[ServiceRequest]:
    stmt = select(ServiceRequest)
    if where.states:
        stmt = stmt.where(ServiceRequest.state.in_(list(where.states)))
    if where.category:
        stmt = stmt.where(ServiceRequest.category == where.category)
    if where.crew_id is not None:
        stmt = stmt.where(ServiceRequest.crew_id == where.crew_id)
    if where.caller_number:
        stmt = stmt.where(ServiceRequest.caller_number == _caller_number(where.caller_number))
    if where.overdue_at is not None:
        stmt = stmt.where(
            ServiceRequest.state.in_(sorted(life.OPEN_STATES)),
            ServiceRequest.sla_deadline < where.overdue_at,
        )
    if where.since is not None:
        stmt = stmt.where(ServiceRequest.created_at >= where.since)
    if where.until is not None:
        stmt = stmt.where(ServiceRequest.created_at <= where.until)
    if where.categories:
        stmt = stmt.where(ServiceRequest.category.in_(list(where.categories)))
    if where.numbers:
        ids = [row_id for row_id in map(id_of, where.numbers) if row_id is not None]
        stmt = stmt.where(ServiceRequest.id.in_(ids))
    stmt = stmt.order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())
    return list(session.scalars(stmt.limit(limit).offset(offset)).unique())


def count_requests(session: Session, states: Sequence[str] = ()) -> int:
    stmt = select(func.count()).select_from(ServiceRequest)
    if states:
        stmt = stmt.where(ServiceRequest.state.in_(list(states)))
    return int(session.scalar(stmt) or 0)


# --- the menu's hook (the phone side is not built yet) --------------------------------------


def open_requests_for_caller(session: Session, caller_number: str) -> list[ServiceRequest]:
    """The caller's open requests, newest first: what the menu reads before anything else."""
    number = _caller_number(caller_number)
    if number is None:
        return []
    return list_requests(
        session, RequestFilter(states=sorted(life.OPEN_STATES), caller_number=number), limit=5
    )


def spoken_status(request: ServiceRequest, categories: dict[str, Category]) -> str:
    """One sentence for the caller: "Your request 1234 about heating: a crew is on the way."."""
    category = categories.get(request.category)
    about = category.name if category else request.category
    state = life.STATUS_NOTES.get(request.state, request.state)
    return f"Your request {request.number} about {about.lower()}: {state[0].lower()}{state[1:]}"


# --- crews ----------------------------------------------------------------------------------


def crew_serves(crew: Crew, category: str, district: str | None) -> bool:
    if crew.categories and category not in crew.categories:
        return False
    wanted = (district or "").casefold()
    return not crew.districts or (bool(wanted) and wanted in {d.casefold() for d in crew.districts})


def _names(values: Sequence[str], field: str, limit: int) -> list[str]:
    cleaned = []
    for value in values:
        clean = _text(value, field, limit)
        if clean and clean not in cleaned:
            cleaned.append(clean)
    return cleaned


def add_crew(
    session: Session,
    name: str,
    *,
    categories: Sequence[str],
    districts: Sequence[str],
    known_categories: dict[str, Category],
    phone: str | None = None,
    tenant_id: int | None = None,
    now: datetime | None = None,
) -> Crew:
    clean = _text(name, "name", 64, required=True)
    unknown = [c for c in categories if c not in known_categories]
    if unknown:
        raise RequestError(f"unknown categories: {', '.join(unknown)}", "unknown_category")
    taken = session.scalar(
        select(Crew.id).where(Crew.name == clean, Crew.tenant_id.is_(tenant_id))
        if tenant_id is None
        else select(Crew.id).where(Crew.name == clean, Crew.tenant_id == tenant_id)
    )
    if taken is not None:
        raise RequestError(f"crew {clean!r} already exists", "exists")
    crew = Crew(
        tenant_id=tenant_id,
        name=clean,
        categories=_names(categories, "category", 32),
        districts=_names(districts, "district", MAX_DISTRICT),
        phone=_caller_number(phone),
        active=True,
        created_at=now or utcnow(),
    )
    session.add(crew)
    session.flush()
    return crew


def list_crews(session: Session) -> list[Crew]:
    return list(session.scalars(select(Crew).order_by(Crew.name, Crew.id)))


def get_crew(session: Session, crew_id: int) -> Crew:
    crew = session.scalar(select(Crew).where(Crew.id == crew_id))
    if crew is None:
        raise RequestError(f"no crew {crew_id}", "not_found")
    return crew


# --- Open311 API keys -------------------------------------------------------------------------


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    session: Session, name: str, *, tenant_id: int | None = None, now: datetime | None = None
) -> tuple[str, Open311Key]:
    """A new key: the plain key is returned once; only its SHA-256 is stored."""
    clean = _text(name, "name", 64, required=True)
    assert clean is not None
    if session.scalar(select(Open311Key.id).where(Open311Key.name == clean)) is not None:
        raise RequestError(f"a key named {clean!r} exists", "exists")
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = Open311Key(
        tenant_id=tenant_id, name=clean, key_hash=_key_digest(plain), created_at=now or utcnow()
    )
    session.add(row)
    session.flush()
    return plain, row


def list_keys(session: Session) -> list[Open311Key]:
    return list(session.scalars(select(Open311Key).order_by(Open311Key.name)))


def revoke_key(session: Session, name: str, *, now: datetime | None = None) -> Open311Key:
    row = session.scalar(select(Open311Key).where(Open311Key.name == name))
    if row is None:
        raise RequestError(f"no key named {name!r}", "not_found")
    row.revoked_at = row.revoked_at or now or utcnow()
    session.flush()
    return row


def key_for(
    session: Session, plain: str | None, *, now: datetime | None = None
) -> Open311Key | None:
    """The live key `plain` is, or None (unknown, revoked, or not a key at all)."""
    if not plain or not plain.startswith(KEY_PREFIX) or len(plain) > 128:
        return None
    row = session.scalar(select(Open311Key).where(Open311Key.key_hash == _key_digest(plain)))
    if row is None or row.revoked_at is not None:
        return None
    row.last_used_at = now or utcnow()
    return row


# --- one shape for the CLI's --json and the API -------------------------------------------


def crew_dict(crew: Crew) -> dict[str, object]:
    return {
        "id": crew.id,
        "name": crew.name,
        "categories": list(crew.categories),
        "districts": list(crew.districts),
        "phone": crew.phone,
        "active": crew.active,
    }


def request_dict(
    request: ServiceRequest, *, now: datetime | None = None, detail: bool = False
) -> dict[str, object]:
    info: dict[str, object] = {
        "number": request.number,
        "category": request.category,
        "state": request.state,
        "status": life.open311_status(request.state),
        "priority": life.PRIORITIES[request.priority],
        "street": request.street,
        "house": request.house,
        "flat": request.flat,
        "district": request.district,
        "lat": request.lat,
        "long": request.long,
        "description": request.description,
        "caller_number": request.caller_number,
        "caller_name": request.caller_name,
        "source": request.source,
        "crew": crew_dict(request.crew) if request.crew is not None else None,
        "reports": request.reports,
        "status_notes": request.status_notes,
        "created_at": request.created_at.isoformat(),
        "updated_at": request.updated_at.isoformat(),
        "sla_deadline": request.sla_deadline.isoformat(),
        "overdue": life.overdue(request.state, request.sla_deadline, now or utcnow()),
        "escalated_to": life.escalation(
            request.state, request.created_at, request.sla_deadline, now or utcnow()
        ),
        "closed_at": request.closed_at.isoformat() if request.closed_at else None,
        "version": request.version,
        "feedback_attempts": request.feedback_attempts,
        "feedback_score": request.feedback_score,
    }
    if detail:
        info["calls"] = [link.call_id for link in request.calls]
        info["history"] = [
            {
                "at": event.at.isoformat(),
                "action": event.action,
                "actor": event.actor,
                "from_state": event.from_state,
                "to_state": event.to_state,
                "note": event.note,
            }
            for event in request.events
        ]
    return info


# --- from a call: what the operator's form starts with ----------------------------------------


@dataclass(frozen=True)
class Suggestion:
    """A new request's form, prefilled from a call: the category its recognised intent
    suggests, the caller's last address, and their open requests (to attach instead)."""

    call_id: int
    caller_number: str | None
    caller_name: str | None
    category: str | None
    last_address: dict[str, str | None] | None
    open_requests: list[ServiceRequest]


def suggest_for_call(session: Session, call_id: int, categories: dict[str, Category]) -> Suggestion:
    call = session.scalar(select(Call).where(Call.id == call_id))  # behind the wall
    if call is None:
        raise RequestError(f"no call {call_id}", "not_found")
    number = _caller_number(call.caller_number)
    last = None
    if number is not None:
        last = session.scalar(
            select(ServiceRequest)
            .where(ServiceRequest.caller_number == number)
            .order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())
            .limit(1)
        )
    return Suggestion(
        call_id=call.id,
        caller_number=number,
        caller_name=call.caller_name,
        category=life.category_for_intent(categories, call.intent),
        last_address=(
            {
                "street": last.street,
                "house": last.house,
                "flat": last.flat,
                "district": last.district,
            }
            if last is not None
            else None
        ),
        open_requests=open_requests_for_caller(session, number) if number else [],
    )
