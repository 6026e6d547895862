"""What a flow run depends on besides the channel (FlowRuntime), and the results and lookup
interfaces the engine talks to: the vocabulary shared by the engine, the handlers and the
services that fill it in (agi_scripts/flows/services.py, requests.py, caller_areas.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from agi_scripts.database_guard import DatabaseGuard
from call_router.flows.conditions import BusinessCalendar
from call_router.flows.schema import ActionArgs, Flow
from call_router.flows.tenant_menus import TenantMenu
from call_router.spoken_addresses import SpokenBuilding

if TYPE_CHECKING:
    from agi_scripts.address_speech import AddressHeard
    from agi_scripts.agi import AgiChannel


@dataclass(frozen=True)
class SpeechResult:
    """What the recogniser made of the caller's words."""

    intent: str | None  # one of the offered intents, or None when not understood
    text: str = ""
    confidence: float | None = None
    # A key the caller pressed instead of speaking (the keypad menu then takes it).
    key: str = ""
    # A doubtful guess (intent None): offered for confirmation where the ask node confirms.
    candidate: str | None = None
    # The next guess, offered once more when the caller refuses `candidate`.
    runner_up: str | None = None


@dataclass(frozen=True)
class ActiveIncident:
    id: int
    category: str
    expected_end: datetime | None = None
    # The areas it targets (call_router/areas_match.py); empty: the whole city.
    areas: tuple[str, ...] = ()


# Asked of `incidents_if_fresh`/`active_incidents` for every active incident, whatever its
# areas: the `area` node asks the caller where they are only when one targets an area.
ANY_AREA = "*"


@dataclass(frozen=True)
class OpenRequest:
    """A caller's open service request, as the menu reads it out."""

    number: str
    category: str
    state: str
    queue: str  # the flow queue a caller asking about it goes to
    tenant_id: int | None = None


class RequestLookups(Protocol):
    """The caller's open service requests (agi_scripts/flows/requests.py CallerRequests)."""

    def open_if_fresh(self, caller_number: str) -> list[OpenRequest] | None:
        """From memory, no I/O: the caller's open requests, or None when they must be read."""
        ...

    def open_requests(self, caller_number: str) -> list[OpenRequest]:
        """Synchronous (a worker thread): reads them when stale."""
        ...

    def link_call(self, linkedid: str, number: str) -> bool:
        """Note on the request that this call asked about it. Synchronous."""
        ...


@dataclass(frozen=True)
class ActionCall:
    """What an action service knows of the call besides its variables."""

    caller_number: str | None
    linkedid: str | None
    now: datetime


@dataclass(frozen=True)
class ActionResult:
    outcome: str
    variables: dict[str, str] = field(default_factory=dict)


class FlowActions(Protocol):
    """Services `action` nodes call (agi_scripts/flows/actions.py). Synchronous: a thread."""

    def run(
        self, service: str, args: ActionArgs, variables: dict[str, str], call: ActionCall
    ) -> ActionResult: ...


class SpeechInput(Protocol):
    """The speech recogniser, injected (agi_scripts/listen.py provides one).

    Returns None when speech is unavailable for this call (no recogniser, no audio): the
    engine then asks by keypad. It should stop within `timeout` seconds.
    """

    async def __call__(
        self,
        agi: AgiChannel,
        *,
        prompt: str,
        language: str,
        intents: Sequence[str],
        timeout: float,
    ) -> SpeechResult | None: ...


class AddressSpeech(Protocol):
    """The caller's building in words (agi_scripts/address_speech.py AddressListener).

    None: no speech for this call (no model for the language, no audio): the keypad asks."""

    async def __call__(
        self,
        agi: AgiChannel,
        *,
        prompt: str,
        language: str,
        buildings: list[SpokenBuilding],
        timeout: float,
    ) -> AddressHeard | None: ...


class FlowLookups(Protocol):
    """Facts from the database for conditions. Synchronous: run in a worker thread."""

    def recent_calls(self, caller_number: str, since: datetime, exclude_linkedid: str) -> int: ...

    def active_incidents(self, area: str | None) -> list[ActiveIncident]:
        """Incidents now active for the area, newest first."""
        ...

    def open_callback(
        self, linkedid: str, queue: str | None, reason: str, voicemail: str | None = None
    ) -> bool: ...

    def caller_language(self, caller_number: str) -> str | None: ...

    def language_if_fresh(self, caller_number: str) -> tuple[bool, str | None]:
        """From memory, no I/O: (True, language or None), or (False, None) to read it."""
        ...

    def incidents_if_fresh(self, area: str | None) -> list[ActiveIncident] | None:
        """From memory, no I/O: the incidents, or None when they must be read."""
        ...

    def remember_language(self, caller_number: str, language: str) -> None: ...


class AreaLookups(Protocol):
    """Where a caller is (agi_scripts/flows/caller_areas.py CallerAreas)."""

    def area_if_fresh(self, caller_number: str) -> tuple[bool, str | None]:
        """From memory, no I/O: (True, area or None), or (False, None) to read first."""
        ...

    def caller_area(self, caller_number: str) -> str | None:
        """The caller's area path, reading the database when stale. Synchronous: a thread."""
        ...

    def area_by_code(self, code: str) -> str | None:
        """The area a keypad code names. From memory (read with the caller's area)."""
        ...

    def is_area(self, path: str) -> bool:
        """A node of the hierarchy (not a free label). From memory, like `area_by_code`."""
        ...


class TenantLookups(Protocol):
    """The company a call is for (agi_scripts/flows/services.py TenantDirectory)."""

    def building_by_code(self, code: str) -> tuple[int, int] | None:
        """(building id, tenant id) of a house code. Synchronous: a worker thread."""
        ...

    def spoken_buildings(self) -> list[SpokenBuilding]:
        """The buildings a caller may name (those with a house code). A worker thread."""
        ...

    def slug(self, tenant_id: int | None) -> str:
        """The tenant's slug, '' for the centre. From memory, no I/O."""
        ...

    def queue_for(self, tenant_id: int | None, queue: str) -> str:
        """The tenant's own queue for a flow's queue, else that queue. From memory."""
        ...


@dataclass(frozen=True)
class FlowRuntime:
    """Everything besides the channel that a flow run depends on; handed in, never global."""

    language: str
    recordings_base: str  # the recordings folder as Asterisk sees it
    calendar: BusinessCalendar
    clock: Callable[[], datetime]
    menu_timeout: int
    menu_retries: int
    speech: SpeechInput | None = None
    lookups: FlowLookups | None = None
    actions: FlowActions | None = None
    # Other flows by name, for `flow` nodes (the registry's get).
    flows: Callable[[str], Flow | None] | None = None
    # `transfer` nodes: the numbers they may name, and the trunk that reaches them.
    numbers: dict[str, str] = field(default_factory=dict)
    trunk: str = "pstn"
    # IANA zone in which times (an incident's expected end) are spoken.
    timezone: str | None = None
    # Which company a call is for; None: every call is the centre's (no tenants).
    tenants: TenantLookups | None = None
    # The caller's open service requests (`requests` nodes); None: none are read out.
    requests: RequestLookups | None = None
    # A tenant's own menus by slug (the registry's `tenant`: from memory, loaded per reload).
    tenant_menus: Callable[[str], TenantMenu | None] | None = None
    # Where callers are (`area` nodes); None: nobody is placed, incidents go city-wide only.
    areas: AreaLookups | None = None
    # The caller's building said in words (`company` nodes with a `speech_prompt`).
    address_speech: AddressSpeech | None = None
    # Every lookup and action goes through it: a database that is away is not asked.
    database: DatabaseGuard = field(default_factory=DatabaseGuard)
