"""Meter readings in the database: submit, correct, delete, history.

Thin I/O around call_router/meter_readings.py (the rules). Every function takes a session and
an explicit `now`, so the same code serves the phone flow, the CLI and the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router.meter_models import (
    READING_ACTIVE,
    READING_CORRECTED,
    READING_DELETED,
    MeterReading,
)
from call_router.meter_readings import (
    DEFAULT_AMEND_WINDOW,
    MeterKind,
    PreviousReading,
    ReadingCheck,
    check_reading,
    may_amend,
    newest,
)
from call_router.payer_accounts import billing_baseline

MAX_PAYER_CODE = 32


@dataclass(frozen=True)
class Submitted:
    check: ReadingCheck
    reading_id: int | None = None  # None when refused


def _payer(payer_code: str) -> str:
    code = payer_code.strip()
    if not code.isascii() or not code.isdigit() or len(code) > MAX_PAYER_CODE:
        raise ValueError(f"payer code must be up to {MAX_PAYER_CODE} digits")
    return code


def current_readings(session: Session, payer_code: str, meter: MeterKind) -> list[MeterReading]:
    """Active readings of the meter, newest first."""
    return list(
        session.scalars(
            select(MeterReading)
            .where(
                MeterReading.payer_code == _payer(payer_code),
                MeterReading.meter == meter,
                MeterReading.status == READING_ACTIVE,
            )
            .order_by(MeterReading.id.desc())
        ).all()
    )


def last_reading(session: Session, payer_code: str, meter: MeterKind) -> MeterReading | None:
    rows = current_readings(session, payer_code, meter)
    return rows[0] if rows else None


def check(
    session: Session,
    payer_code: str,
    meter: MeterKind,
    digits: str,
    now: datetime,
    *,
    replacing: MeterReading | None = None,
    max_monthly_growth: Mapping[MeterKind, int] | None = None,
) -> ReadingCheck:
    """The verdict on a new reading; when `replacing` the last one, against the one before
    (or against billing's last reading of the meter, when that is newer)."""
    rows = [r for r in current_readings(session, payer_code, meter) if r is not replacing]
    phoned = PreviousReading(rows[0].value, rows[0].submitted_at) if rows else None
    billed = billing_baseline(session, _payer(payer_code), meter)
    previous = newest(phoned, billed)
    return check_reading(digits, meter, previous, now, max_monthly_growth)


def submit(
    session: Session,
    payer_code: str,
    meter: MeterKind,
    digits: str,
    now: datetime,
    *,
    source: str = "phone",
    caller_number: str | None = None,
    call_id: int | None = None,
    replacing: MeterReading | None = None,
    max_monthly_growth: Mapping[MeterKind, int] | None = None,
) -> Submitted:
    """Store an accepted reading (re-checked here: the flow's check may be seconds old)."""
    verdict = check(
        session,
        payer_code,
        meter,
        digits,
        now,
        replacing=replacing,
        max_monthly_growth=max_monthly_growth,
    )
    if not verdict.ok or verdict.value is None:
        return Submitted(verdict)
    row = MeterReading(
        payer_code=_payer(payer_code),
        meter=meter,
        value=verdict.value,
        status=READING_ACTIVE,
        source=source,
        caller_number=caller_number,
        call_id=call_id,
        submitted_at=now,
    )
    session.add(row)
    session.flush()
    if replacing is not None:
        replacing.status, replacing.changed_at = READING_CORRECTED, now
        replacing.replaced_by_id = row.id
    return Submitted(verdict, row.id)


def amendable(
    session: Session,
    payer_code: str,
    meter: MeterKind,
    caller_number: str | None,
    now: datetime,
    window: timedelta = DEFAULT_AMEND_WINDOW,
) -> MeterReading | None:
    """The last reading, if this caller phoned it in within the window; else None."""
    row = last_reading(session, payer_code, meter)
    if row is None:
        return None
    ok = may_amend(row.submitted_at, row.caller_number, row.source, caller_number, now, window)
    return row if ok else None


def delete(session: Session, reading: MeterReading, now: datetime) -> None:
    reading.status, reading.changed_at = READING_DELETED, now


def history(
    session: Session, payer_code: str, meter: MeterKind | None = None, limit: int = 100
) -> list[MeterReading]:
    """Every reading of the payer (corrected and deleted ones too), newest first."""
    query = select(MeterReading).where(MeterReading.payer_code == _payer(payer_code))
    if meter is not None:
        query = query.where(MeterReading.meter == meter)
    return list(session.scalars(query.order_by(MeterReading.id.desc()).limit(limit)).all())
