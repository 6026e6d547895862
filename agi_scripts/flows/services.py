"""What the flow engine needs from the server, built once at start-up and handed to each call."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from agi_scripts.database_guard import DatabaseGuard
from agi_scripts.flows.actions import Defer, MeterActions
from agi_scripts.flows.caller_areas import CallerAreas
from agi_scripts.flows.requests import CallerRequests
from agi_scripts.flows.runtime import (
    ANY_AREA,
    ActiveIncident,
    AddressSpeech,
    FlowActions,
    FlowLookups,
    SpeechInput,
)
from agi_scripts.flows.snapshots import ReadClaim, Refreshed
from call_router import buildings, callback_intake, tenants
from call_router.callback_models import CallbackAttempt
from call_router.db import Database
from call_router.flow_models import CallerLanguage, Incident
from call_router.flows.admin import flows_status_file
from call_router.flows.loader import FlowRegistry
from call_router.models import Call, as_utc, utcnow
from call_router.numbers import ANONYMOUS, normalize_number
from call_router.settings import QUEUES, Settings
from call_router.spoken_addresses import SpokenBuilding
from call_router.tenant_models import Building, Tenant
from call_router.tenant_routing import (
    NumberOwner,
    TenantDecision,
    decide,
    queue_for,
)


@dataclass
class FlowServices:
    registry: FlowRegistry
    clock: Callable[[], datetime] = utcnow
    speech: SpeechInput | None = None
    # The caller's building in words (the company node), on the speech menu's listening path.
    address_speech: AddressSpeech | None = None
    lookups: FlowLookups | None = None
    actions: FlowActions | None = None
    # Numbers `transfer` nodes may name as `setting:<name>`.
    numbers: dict[str, str] = field(default_factory=dict)
    # Which company a call is for (tenants' numbers, buildings, own queues).
    tenants: TenantDirectory | None = None
    # The callers' open service requests (`requests` nodes, the feedback call).
    requests: CallerRequests | None = None
    # Where callers are (`area` nodes): their request's address, registered phone, a code.
    areas: CallerAreas | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The menus' database work, one circuit for the process (agi_scripts/database_guard.py).
    database: DatabaseGuard = field(default_factory=DatabaseGuard, repr=False, compare=False)
    # The flow runtimes built from these services, by language and recordings folder, with
    # what each was built from (agi_scripts/handlers/hotline.py): one per reload, not per call.
    runtimes: dict[tuple[str, str], tuple[tuple[Any, ...], Any]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        db: Database | None = None,
        speech: SpeechInput | None = None,
        address_speech: AddressSpeech | None = None,
        log: Any = None,
        defer: Defer | None = None,
        worker: int = 0,
    ) -> FlowServices:
        registry = FlowRegistry(
            settings.flows_dir,
            queues=QUEUES,
            timezone=settings.timezone,
            log=log,
            status_file=flows_status_file(settings, worker),
        )
        lookups = DbLookups(db, settings.country_code) if db is not None else None
        actions = MeterActions(db, settings.country_code, defer=defer) if db is not None else None
        # Asterisk writes voicemail here (RECORD FILE does not create folders).
        with contextlib.suppress(OSError):
            (settings.recordings_dir / "voicemail").mkdir(parents=True, exist_ok=True)
        return cls(
            registry=registry,
            speech=speech,
            address_speech=address_speech,
            lookups=lookups,
            actions=actions,
            numbers={"gas_emergency_number": settings.gas_emergency_number},
            tenants=TenantDirectory(db, settings.country_code) if db is not None else None,
            requests=(
                CallerRequests(db, settings.country_code, ttl=settings.request_status_ttl)
                if db is not None
                else None
            ),
            areas=(
                CallerAreas(db, settings.country_code, ttl=settings.request_status_ttl)
                if db is not None
                else None
            ),
        )


# Incidents are announced this long after a supervisor opens them, at the latest: the open
# incidents are read once per this many seconds, not once per call.
INCIDENTS_TTL = 2.0
# Remembered caller languages are held in memory and read again this often (another FastAGI
# process may have remembered one); one process's own choices are seen at once.
LANGUAGES_TTL = 60.0
# A read again takes only the rows changed since the newest it has seen, less this margin (a
# choice committed a little after a newer one, another box's clock a little behind); once an
# hour it takes the whole table. A national service remembers hundreds of thousands of
# numbers: the whole table every minute was most of a second of CPU under the loop's GIL.
LANGUAGES_OVERLAP = timedelta(minutes=10)
LANGUAGES_WHOLE_EVERY = 3600.0


class DbLookups:
    """Condition facts from the call log (and, once they exist, the incidents table).

    The facts every call asks for (open incidents, a caller's remembered language) are kept
    in memory and read again after a while, so a call normally needs no database round trip
    (and no worker thread) for them: see `incidents_if_fresh` and `language_if_fresh`.
    """

    def __init__(
        self,
        db: Database,
        country: str,
        *,
        incidents_ttl: float = INCIDENTS_TTL,
        languages_ttl: float = LANGUAGES_TTL,
    ) -> None:
        self._db = db
        self._country = country
        self._languages_ttl = languages_ttl
        # Read by one caller when stale; the others meanwhile take what memory has.
        self._incidents = Refreshed(self._read_incidents, incidents_ttl)
        self._languages: tuple[float, dict[str, str]] | None = None
        # The newest change the reads have seen (updated_at), and when the whole table was read.
        self._languages_newest: datetime | None = None
        self._languages_whole_at = 0.0
        # A read again is under way (one caller does it): the others meanwhile take what is
        # in memory instead of each reading the same rows in a thread of their own.
        self._languages_reading = ReadClaim()
        # Languages chosen since a read of the table may have begun (monotonic time of the
        # commit): a read whose rows predate the choice must not drop it from memory.
        self._chosen_languages: dict[str, tuple[float, str]] = {}

    def recent_calls(self, caller_number: str, since: datetime, exclude_linkedid: str) -> int:
        number = normalize_number(caller_number, self._country)
        if number == ANONYMOUS:
            return 0
        with self._db.session() as session:
            count = session.scalar(
                select(func.count(Call.id)).where(
                    Call.caller_number == number,
                    Call.started_at >= since,
                    Call.linkedid != exclude_linkedid,
                )
            )
            return int(count or 0)

    def caller_language(self, caller_number: str) -> str | None:
        try:
            if self._languages is None or self._stale(self._languages[0], self._languages_ttl):
                self._read_languages()
        finally:
            self._languages_reading.release()
        return self._language_in_memory(caller_number)

    def _read_languages(self) -> None:
        """The whole table at first and once per LANGUAGES_WHOLE_EVERY; else only the rows
        changed since the newest this process has seen, merged into memory."""
        started = time.monotonic()
        whole = (
            self._languages is None
            or self._languages_newest is None
            or started - self._languages_whole_at >= LANGUAGES_WHOLE_EVERY
        )
        newest = self._languages_newest
        with self._db.session() as session:
            if whole:
                # The newest change first: one changed during the read is read again next time.
                newest = session.scalar(select(func.max(CallerLanguage.updated_at)))
                table = session.execute(
                    select(CallerLanguage.caller_number, CallerLanguage.language)
                )
                languages = {number: language for number, language in table}
            else:
                assert newest is not None and self._languages is not None
                changed = select(
                    CallerLanguage.caller_number, CallerLanguage.language, CallerLanguage.updated_at
                ).where(CallerLanguage.updated_at >= newest - LANGUAGES_OVERLAP)
                # Merged into the dict callers read (a dict's set is atomic under the GIL).
                languages = self._languages[1]
                for number, language, updated_at in session.execute(changed):
                    languages[number] = language
                    newest = max(newest, as_utc(updated_at))
        for number, (chosen_at, language) in list(self._chosen_languages.items()):
            if chosen_at >= started:
                languages[number] = language  # committed after this read began
            else:
                self._chosen_languages.pop(number, None)  # this read saw it
        self._languages_newest = as_utc(newest) if newest is not None else None
        if whole:
            self._languages_whole_at = started
        self._languages = (time.monotonic(), languages)

    def language_if_fresh(self, caller_number: str) -> tuple[bool, str | None]:
        """(True, language or None) from memory; (False, None) when it must be read first:
        then this caller is the one to read it (`caller_language`); until that read is done,
        the others get what is in memory (read at most a TTL and one read ago)."""
        if self._languages is None:
            return False, None
        if self._stale(self._languages[0], self._languages_ttl) and self._languages_reading.take():
            return False, None
        return True, self._language_in_memory(caller_number)

    def _language_in_memory(self, caller_number: str) -> str | None:
        if self._languages is None:
            return None
        if not self._languages[1]:
            return None  # nobody has chosen a language yet
        number = normalize_number(caller_number, self._country)
        if number == ANONYMOUS:
            return None
        return self._languages[1].get(number)

    def remember_language(self, caller_number: str, language: str) -> None:
        number = normalize_number(caller_number, self._country)
        if number == ANONYMOUS:
            return
        with self._db.session() as session:
            row = session.get(CallerLanguage, number)
            if row is None:
                session.add(CallerLanguage(caller_number=number, language=language))
            else:
                row.language, row.updated_at = language, utcnow()
        self._chosen_languages[number] = (time.monotonic(), language)
        if self._languages is not None:
            self._languages[1][number] = language

    def active_incidents(self, area: str | None) -> list[ActiveIncident]:
        return self._incidents_for(self._incidents.read(), area)

    def incidents_if_fresh(self, area: str | None) -> list[ActiveIncident] | None:
        """Incidents now active for the area, newest first, from memory; None: read first
        (`active_incidents`), and this caller is the one to; until that read is done, the
        others get what is in memory (read at most a TTL and one read ago)."""
        held = self._incidents.if_fresh()
        return None if held is None else self._incidents_for(held, area)

    def _read_incidents(self) -> list[Incident]:
        with self._db.session() as session:
            return list(
                session.scalars(
                    select(Incident).where(Incident.ended_at.is_(None)).order_by(Incident.id.desc())
                )
            )

    @staticmethod
    def _incidents_for(rows: list[Incident], area: str | None) -> list[ActiveIncident]:
        now = utcnow()
        return [
            ActiveIncident(row.id, row.category, row.expected_end, tuple(row.areas or ()))
            for row in rows
            if (area == ANY_AREA or row.matches(area))
            and (row.expected_end is None or as_utc(row.expected_end) > now)
        ]

    @staticmethod
    def _stale(loaded_at: float, ttl: float) -> bool:
        return time.monotonic() - loaded_at >= ttl

    def open_callback(
        self, linkedid: str, queue: str | None, reason: str, voicemail: str | None = None
    ) -> bool:
        """Put the caller on the callback list (one open entry per number); False if anonymous.

        A voicemail file (relative to recordings/) goes on the entry's history, so whoever
        calls back can listen to it first.
        """
        with self._db.session() as session:
            call = session.scalars(select(Call).where(Call.linkedid == linkedid)).first()
            if call is None:
                return False
            entry = callback_intake.open_or_attach(
                session,
                caller_number=call.caller_number,
                reason=reason,
                queue=queue,
                call_id=call.id,
                now=utcnow(),
            )
            if entry is not None and voicemail:
                session.add(
                    CallbackAttempt(
                        callback_id=entry.id,
                        action="voicemail",
                        call_id=call.id,
                        data={"file": voicemail},
                    )
                )
                entry.note = entry.note or f"voicemail: {voicemail}"
            return entry is not None


# Tenants, their numbers and own queues are read again this often (`hotline numbers add`,
# `hotline tenants queues` take effect within it); a call normally reads nothing.
TENANTS_TTL = 5.0


@dataclass(frozen=True)
class _TenantFacts:
    loaded_at: float
    owners: dict[str, int | None]  # registered number -> tenant id (None: the centre's)
    slugs: dict[int, str]
    own_services: dict[int, frozenset[str]]
    codes_exist: bool


class TenantDirectory:
    """Which company a call is for (call_router/tenant_routing.py decides), from memory but
    for the one read a centre-number call needs: the caller's known building."""

    def __init__(self, db: Database, country: str, *, ttl: float = TENANTS_TTL) -> None:
        self._db = db
        self._country = country
        self._ttl = ttl
        self._facts: _TenantFacts | None = None

    def _load(self) -> _TenantFacts:
        with self._db.session() as session:
            codes = session.scalar(select(Building.id).where(Building.code.is_not(None)).limit(1))
            facts = _TenantFacts(
                loaded_at=time.monotonic(),
                owners=tenants.number_owners(session),
                slugs={i: slug for i, slug in session.execute(select(Tenant.id, Tenant.slug))},
                own_services=tenants.own_services(session),
                codes_exist=codes is not None,
            )
        self._facts = facts
        return facts

    def _fresh(self) -> _TenantFacts | None:
        facts = self._facts
        if facts is None or time.monotonic() - facts.loaded_at >= self._ttl:
            return None
        return facts

    def _current(self) -> _TenantFacts:
        """Fresh facts, read again when stale; the last ones if the database fails."""
        facts = self._fresh()
        if facts is not None:
            return facts
        try:
            return self._load()
        except Exception:
            if self._facts is not None:
                return self._facts
            raise

    @staticmethod
    def _owner(facts: _TenantFacts, dialled: str | None) -> tuple[NumberOwner, int | None]:
        try:
            number = tenants.clean_number(dialled or "")
        except tenants.TenantError:
            return "unregistered", None
        if number not in facts.owners:
            return "unregistered", None
        tenant = facts.owners[number]
        return ("tenant", tenant) if tenant is not None else ("centre", None)

    def decide_if_fresh(self, dialled: str | None) -> TenantDecision | None:
        """From memory, no I/O: the decision, or None when it needs a read (stale facts, or
        a centre number whose caller must be looked up)."""
        facts = self._fresh()
        if facts is None:
            return None
        owner, tenant = self._owner(facts, dialled)
        if owner == "centre":
            return None
        return decide(owner, tenant, None, codes_exist=facts.codes_exist)

    def decide(self, dialled: str | None, caller_number: str | None) -> TenantDecision:
        """The decision before the menu. Synchronous (a worker thread): may read."""
        facts = self._current()
        owner, tenant = self._owner(facts, dialled)
        known = None
        if owner == "centre":
            number = normalize_number(caller_number, self._country)
            if number != ANONYMOUS:
                with self._db.session() as session:
                    known = buildings.known_building(session, number, self._country)
        return decide(owner, tenant, known, codes_exist=facts.codes_exist)

    def building_by_code(self, code: str) -> tuple[int, int] | None:
        with self._db.session() as session:
            return buildings.building_by_code(session, code)

    def spoken_buildings(self) -> list[SpokenBuilding]:
        with self._db.session() as session:
            return buildings.coded_buildings(session)

    def slug(self, tenant_id: int | None) -> str:
        facts = self._facts
        if tenant_id is None or facts is None:
            return ""
        return facts.slugs.get(tenant_id, "")

    def queue_for(self, tenant_id: int | None, queue: str) -> str:
        facts = self._facts
        return queue_for(tenant_id, queue, facts.own_services if facts is not None else {})
