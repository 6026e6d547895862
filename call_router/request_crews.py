# Crews that take service requests: who serves which categories and districts, added and
# listed by the CLI and the API.

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router.models import utcnow
from call_router.request_lifecycle import Category
from call_router.request_models import Crew
from call_router.service_requests import MAX_DISTRICT, RequestError, clean_caller_number, clean_text


def crew_serves(crew: Crew, category: str, district: str | None) -> bool:
    if crew.categories and category not in crew.categories:
        return False
    wanted = (district or "").casefold()
    return not crew.districts or (bool(wanted) and wanted in {d.casefold() for d in crew.districts})


def _names(values: Sequence[str], field: str, limit: int) -> list[str]:
    cleaned = []
    for value in values:
        clean = clean_text(value, field, limit)
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
    clean = clean_text(name, "name", 64, required=True)
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
        phone=clean_caller_number(phone),
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
