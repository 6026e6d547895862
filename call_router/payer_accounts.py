"""Payer accounts from the billing system: the CSV an admin imports (`hotline meters import`),
the menu's checks against it, and the month's readings exported back for billing.

CSV: one meter a line, `payer_code,address,meter,serial,last_reading,last_read_on`; an account
with no meters is one line with the meter columns empty; an account with several meters is
several lines with the same code and address. `meter` is one of cold_water, hot_water, heat;
`last_reading` (whole units, as a resident keys them) and `last_read_on` (YYYY-MM-DD or
DD.MM.YYYY) are what billing last knew: a phoned reading is checked against it when it is
newer than the last reading phoned in. Until any account is imported, payer codes are checked
by their check digit only (as before).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from call_router import csv_files, date_range
from call_router.csv_files import CsvFileError, clean_text, safe_cell
from call_router.flows.conditions import luhn_ok
from call_router.meter_models import READING_ACTIVE, MeterReading, PayerAccount, PayerMeter
from call_router.meter_readings import (
    MAX_READING_DIGITS,
    METER_KINDS,
    MeterKind,
    PreviousReading,
    ReadingCheck,
    parse_reading,
)
from call_router.models import utcnow
from call_router.sql_in import rows_in

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ROWS = 200_000
MAX_CODE = 32
MAX_ADDRESS = 256
MAX_SERIAL = 32
HEADER = ("payer_code", "address", "meter", "serial", "last_reading", "last_read_on")


class AccountImportError(CsvFileError):
    """The file is refused; nothing was written."""


@dataclass(frozen=True)
class AccountRow:
    line: int
    code: str
    address: str
    meter: MeterKind | None
    serial: str | None
    last_value: int | None
    last_read_on: date | None


@dataclass
class AccountImport:
    accounts_added: int = 0
    accounts_updated: int = 0
    meters_added: int = 0
    meters_updated: int = 0
    # Codes with no valid Luhn check digit: a flow with `checksum: luhn` refuses them.
    without_check_digit: list[str] = field(default_factory=list)


def _date(text: str) -> date | None:
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _row(number: int, cells: list[str]) -> tuple[AccountRow | None, str | None]:
    if len(cells) < 2 or len(cells) > len(HEADER):
        return None, f"expected {','.join(HEADER)} (2 to {len(HEADER)} columns), got {len(cells)}"
    code, address, meter, serial, value, read_on = (cells + [""] * len(HEADER))[: len(HEADER)]
    if not code.isascii() or not code.isdigit() or len(code) > MAX_CODE:
        return None, f"the payer code must be 1-{MAX_CODE} digits, got {clean_text(code)[:40]!r}"
    address = clean_text(address)
    if not address:
        return None, "the address is empty"
    if len(address) > MAX_ADDRESS:
        return None, f"the address is longer than {MAX_ADDRESS} characters"
    kind: MeterKind | None = None
    if meter:
        kind = next((k for k in METER_KINDS if k == meter.lower()), None)
        if kind is None:
            return (
                None,
                f"unknown meter {clean_text(meter)[:20]!r}; meters: {', '.join(METER_KINDS)}",
            )
    elif serial or value or read_on:
        return None, "a serial or last reading without a meter"
    serial = clean_text(serial)
    if len(serial) > MAX_SERIAL:
        return None, f"the serial is longer than {MAX_SERIAL} characters"
    last_value: int | None = None
    if value:
        reading = parse_reading(value)
        if isinstance(reading, ReadingCheck):
            # Meters are read in whole units (a billing export may write 100.5 or 100,5).
            return None, (
                f"the last reading must be a whole number of at most {MAX_READING_DIGITS} "
                f"digits, got {clean_text(value)[:20]!r}"
            )
        last_value = reading
    read_date = _date(read_on) if read_on else None
    if read_on and read_date is None:
        return None, f"the date must be YYYY-MM-DD or DD.MM.YYYY, got {clean_text(read_on)[:20]!r}"
    if (last_value is None) != (read_date is None):
        return None, "a last reading needs its date, and a date its reading"
    return AccountRow(number, code, address, kind, serial or None, last_value, read_date), None


def parse_csv(data: bytes) -> list[AccountRow]:
    """The file's lines, or AccountImportError listing every bad line. Pure."""
    text = csv_files.decode(data, MAX_FILE_BYTES, AccountImportError)
    rows: list[AccountRow] = []
    errors: list[tuple[int, str]] = []
    addresses: dict[str, tuple[int, str]] = {}
    meters: dict[tuple[str, str], int] = {}
    for number, cells in csv_files.lines(text, HEADER, MAX_ROWS, errors):
        row, problem = _row(number, cells)
        if problem:
            errors.append((number, problem))
            continue
        assert row is not None
        first = addresses.setdefault(row.code, (number, row.address))
        if first[1] != row.address:
            errors.append((number, f"account {row.code} has another address on line {first[0]}"))
            continue
        if row.meter is not None:
            seen = meters.setdefault((row.code, row.meter), number)
            if seen != number:
                errors.append(
                    (number, f"account {row.code}: {row.meter} is already on line {seen}")
                )
                continue
        rows.append(row)
    if errors:
        raise AccountImportError(errors)
    if not rows:
        raise AccountImportError([(0, "no accounts in the file")])
    return rows


def _midday_utc(day: date) -> datetime:
    # Billing gives a date only; midday keeps it the same day in every Russian time zone.
    return datetime.combine(day, time(12), tzinfo=UTC)


def _accounts_by_code(session: Session, codes: Iterable[str]) -> dict[str, PayerAccount]:
    return {a.code: a for a in rows_in(session, PayerAccount, PayerAccount.code, codes)}


def _meters_by_account(
    session: Session, account_ids: Iterable[int]
) -> dict[tuple[int, str], PayerMeter]:
    meters = rows_in(session, PayerMeter, PayerMeter.account_id, account_ids)
    return {(m.account_id, m.meter): m for m in meters}


def import_accounts(
    session: Session, rows: list[AccountRow], tenant_id: int | None, *, now: datetime | None = None
) -> AccountImport:
    """Add or update the accounts and meters of the file for a tenant (None: the centre).

    An account of another tenant refuses the whole file (nothing written). Meters an account
    already has but the file does not list are kept (nothing is deleted by an import)."""
    codes = sorted({row.code for row in rows})
    existing = _accounts_by_code(session, codes)
    foreign = [
        (row.line, f"account {row.code} belongs to another company")
        for row in rows
        if row.code in existing and existing[row.code].tenant_id != tenant_id
    ]
    if foreign:
        raise AccountImportError(foreign)
    at = now or utcnow()
    result = AccountImport()
    accounts: dict[str, PayerAccount] = {}
    for row in rows:
        if row.code in accounts:
            continue
        account = existing.get(row.code)
        if account is None:
            account = PayerAccount(code=row.code, tenant_id=tenant_id, address=row.address)
            account.imported_at = at
            session.add(account)
            result.accounts_added += 1
        else:
            account.address, account.imported_at = row.address, at
            result.accounts_updated += 1
        accounts[row.code] = account
        if not luhn_ok(row.code):
            result.without_check_digit.append(row.code)
    session.flush()
    ids = [a.id for a in accounts.values()]
    have = _meters_by_account(session, ids)
    for row in rows:
        if row.meter is None:
            continue
        account = accounts[row.code]
        meter = have.get((account.id, row.meter))
        if meter is None:
            meter = PayerMeter(account_id=account.id, tenant_id=tenant_id, meter=row.meter)
            session.add(meter)
            result.meters_added += 1
        else:
            result.meters_updated += 1
        meter.serial = row.serial
        meter.last_value = row.last_value
        meter.last_read_at = _midday_utc(row.last_read_on) if row.last_read_on else None
    session.flush()
    return result


# --- the menu's checks (the meters flow's action services) ----------------------------------


def account_known(session: Session, code: str) -> bool:
    """Is `code` a payer account? True for any code until accounts have been imported."""
    if session.scalar(select(exists().where(PayerAccount.code == code))):
        return True
    return not session.scalar(select(exists().select_from(PayerAccount)))


def meter_known(session: Session, code: str, meter: MeterKind) -> bool:
    """Does the account have this meter? True when billing lists no meters for it (or no
    accounts are imported): the reading is then taken as before."""
    listed = set(
        session.scalars(
            select(PayerMeter.meter)
            .join(PayerAccount, PayerAccount.id == PayerMeter.account_id)
            .where(PayerAccount.code == code)
        )
    )
    return not listed or meter in listed


def billing_baseline(session: Session, code: str, meter: MeterKind) -> PreviousReading | None:
    """The last reading billing knows for this meter, if it gave one."""
    row = session.execute(
        select(PayerMeter.last_value, PayerMeter.last_read_at)
        .join(PayerAccount, PayerAccount.id == PayerMeter.account_id)
        .where(PayerAccount.code == code, PayerMeter.meter == meter)
    ).first()
    if row is None or row.last_value is None or row.last_read_at is None:
        return None
    return PreviousReading(row.last_value, row.last_read_at)


# --- the month's readings, for billing ------------------------------------------------------


@dataclass(frozen=True)
class ExportRow:
    payer_code: str
    address: str
    meter: str
    serial: str
    previous_value: int | None
    previous_read_on: str
    value: int
    submitted_at: str  # local time, ISO
    source: str
    reading_id: int


EXPORT_HEADER = (
    "payer_code",
    "address",
    "meter",
    "serial",
    "previous_value",
    "previous_read_on",
    "value",
    "submitted_at",
    "source",
    "reading_id",
)


def parse_month(text: str) -> date:
    """`YYYY-MM` → the month's first day; ValueError with a clear message otherwise."""
    try:
        month = datetime.strptime(text.strip(), "%Y-%m").date()
    except ValueError:
        raise ValueError(f"a month is YYYY-MM, got {text[:20]!r}") from None
    return date_range.checked(month, "a month")


def month_bounds(month: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The month in local time, as UTC instants [start, end)."""
    start = datetime.combine(month.replace(day=1), time(), tzinfo=zone)
    following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start.astimezone(UTC), following.astimezone(UTC)


def month_readings(session: Session, month: date, zone: tzinfo) -> list[ExportRow]:
    """Each meter's last reading phoned in (or entered) during the local month that is still
    current (not corrected or deleted), with the account's address, serial and the baseline
    billing gave. Readings of codes billing did not list are exported too (address empty)."""
    start, end = month_bounds(month, zone)
    latest = (
        select(
            MeterReading.payer_code,
            MeterReading.meter,
            func.max(MeterReading.id).label("id"),
        )
        .where(
            MeterReading.status == READING_ACTIVE,
            MeterReading.submitted_at >= start,
            MeterReading.submitted_at < end,
        )
        .group_by(MeterReading.payer_code, MeterReading.meter)
        .subquery()
    )
    readings = session.scalars(
        select(MeterReading)
        .join(latest, MeterReading.id == latest.c.id)
        .order_by(MeterReading.payer_code, MeterReading.meter)
    ).all()
    codes = {r.payer_code for r in readings}
    accounts = _accounts_by_code(session, codes)
    meters = _meters_by_account(session, [a.id for a in accounts.values()])
    out: list[ExportRow] = []
    for reading in readings:
        account = accounts.get(reading.payer_code)
        meter = meters.get((account.id, reading.meter)) if account else None
        previous_at = meter.last_read_at if meter else None
        out.append(
            ExportRow(
                payer_code=reading.payer_code,
                address=account.address if account else "",
                meter=reading.meter,
                serial=(meter.serial or "") if meter else "",
                previous_value=meter.last_value if meter else None,
                previous_read_on=previous_at.date().isoformat() if previous_at else "",
                value=reading.value,
                submitted_at=reading.submitted_at.astimezone(zone).isoformat(timespec="seconds"),
                source=reading.source,
                reading_id=reading.id,
            )
        )
    return out


def csv_row(row: ExportRow) -> list[str]:
    """One export line; text cells defused for spreadsheets (numbers are ours)."""
    return [
        row.payer_code,
        safe_cell(row.address),
        row.meter,
        safe_cell(row.serial),
        "" if row.previous_value is None else str(row.previous_value),
        row.previous_read_on,
        str(row.value),
        row.submitted_at,
        row.source,
        str(row.reading_id),
    ]
