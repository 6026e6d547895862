"""Tenants' buildings (imported from CSV), residents' registered phones, and the reads the
menu makes to place a caller with a company (call_router/tenant_routing.py decides).

CSV: one building a line, `street,house[,code]` (`;` also separates, as spreadsheets in
Russian locales write it); an optional header line naming those columns. Every line is
checked before anything is written: one bad line refuses the whole file, with every bad
line's number and reason, and nothing is half-imported.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router import csv_files
from call_router.csv_files import clean_text
from call_router.models import Call, utcnow
from call_router.numbers import ANONYMOUS, normalize_number
from call_router.request_models import ServiceRequest
from call_router.spoken_addresses import SpokenBuilding
from call_router.sql_in import rows_in
from call_router.tenant_models import Building, ResidentPhone, Tenant
from call_router.tenant_routing import HOUSE_CODE_RE, KnownBuilding
from call_router.tenants import TenantError, require_tenant

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ROWS = 100_000
MAX_STREET = 128
MAX_HOUSE = 16
_HEADER = ("street", "house", "code")


class BuildingImportError(csv_files.CsvFileError, TenantError):
    """The file is refused; `errors` are (line number, reason), line 0 for the whole file."""


@dataclass(frozen=True)
class BuildingRow:
    line: int
    street: str
    house: str
    code: str | None


@dataclass
class ImportResult:
    added: int = 0
    updated: int = 0
    buildings: list[Building] = field(default_factory=list)


def parse_csv(data: bytes) -> list[BuildingRow]:
    """The file's buildings, or BuildingImportError listing every bad line. Pure."""
    text = csv_files.decode(data, MAX_FILE_BYTES, BuildingImportError)
    rows: list[BuildingRow] = []
    errors: list[tuple[int, str]] = []
    seen_codes: dict[str, int] = {}
    seen_addresses: dict[tuple[str, str], int] = {}
    for number, cells in csv_files.lines(text, _HEADER, MAX_ROWS, errors):
        row, problem = _row(number, cells)
        if problem:
            errors.append((number, problem))
            continue
        assert row is not None
        key = (row.street.casefold(), row.house.casefold())
        if key in seen_addresses:
            errors.append((number, f"the same address as line {seen_addresses[key]}"))
            continue
        seen_addresses[key] = number
        if row.code is not None:
            if row.code in seen_codes:
                errors.append(
                    (number, f"code {row.code} is already on line {seen_codes[row.code]}")
                )
                continue
            seen_codes[row.code] = number
        rows.append(row)
    if errors:
        raise BuildingImportError(errors)
    if not rows:
        raise BuildingImportError([(0, "no buildings in the file")])
    return rows


def _row(number: int, cells: list[str]) -> tuple[BuildingRow | None, str | None]:
    if len(cells) < 2:
        return None, "expected street,house[,code]"
    if len(cells) > 3:
        return None, f"expected at most 3 columns (street,house,code), got {len(cells)}"
    street, house = clean_text(cells[0]), clean_text(cells[1])
    code = cells[2] if len(cells) == 3 else ""
    if not street:
        return None, "the street is empty"
    if len(street) > MAX_STREET:
        return None, f"the street is longer than {MAX_STREET} characters"
    if not house:
        return None, "the house is empty"
    if len(house) > MAX_HOUSE:
        return None, f"the house is longer than {MAX_HOUSE} characters"
    if code and not HOUSE_CODE_RE.fullmatch(code):
        return (
            None,
            f"the code must be 1-8 digits (keyed on a phone), got {clean_text(code)[:20]!r}",
        )
    return BuildingRow(number, street, house, code or None), None


def import_buildings(
    session: Session, tenant_slug: str, rows: list[BuildingRow], *, now: datetime | None = None
) -> ImportResult:
    """Add the tenant's buildings; an address it already has takes the file's code. A code
    another building holds refuses the whole file (nothing written)."""
    tenant = require_tenant(session, tenant_slug)
    existing = {
        (b.street.casefold(), b.house.casefold()): b
        for b in session.scalars(select(Building).where(Building.tenant_id == tenant.id))
    }
    wanted = [row.code for row in rows if row.code is not None]
    holders = {
        b.code: b for b in rows_in(session, Building, Building.code, wanted) if b.code is not None
    }
    # A holder that this file gives a code of its own lets go of its old one.
    recoded = {
        id(existing[key])
        for key in ((row.street.casefold(), row.house.casefold()) for row in rows)
        if key in existing
    }
    errors: list[tuple[int, str]] = []
    for row in rows:
        holder = holders.get(row.code) if row.code is not None else None
        if holder is not None and id(holder) not in recoded:
            errors.append((row.line, f"code {row.code} already belongs to another building"))
    if errors:
        raise BuildingImportError(errors)
    result = ImportResult()
    at = now or utcnow()
    # Codes released by this file's updates first: a file may swap two buildings' codes.
    for row in rows:
        mine = existing.get((row.street.casefold(), row.house.casefold()))
        if mine is not None and mine.code != row.code:
            mine.code = None
    session.flush()
    for row in rows:
        mine = existing.get((row.street.casefold(), row.house.casefold()))
        if mine is None:
            mine = Building(
                tenant_id=tenant.id,
                street=row.street,
                house=row.house,
                code=row.code,
                created_at=at,
            )
            session.add(mine)
            result.added += 1
        else:
            mine.code = row.code
            result.updated += 1
        result.buildings.append(mine)
    session.flush()
    return result


def list_buildings(session: Session, tenant_slug: str | None = None) -> list[Building]:
    query = select(Building).order_by(Building.tenant_id, Building.street, Building.house)
    if tenant_slug is not None:
        query = query.where(Building.tenant_id == require_tenant(session, tenant_slug).id)
    return list(session.scalars(query))


def building_dict(building: Building, slugs: dict[int, str]) -> dict[str, object]:
    return {
        "id": building.id,
        "tenant": slugs.get(building.tenant_id),
        "street": building.street,
        "house": building.house,
        "code": building.code,
    }


def register_phone(
    session: Session, phone: str, building_id: int, country: str, *, now: datetime | None = None
) -> ResidentPhone:
    """Register a resident's phone at a building (moving it if it was elsewhere)."""
    number = normalize_number(phone, country)
    if number == ANONYMOUS:
        raise TenantError(f"{phone!r} is not a phone number")
    building = session.get(Building, building_id)
    if building is None:
        raise TenantError(f"no building {building_id}")
    row = session.get(ResidentPhone, number)
    if row is None:
        row = ResidentPhone(phone=number, created_at=now or utcnow())
        session.add(row)
    row.building_id, row.tenant_id = building.id, building.tenant_id
    session.flush()
    return row


# --- the menu's reads (FastAGI, bounded by the caller) ---------------------------------------


def known_building(
    session: Session, caller_number: str, country: str = "RU"
) -> KnownBuilding | None:
    """The building a caller (normalised E.164) is known at: a registered phone, else the
    newer of their latest call that had a building and their latest service request of a
    tenant (the request's building when the tenant has one at its address)."""
    if not caller_number or caller_number == ANONYMOUS:
        return None
    phone = session.execute(
        select(ResidentPhone.building_id, ResidentPhone.tenant_id).where(
            ResidentPhone.phone == caller_number
        )
    ).first()
    if phone is not None:
        return KnownBuilding(phone.building_id, phone.tenant_id, "phone")
    earlier = session.execute(
        select(Building.id, Building.tenant_id, Call.started_at)
        .join(Call, Call.building_id == Building.id)
        .where(Call.caller_number == caller_number)
        .order_by(Call.started_at.desc())
        .limit(1)
    ).first()
    request = _latest_request(session, caller_number, country)
    if request is not None and (earlier is None or _utc(request[1]) > _utc(earlier.started_at)):
        return request[0]
    if earlier is not None:
        return KnownBuilding(earlier.id, earlier.tenant_id, "earlier_call")
    return None


# A request's caller number is kept as it was given (call_router/service_requests.py): these
# many of a number's newest requests are read to find the one spelled as this caller.
_REQUESTS_READ = 5


def _spellings(number: str) -> list[str]:
    """How a request may have stored an E.164 number: as is, without '+', nationally."""
    spellings = {number, number.lstrip("+")}
    with contextlib.suppress(phonenumbers.NumberParseException):
        national = str(phonenumbers.parse(number).national_number)
        spellings |= {national, "8" + national, "0" + national}
    return sorted(spellings)


def _latest_request(
    session: Session, caller_number: str, country: str
) -> tuple[KnownBuilding, datetime] | None:
    """The caller's newest service request that belongs to a tenant, as a known building."""
    rows = session.execute(
        select(
            ServiceRequest.tenant_id,
            ServiceRequest.street,
            ServiceRequest.house,
            ServiceRequest.caller_number,
            ServiceRequest.created_at,
        )
        .where(
            ServiceRequest.caller_number.in_(_spellings(caller_number)),
            ServiceRequest.tenant_id.is_not(None),
        )
        .order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())
        .limit(_REQUESTS_READ)
    )
    for tenant_id, street, house, number, created_at in rows:
        if tenant_id is None or normalize_number(number, country) != caller_number:
            continue
        building = session.scalar(
            select(Building.id).where(
                Building.tenant_id == tenant_id, Building.street == street, Building.house == house
            )
        )
        return KnownBuilding(building, tenant_id, "request"), created_at
    return None


def _utc(at: datetime) -> datetime:
    """Naive UTC (SQLite hands back naive datetimes; PostgreSQL aware ones)."""
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo is not None else at


def building_by_code(session: Session, code: str) -> tuple[int, int] | None:
    """(building id, tenant id) of a house code."""
    row = session.execute(
        select(Building.id, Building.tenant_id).where(Building.code == code)
    ).first()
    return (row.id, row.tenant_id) if row is not None else None


def coded_buildings(session: Session) -> list[SpokenBuilding]:
    """Every building with a house code, as a caller may name it (the company node)."""
    rows = session.execute(
        select(Building.code, Building.street, Building.house)
        .where(Building.code.is_not(None))
        .order_by(Building.id)
    )
    return [SpokenBuilding(code, street, house) for code, street, house in rows if code]


def tenant_slug(session: Session, tenant_id: int) -> str | None:
    return session.scalar(select(Tenant.slug).where(Tenant.id == tenant_id))
