"""Open311 GeoReport v2 over the service-request store: what each document holds, as plain
values (dicts and lists), and how the spec's form fields become a request.

The web side (URLs, JSON/XML encoding, API keys, errors) is dashboard/routes/open311.py.

Mapping (internal -> Open311): our categories are services (every service has attributes:
the structured address parts and the priority, so `metadata` is true); our ten states become
`open`/`closed` with the state in words in `status_notes`; `expected_datetime` is the SLA
deadline; `agency_responsible` is the assigned crew, else the category's agency; the
`service_request_id` is the number the resident hears on the phone.

Privacy: a public list shows the street and house, never the flat, the caller or (without an
API key) the description, which residents write and may put their name in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from call_router import date_range
from call_router import request_lifecycle as life
from call_router.models import as_utc
from call_router.request_lifecycle import Category
from call_router.request_models import ServiceRequest
from call_router.service_requests import MAX_DESCRIPTION, MAX_STREET, NewRequest

# GET requests.{fmt}: the spec's defaults.
DEFAULT_DAYS: Final = 90
MAX_RESULTS: Final = 1000
NO_HOUSE: Final = "-"

ATTRIBUTES: Final[list[dict[str, Any]]] = [
    {
        "variable": True,
        "code": "street",
        "datatype": "string",
        "required": False,
        "datatype_description": "Street name (else the address_string is kept as given)",
        "order": 1,
        "description": "Street",
    },
    {
        "variable": True,
        "code": "house",
        "datatype": "string",
        "required": False,
        "datatype_description": "House number, with its letter or building",
        "order": 2,
        "description": "House",
    },
    {
        "variable": True,
        "code": "flat",
        "datatype": "string",
        "required": False,
        "datatype_description": "Flat or office number; never shown publicly",
        "order": 3,
        "description": "Flat",
    },
    {
        "variable": True,
        "code": "priority",
        "datatype": "singlevaluelist",
        "required": False,
        "datatype_description": "How urgent it is",
        "order": 4,
        "description": "Priority",
        "values": [{"key": key, "name": key.capitalize()} for key in life.PRIORITIES],
    },
]


class Open311Error(ValueError):
    """An answer in the spec's error format: `status` (400, 403, 404) and a description."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def service(category: Category) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": category.name,
        "metadata": True,
        "type": "realtime",
        "keywords": category.keywords,
        "group": category.group,
    }


def service_definition(category: Category) -> dict[str, Any]:
    return {"service_code": category.code, "attributes": ATTRIBUTES}


def request_document(
    request: ServiceRequest, categories: Mapping[str, Category], *, with_description: bool
) -> dict[str, Any]:
    category = categories.get(request.category)
    closed = not life.is_open(request.state)
    notes = life.STATUS_NOTES.get(request.state, request.state)
    if request.status_notes:
        notes = f"{notes} {request.status_notes}"
    if request.crew is not None:
        agency: str | None = request.crew.name
    else:
        agency = category.agency if category else None
    house = "" if request.house == NO_HOUSE else f" {request.house}"
    return {
        "service_request_id": request.number,
        "status": life.open311_status(request.state),
        "status_notes": notes,
        "service_name": category.name if category else request.category,
        "service_code": request.category,
        "description": request.description[:MAX_DESCRIPTION] if with_description else None,
        "agency_responsible": agency,
        "service_notice": None,
        "requested_datetime": _iso(request.created_at),
        "updated_datetime": _iso(
            request.closed_at if closed and request.closed_at else request.updated_at
        ),
        "expected_datetime": _iso(request.sla_deadline),
        "address": f"{request.street}{house}",
        "address_id": None,
        "zipcode": None,
        "lat": request.lat,
        "long": request.long,
        "media_url": None,
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


def parse_datetime(value: str | None, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(
            400, f"{field}: a W3C date and time (e.g. 2026-01-15T08:00:00Z)"
        ) from None
    if not date_range.usable(parsed):
        raise Open311Error(400, f"{field}: a date {date_range.RANGE_TEXT}")
    return as_utc(parsed)


def _float(value: str | None, field: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise Open311Error(400, f"{field}: a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise Open311Error(400, f"{field}: a number")
    return number


@dataclass(frozen=True)
class ListQuery:
    numbers: tuple[str, ...]
    codes: tuple[str, ...]
    states: tuple[str, ...]
    since: datetime | None
    until: datetime | None


def list_query(params: Mapping[str, str], now: datetime) -> ListQuery:
    """GET requests.{fmt}'s filters; without dates, the last 90 days."""

    def split(name: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in (params.get(name) or "").split(",") if v.strip())

    status = split("status")
    if any(s not in ("open", "closed") for s in status):
        raise Open311Error(400, "status: open, closed or both (comma-separated)")
    states: tuple[str, ...] = ()
    if status and set(status) != {"open", "closed"}:
        wanted = status[0]
        states = tuple(s for s in life.STATES if life.open311_status(s) == wanted)
    until = parse_datetime(params.get("end_date"), "end_date")
    since = parse_datetime(params.get("start_date"), "start_date")
    numbers = split("service_request_id")
    if numbers:
        # The spec: with service_request_id, every other filter is ignored.
        return ListQuery(numbers, (), (), None, None)
    if since is None:
        since = (until or now) - timedelta(days=DEFAULT_DAYS)
    return ListQuery(numbers, split("service_code"), states, since, until)


def new_request(form: Mapping[str, str], categories: Mapping[str, Category]) -> NewRequest:
    """A POST requests.{fmt} form as a new request, or the spec's error (400/404)."""
    code = (form.get("service_code") or "").strip()
    if not code:
        raise Open311Error(400, "service_code: required")
    if code not in categories:
        raise Open311Error(404, f"service_code {code[:64]!r} not found")
    lat, long = _float(form.get("lat"), "lat"), _float(form.get("long"), "long")
    if (lat is None) != (long is None):
        raise Open311Error(400, "lat and long: both or neither")
    if lat is not None and long is not None and not (-90 <= lat <= 90 and -180 <= long <= 180):
        raise Open311Error(400, "lat/long: WGS84 degrees (-90..90, -180..180)")
    address = (form.get("address_string") or "").strip()
    address_id = (form.get("address_id") or "").strip()
    street = (form.get("attribute[street]") or "").strip()
    house = (form.get("attribute[house]") or "").strip()
    if not (street or address or address_id or lat is not None):
        raise Open311Error(
            400, "a location is required: lat and long, address_string or address_id"
        )
    if not street:
        if address:
            street = address
        elif address_id:
            street = f"address id {address_id}"
        else:
            street = f"{lat:.6f}, {long:.6f}"
    if len(street) > MAX_STREET:
        raise Open311Error(400, f"address_string: at most {MAX_STREET} characters")
    description = form.get("description") or ""
    if len(description) > MAX_DESCRIPTION:
        raise Open311Error(400, f"description: at most {MAX_DESCRIPTION} characters")
    priority = (form.get("attribute[priority]") or "normal").strip()
    if priority not in life.PRIORITIES:
        raise Open311Error(400, f"attribute[priority]: one of {', '.join(life.PRIORITIES)}")
    name = " ".join(p for p in (form.get("first_name"), form.get("last_name")) if p).strip()
    return NewRequest(
        category=code,
        street=street,
        house=house or NO_HOUSE,
        flat=(form.get("attribute[flat]") or "").strip() or None,
        lat=lat,
        long=long,
        description=description,
        caller_number=form.get("phone"),
        caller_name=name or None,
        priority=priority,
        source="open311",
    )
