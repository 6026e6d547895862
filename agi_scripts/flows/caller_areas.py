"""Where callers are, for the flow's `area` node (incidents by area, call_router/areas.py).

The menu's hot path reads nothing per call, as for open requests (agi_scripts/flows/
requests.py): the area hierarchy and every placeable caller (by their newest open service
request's address, else their registered phone's building) are held in memory and read again
once per `ttl` seconds, by one caller (the others meanwhile get what is in memory). The
engine asks at all only while an incident targets an area; a caller costs a dict lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from agi_scripts.flows.snapshots import Refreshed
from call_router import areas
from call_router.db import Database
from call_router.numbers import ANONYMOUS, normalize_number
from call_router.request_models import ServiceRequest
from call_router.request_reads import open_requests_with_callers
from call_router.tenant_models import Building, ResidentPhone

# Numbers normalised once and remembered across reads (phonenumbers' parse was 80 % of a
# read: every read sees mostly the same numbers); forgotten past this many.
MAX_REMEMBERED_NUMBERS = 500_000
# Read again this often by default (the service builds it with HOTLINE_REQUEST_STATUS_TTL: a
# new request's address places its caller as soon as its status reaches the menu).
AREAS_TTL = 5.0


@dataclass(frozen=True)
class _Snapshot:
    index: areas.AreaIndex
    by_caller: dict[str, str]  # normalised number -> area path


class CallerAreas:
    """The callers' areas and the keypad codes from memory (see the module's docstring)."""

    def __init__(self, db: Database, country: str, *, ttl: float = AREAS_TTL) -> None:
        self._db = db
        self._country = country
        self._areas: Refreshed[_Snapshot] = Refreshed(self._load, ttl)
        self._numbers: dict[str, str | None] = {}

    def _key(self, caller_number: str | None) -> str | None:
        raw = caller_number or ""
        if raw in self._numbers:
            return self._numbers[raw]
        number = normalize_number(caller_number, self._country)
        key = None if number == ANONYMOUS else number
        if len(self._numbers) >= MAX_REMEMBERED_NUMBERS:
            self._numbers.clear()
        self._numbers[raw] = key
        return key

    def _load(self) -> _Snapshot:
        by_caller: dict[str, str] = {}
        places: dict[tuple[str, str, str | None], str | None] = {}  # one address, placed once
        with self._db.session() as session:
            index = areas.load_index(session)
            if index.paths:  # no hierarchy imported: nobody can be placed
                requests = session.execute(
                    open_requests_with_callers(
                        ServiceRequest.caller_number,
                        ServiceRequest.street,
                        ServiceRequest.house,
                        ServiceRequest.district,
                    )
                )
                phones = session.execute(
                    select(ResidentPhone.phone, Building.street, Building.house).join(
                        Building, Building.id == ResidentPhone.building_id
                    )
                )
                # The newest open request's address first: it is where the problem is now.
                for caller, street, house, district in requests:
                    self._place(by_caller, places, index, caller, (street, house, district))
                for phone, street, house in phones:
                    self._place(by_caller, places, index, phone, (street, house, None))
        return _Snapshot(index, by_caller)

    def _place(
        self,
        by_caller: dict[str, str],
        places: dict[tuple[str, str, str | None], str | None],
        index: areas.AreaIndex,
        caller: str | None,
        address: tuple[str, str, str | None],
    ) -> None:
        key = self._key(caller)
        if key is None or key in by_caller:
            return
        if address not in places:
            street, house, district = address
            places[address] = index.place(street or "", house or "", district)
        path = places[address]
        if path is not None:
            by_caller[key] = path

    def caller_area(self, caller_number: str) -> str | None:
        snapshot = self._areas.read()
        key = self._key(caller_number)
        return snapshot.by_caller.get(key) if key else None

    def area_if_fresh(self, caller_number: str) -> tuple[bool, str | None]:
        snapshot = self._areas.if_fresh()
        if snapshot is None:
            return False, None
        key = self._key(caller_number)
        return True, snapshot.by_caller.get(key) if key else None

    def area_by_code(self, code: str) -> str | None:
        snapshot = self._areas.current
        return snapshot.index.codes.get(code) if snapshot is not None else None

    def is_area(self, path: str) -> bool:
        snapshot = self._areas.current
        return snapshot is not None and path in snapshot.index.paths
