"""`GET /api/meter-readings?payer=…[&meter=…][&history=true]`: readings phoned in, read-only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from call_router import meter_store
from call_router.meter_readings import METER_KINDS, MeterKind, meter_kind
from dashboard.deps import SessionDep

router = APIRouter(tags=["meters"])


class MeterReadingOut(BaseModel):
    id: int
    payer: str
    meter: str
    value: int
    status: str
    source: str
    call_id: int | None
    submitted_at: datetime
    changed_at: datetime | None
    replaced_by: int | None


@router.get("/api/meter-readings", response_model=list[MeterReadingOut])
def meter_readings(
    session: SessionDep,
    payer: Annotated[str, Query(min_length=1, max_length=32, pattern=r"^[0-9]+$")],
    meter: Annotated[str | None, Query(max_length=16)] = None,
    history: bool = False,
) -> list[MeterReadingOut]:
    """The current reading per meter, or (history=true) every reading, newest first."""
    kind: MeterKind | None = None
    if meter is not None:
        try:
            kind = meter_kind(meter)
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
    if history:
        rows = meter_store.history(session, payer, kind)
    else:
        found = [
            meter_store.last_reading(session, payer, k) for k in ([kind] if kind else METER_KINDS)
        ]
        rows = [r for r in found if r is not None]
    return [
        MeterReadingOut(
            id=r.id,
            payer=r.payer_code,
            meter=r.meter,
            value=r.value,
            status=r.status,
            source=r.source,
            call_id=r.call_id,
            submitted_at=r.submitted_at,
            changed_at=r.changed_at,
            replaced_by=r.replaced_by_id,
        )
        for r in rows
    ]
