"""Open311 GeoReport v2 at `/open311/v2/`: JSON and XML, the spec's errors.

    GET  services.{fmt}                 the categories (call_router/service_categories.yaml)
    GET  services/{code}.{fmt}          a category's attributes (street, house, flat, priority)
    POST requests.{fmt}                 a new request (form-encoded, `api_key` required)
    GET  requests.{fmt}                 requests with the spec's filters (last 90 days, <= 1000)
    GET  requests/{id}.{fmt}            one request
    GET  tokens/{token}.{fmt}           the request a token stands for

Public (any client may read), except POST, which needs a key from `hotline open311 keys
create`. A key that belongs to a tenant also narrows what its holder reads to that tenant, and
only a key holder reads descriptions (residents' own words). Errors are the spec's: a list of
`{code, description}` with 400 (bad or missing input), 403 (missing, wrong or revoked key),
404 (unknown service, request or token). The document mapping is call_router/open311.py.
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from call_router import open311 as o311
from call_router import open311_keys, request_reads, tenant_wall
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.db import Database
from call_router.models import utcnow
from call_router.open311 import Open311Error
from call_router.request_models import ServiceRequest
from call_router.request_reads import RequestFilter
from dashboard.deps import DatabaseDep, SessionDep

router = APIRouter(prefix="/open311/v2", tags=["open311"])

FORMATS = ("json", "xml")
# The form's total size: description (4000) and the rest with room to spare.
MAX_FORM_BYTES = 64 * 1024
# XML element names of the lists and their items (the spec's examples).
XML_LIST = {"services": "service", "service_requests": "request", "errors": "error"}


def _xml_value(parent: ET.Element, name: str, value: Any) -> None:
    child = ET.SubElement(parent, name)
    if isinstance(value, list):
        item_name = {"attributes": "attribute", "values": "value"}.get(name, "item")
        for item in value:
            _xml_dict(ET.SubElement(child, item_name), item)
    elif isinstance(value, dict):
        _xml_dict(child, value)
    elif isinstance(value, bool):
        child.text = "true" if value else "false"
    elif value is not None:
        child.text = str(value)


def _xml_dict(element: ET.Element, values: dict[str, Any]) -> None:
    for name, value in values.items():
        _xml_value(element, name, value)


def _render(fmt: str, root: str, body: Any, status: int = 200) -> Response:
    if fmt == "xml":
        top = ET.Element(root)
        if isinstance(body, list):
            for item in body:
                _xml_dict(ET.SubElement(top, XML_LIST[root]), item)
        else:
            _xml_dict(top, body)
        text = ET.tostring(top, encoding="unicode")
        return Response(
            '<?xml version="1.0" encoding="utf-8"?>' + text,
            status_code=status,
            media_type="text/xml; charset=utf-8",
        )
    return Response(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        media_type="application/json",
    )


def _error(fmt: str, status: int, description: str) -> Response:
    return _render(
        fmt if fmt in FORMATS else "json",
        "errors",
        [{"code": status, "description": description}],
        status,
    )


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(404, "format: .json or .xml")
    return fmt


def _key_scope(session: Session, key: str | None) -> bool:
    """A given key must be valid (else 403); a tenant's key narrows the wall. True: a key."""
    if key is None:
        return False
    row = open311_keys.key_for(session, key)
    if row is None:
        raise Open311Error(403, "api_key: unknown or revoked")
    if row.tenant_id is not None:
        tenant_wall.set_scope(
            session, tenant_wall.scope_of(session).narrowed(tenant_wall.Scope(tenant=row.tenant_id))
        )
    return True


def _answer(fmt: str, work: Any) -> Response:
    try:
        return work()  # type: ignore[no-any-return]
    except Open311Error as exc:
        return _error(fmt, exc.status, exc.description)
    except life.LifecycleError as exc:
        return _error(fmt, 404 if exc.code == "not_found" else 400, str(exc))


@router.get("/services.{fmt}", name="open311_services")
def services(fmt: str) -> Response:
    def work() -> Response:
        categories = life.load_categories()
        return _render(_format(fmt), "services", [o311.service(c) for c in categories.values()])

    return _answer(fmt, work)


@router.get("/services/{code}.{fmt}", name="open311_service")
def service_definition(code: str, fmt: str) -> Response:
    def work() -> Response:
        category = life.load_categories().get(code)
        if category is None:
            raise Open311Error(404, f"service_code {code[:64]!r} not found")
        return _render(_format(fmt), "service_definition", o311.service_definition(category))

    return _answer(fmt, work)


def _documents(session: Session, rows: list[ServiceRequest], with_description: bool) -> list[Any]:
    categories = life.load_categories()
    return [o311.request_document(r, categories, with_description=with_description) for r in rows]


@router.get("/requests.{fmt}", name="open311_requests")
def list_requests(fmt: str, request: Request, session: SessionDep) -> Response:
    def work() -> Response:
        _format(fmt)
        keyed = _key_scope(session, request.query_params.get("api_key"))
        query = o311.list_query(request.query_params, utcnow())
        where = RequestFilter(
            states=query.states,
            since=query.since,
            until=query.until,
            numbers=query.numbers,
            categories=query.codes,
        )
        rows = request_reads.list_requests(session, where, limit=o311.MAX_RESULTS)
        return _render(fmt, "service_requests", _documents(session, rows, keyed))

    return _answer(fmt, work)


@router.get("/requests/{number}.{fmt}", name="open311_request")
def get_request(number: str, fmt: str, request: Request, session: SessionDep) -> Response:
    def work() -> Response:
        _format(fmt)
        keyed = _key_scope(session, request.query_params.get("api_key"))
        if store.id_of(number) is None:
            raise Open311Error(404, f"service_request_id {number[:32]!r} not found")
        found = store.get_request(session, number)
        return _render(fmt, "service_requests", _documents(session, [found], keyed))

    return _answer(fmt, work)


@router.get("/tokens/{token}.{fmt}", name="open311_token")
def get_token(token: str, fmt: str, session: SessionDep) -> Response:
    def work() -> Response:
        _format(fmt)
        found = None
        if 0 < len(token) <= 64:
            found = session.scalar(select(ServiceRequest).where(ServiceRequest.token == token))
        if found is None:
            raise Open311Error(404, "token not found")
        return _render(
            fmt, "service_requests", [{"token": token, "service_request_id": found.number}]
        )

    return _answer(fmt, work)


@router.post("/requests.{fmt}", name="open311_create")
async def create_request(fmt: str, request: Request, db: DatabaseDep) -> Response:
    if fmt not in FORMATS:
        return _error("json", 404, "format: .json or .xml")
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > MAX_FORM_BYTES):
        return _error(fmt, 400, f"the form is larger than {MAX_FORM_BYTES} bytes")
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return _error(fmt, 400, "send the fields form-encoded (application/x-www-form-urlencoded)")
    try:
        form = await request.form(max_fields=100, max_part_size=MAX_FORM_BYTES)
    except Exception:  # a malformed body is the client's error, never a 500
        return _error(fmt, 400, "the form could not be read")
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    return await run_in_threadpool(_create, db, fmt, fields)


def _create(db: Database, fmt: str, fields: dict[str, str]) -> Response:
    try:
        with db.session() as session:
            key = open311_keys.key_for(session, fields.get("api_key"))
            if key is None:
                raise Open311Error(403, "api_key: missing, unknown or revoked")
            categories = life.load_categories()
            new = o311.new_request(fields, categories)
            created = store.create_request(
                session,
                new,
                categories=categories,
                actor=f"open311:{key.name}",
                tenant_id=key.tenant_id,
            )
            number = created.request.number
            notice = (
                f"Already reported as request {number}; your report was added to it."
                if created.attached
                else f"Request {number} received."
            )
    except Open311Error as exc:
        return _error(fmt, exc.status, exc.description)
    except life.LifecycleError as exc:
        return _error(fmt, 400, str(exc))
    body = [{"service_request_id": number, "service_notice": notice, "account_id": None}]
    return _render(fmt, "service_requests", body)
