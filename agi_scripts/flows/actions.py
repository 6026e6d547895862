"""Services that `action` nodes call: the meter-readings steps, over the database.

One explicit table maps a service name (schema.ACTION_OUTCOMES) to its function. Each runs
in a worker thread with its own session; the rules live in call_router/meter_readings.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from agi_scripts.flows.runtime import ActionCall, ActionResult
from call_router import meter_store, payer_accounts
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.flows.schema import ActionArgs
from call_router.meter_models import MeterReading
from call_router.meter_readings import DEFAULT_AMEND_WINDOW, MeterKind, meter_kind
from call_router.models import Call
from call_router.numbers import ANONYMOUS, normalize_number

# A reading the caller confirmed while the database was away: kept in the call-log writer's
# spool (fsynced before the caller hears "saved") and stored when the database returns.
DEFERRED_STORE = "store_meter_reading"
Defer = Callable[..., bool]  # CallWriter.keep_from_thread

Service = Callable[["MeterActions", Session, ActionArgs, dict[str, str], ActionCall], ActionResult]


class MeterActions:
    """engine.FlowActions for the meter-readings flow."""

    def __init__(
        self,
        db: Database,
        country: str,
        amend_window: timedelta = DEFAULT_AMEND_WINDOW,
        *,
        defer: Defer | None = None,
    ) -> None:
        self._db = db
        self._country = country
        self._amend_window = amend_window
        self._defer = defer

    def run(
        self, service: str, args: ActionArgs, variables: dict[str, str], call: ActionCall
    ) -> ActionResult:
        handler = SERVICES[service]
        try:
            with self._db.session() as session:
                return handler(self, session, args, variables, call)
        except OperationalError:
            if service in UNCHECKED_WHEN_AWAY:
                # Billing's lists cannot be read: the caller goes on as before accounts existed.
                return ActionResult("ok")
            # The database is away. A new reading (checked against the last one moments ago)
            # is kept durably and stored when it returns; anything else fails (coordinator).
            if service != "meter_store" or args.replace or not self._kept(args, variables, call):
                raise
            return ActionResult("ok", {"reading_id": ""})

    def _kept(self, args: ActionArgs, variables: dict[str, str], call: ActionCall) -> bool:
        if self._defer is None or not call.linkedid:
            return False
        payer, meter = self._payer_and_meter(args, variables)
        return self._defer(
            DEFERRED_STORE,
            call.linkedid,
            payer=payer,
            meter=meter,
            digits=variables.get(args.reading_var, ""),
            at=call.now,
            caller_number=self._caller(call),
            max_monthly_growth=dict(args.max_monthly_growth),
        )

    # --- helpers -------------------------------------------------------------------------

    def _caller(self, call: ActionCall) -> str | None:
        number = normalize_number(call.caller_number or "", self._country)
        return None if number == ANONYMOUS else number

    @staticmethod
    def _payer_and_meter(args: ActionArgs, variables: dict[str, str]) -> tuple[str, MeterKind]:
        payer = variables.get(args.payer_var, "")
        if not payer.isascii() or not payer.isdigit():
            raise ValueError(f"variable {args.payer_var!r} holds no payer code")
        return payer, meter_kind(variables.get(args.meter_var, ""))

    def _amendable(
        self, session: Session, args: ActionArgs, variables: dict[str, str], call: ActionCall
    ) -> MeterReading | None:
        payer, meter = self._payer_and_meter(args, variables)
        return meter_store.amendable(
            session, payer, meter, self._caller(call), call.now, self._amend_window
        )

    # --- the services ----------------------------------------------------------------------

    def payer_check(
        self, session: Session, args: ActionArgs, variables: dict[str, str], call: ActionCall
    ) -> ActionResult:
        payer = variables.get(args.payer_var, "")
        if not payer.isascii() or not payer.isdigit():
            return ActionResult("unknown")
        return ActionResult("ok" if payer_accounts.account_known(session, payer) else "unknown")

    def meter_on_account(
        self, session: Session, args: ActionArgs, variables: dict[str, str], call: ActionCall
    ) -> ActionResult:
        payer, meter = self._payer_and_meter(args, variables)
        known = payer_accounts.meter_known(session, payer, meter)
        return ActionResult("ok" if known else "none")

    def _target(
        self, session: Session, args: ActionArgs, variables: dict[str, str], call: ActionCall
    ) -> tuple[str, MeterKind, MeterReading | None]:
        """Payer, meter, and (for a correction) the reading it replaces."""
        payer, meter = self._payer_and_meter(args, variables)
        replacing = self._amendable(session, args, variables, call) if args.replace else None
        if args.replace and replacing is None:
            raise LookupError("nothing this caller may correct")
        return payer, meter, replacing

    def meter_check(
        self, session: Session, args: ActionArgs, variables: dict[str, str], call: ActionCall
    ) -> ActionResult:
        payer, meter, replacing = self._target(session, args, variables, call)
        verdict = meter_store.check(
            session,
            payer,
            meter,
            variables.get(args.reading_var, ""),
            call.now,
            replacing=replacing,
            max_monthly_growth=args.max_monthly_growth,
        )
        found = {"last_reading": str(verdict.last)} if verdict.last is not None else {}
        return ActionResult(verdict.problem or "ok", found)

    def meter_store(
        self, session: Session, args: ActionArgs, variables: dict[str, str], call: ActionCall
    ) -> ActionResult:
        payer, meter, replacing = self._target(session, args, variables, call)
        call_id = (
            session.scalar(select(Call.id).where(Call.linkedid == call.linkedid))
            if call.linkedid
            else None
        )
        stored = meter_store.submit(
            session,
            payer,
            meter,
            variables.get(args.reading_var, ""),
            call.now,
            source="phone",
            caller_number=self._caller(call),
            call_id=call_id,
            replacing=replacing,
            max_monthly_growth=args.max_monthly_growth,
        )
        if stored.reading_id is None:
            return ActionResult(stored.check.problem or "not_digits")
        return ActionResult("ok", {"reading_id": str(stored.reading_id)})

    def meter_last(
        self, session: Session, args: ActionArgs, variables: dict[str, str], call: ActionCall
    ) -> ActionResult:
        row = self._amendable(session, args, variables, call)
        if row is None:
            return ActionResult("none")
        return ActionResult("found", {"last_reading": str(row.value)})

    def meter_delete(
        self, session: Session, args: ActionArgs, variables: dict[str, str], call: ActionCall
    ) -> ActionResult:
        row = self._amendable(session, args, variables, call)
        if row is None:
            return ActionResult("none")
        meter_store.delete(session, row, call.now)
        return ActionResult("ok", {"deleted_reading": str(row.value)})


def store_deferred_reading(
    call_log: CallLog,
    linkedid: str,
    *,
    payer: str,
    meter: MeterKind,
    digits: str,
    at: datetime,
    caller_number: str | None,
    max_monthly_growth: dict[MeterKind, int],
) -> None:
    """The call-log writer's replay of a DEFERRED_STORE (in its transaction).

    Once only: a replay after a crash finds the reading of this call, meter and moment already
    there. A reading the rules now refuse (another came in meanwhile) is an error: the writer
    sets it aside in its `.rejected` file for a person.
    """

    def store(session: Session) -> None:
        call_id = session.scalar(select(Call.id).where(Call.linkedid == linkedid))
        if call_id is not None:
            done = session.scalars(
                select(MeterReading.submitted_at).where(
                    MeterReading.call_id == call_id, MeterReading.meter == meter
                )
            )
            if any(abs((when - at).total_seconds()) < 0.001 for when in done):
                return
        stored = meter_store.submit(
            session,
            payer,
            meter,
            digits,
            at,
            source="phone",
            caller_number=caller_number,
            call_id=call_id,
            max_monthly_growth=max_monthly_growth or None,
        )
        if stored.reading_id is None:
            raise ValueError(f"deferred meter reading refused: {stored.check.problem}")

    call_log.run(store)


# Checks against billing's lists that a database outage must not turn into a dead end.
UNCHECKED_WHEN_AWAY = frozenset({"payer_check", "meter_on_account"})

SERVICES: dict[str, Service] = {
    "payer_check": MeterActions.payer_check,
    "meter_on_account": MeterActions.meter_on_account,
    "meter_check": MeterActions.meter_check,
    "meter_store": MeterActions.meter_store,
    "meter_last": MeterActions.meter_last,
    "meter_delete": MeterActions.meter_delete,
}
