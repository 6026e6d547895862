"""Which company a call is for, and which queue serves it there. Pure: no I/O.

The decision, in order (ARCHITECTURE.md "Tenants"):

1. the dialled number is a tenant's own → that tenant (`number`);
2. the number is one the centre registered as its own (`hotline numbers add N --centre`):
   the caller's known address - a registered phone (`phone`), else the newer of the building
   of their latest call that had one (`earlier_call`) and their latest service request of a
   tenant (`request`);
3. still unknown, and some building has a house code: the menu asks for it (`ask`); a code
   read back and confirmed gives its building's tenant (`keypad`), anything else goes to a
   coordinator with the call left the centre's (`unknown`); where the caller's language has a
   speech model the street and house may be said instead (`speech`, read back and confirmed
   the same way: call_router/spoken_addresses.py);
4. otherwise the centre's (`centre`): an unregistered number - a single-company
   installation's own hotline number - keeps the menu exactly as it was.

A tenant's *own queues* (`hotline tenants queues SLUG plumbing,heating`) are named
`t<tenant id>_<service>` (`t3_plumbing`): short enough for every queue column, and never a
centre queue's name (those have no `_`). A tenant without its own queue for a service is
served by the centre's queue of that service; the coordinator and duty queues are always the
centre's (its staff serve every tenant).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

# The centre's queues a tenant may have its own copy of (call_router.settings.QUEUES minus the
# centre's own coordinator and duty teams).
SERVICES: Final = ("plumbing", "electricity", "heating", "lift", "meters")
CENTRE_QUEUES: Final = ("coordinator", "duty")
TENANT_QUEUE_RE: Final = re.compile(r"^t([1-9][0-9]{0,8})_(" + "|".join(SERVICES) + r")$")
# A house code as keyed: digits only, bounded (attacker-controlled DTMF).
HOUSE_CODE_RE: Final = re.compile(r"^[0-9]{1,8}$")

Source = Literal[
    "number", "phone", "earlier_call", "request", "keypad", "speech", "unknown", "centre", "ask"
]
SOURCES: Final = (
    "number",
    "phone",
    "earlier_call",
    "request",
    "keypad",
    "speech",
    "unknown",
    "centre",
)

# What the store says about the dialled number.
NumberOwner = Literal["tenant", "centre", "unregistered"]


@dataclass(frozen=True)
class KnownBuilding:
    """A building the caller is known at, and how we know."""

    building_id: int | None  # None: a request of the tenant at an address it has no building for
    tenant_id: int
    source: Literal["phone", "earlier_call", "request"]


@dataclass(frozen=True)
class TenantDecision:
    """The company a call is for. `tenant_id` None: the centre's own (or not known yet)."""

    source: Source
    tenant_id: int | None = None
    building_id: int | None = None

    @property
    def must_ask(self) -> bool:
        return self.source == "ask"


CENTRE_DECISION: Final = TenantDecision("centre")
UNKNOWN_DECISION: Final = TenantDecision("unknown")


def decide(
    owner: NumberOwner,
    number_tenant: int | None,
    known: KnownBuilding | None,
    *,
    codes_exist: bool,
) -> TenantDecision:
    """The decision before the menu (steps 1-4 above); `ask` leaves it to the caller."""
    if owner == "tenant" and number_tenant is not None:
        return TenantDecision("number", number_tenant)
    if owner != "centre":
        return CENTRE_DECISION
    if known is not None:
        return TenantDecision(known.source, known.tenant_id, known.building_id)
    return TenantDecision("ask") if codes_exist else UNKNOWN_DECISION


def clean_house_code(digits: str) -> str | None:
    """A keyed house code, or None when it cannot be one (not 1-8 digits)."""
    return digits if HOUSE_CODE_RE.fullmatch(digits) else None


def tenant_queue_name(tenant_id: int, service: str) -> str:
    if service not in SERVICES or tenant_id < 1:
        raise ValueError(f"no tenant queue for {service!r}")
    return f"t{tenant_id}_{service}"


def parse_tenant_queue(queue: str) -> tuple[int, str] | None:
    """(tenant id, service) of a tenant's own queue name; None for any other name."""
    match = TENANT_QUEUE_RE.fullmatch(queue)
    return (int(match.group(1)), match.group(2)) if match else None


def is_known_queue(queue: str, centre_queues: tuple[str, ...]) -> bool:
    """One of ours: a centre queue or (by its shape) a tenant's own."""
    return queue in centre_queues or parse_tenant_queue(queue) is not None


def queue_for(tenant_id: int | None, queue: str, own_services: Mapping[int, frozenset[str]]) -> str:
    """The Asterisk queue for a flow's `queue` on a call of `tenant_id`: the tenant's own
    queue of that service when it has one; else the centre's queue as the flow named it."""
    if tenant_id is None or queue not in SERVICES:
        return queue
    if queue in own_services.get(tenant_id, frozenset()):
        return tenant_queue_name(tenant_id, queue)
    return queue
