"""The life of a service request, as plain values: states, the one table of allowed
transitions, what is open, the Open311 view of a state, the SLA deadline and address keys.

Pure: no I/O. The store that applies it is call_router/service_requests.py.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import yaml

NEW: Final = "new"
ASSIGNED: Final = "assigned"
ON_THE_WAY: Final = "on_the_way"
IN_PROGRESS: Final = "in_progress"
WAITING_FOR_PARTS: Final = "waiting_for_parts"
DONE: Final = "done"
CANNOT_FIX: Final = "cannot_fix"
DUPLICATE: Final = "duplicate"
NOT_OURS: Final = "not_our_responsibility"
CLOSED: Final = "closed"

STATES: Final = (
    NEW,
    ASSIGNED,
    ON_THE_WAY,
    IN_PROGRESS,
    WAITING_FOR_PARTS,
    DONE,
    CANNOT_FIX,
    DUPLICATE,
    NOT_OURS,
    CLOSED,
)
# Someone still has to act: counts for duplicates, overdue lists and the caller's status.
OPEN_STATES: Final = frozenset({NEW, ASSIGNED, ON_THE_WAY, IN_PROGRESS, WAITING_FOR_PARTS})

# THE table of allowed changes (from -> to). Every status change goes through `check_move`.
# A finished request may be reopened (back to `new`): the resident says it is not fixed.
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    NEW: frozenset({ASSIGNED, DUPLICATE, NOT_OURS, CANNOT_FIX, CLOSED}),
    ASSIGNED: frozenset({NEW, ON_THE_WAY, IN_PROGRESS, CANNOT_FIX, DUPLICATE, NOT_OURS}),
    ON_THE_WAY: frozenset({ASSIGNED, IN_PROGRESS, CANNOT_FIX}),
    IN_PROGRESS: frozenset({WAITING_FOR_PARTS, DONE, CANNOT_FIX}),
    WAITING_FOR_PARTS: frozenset({IN_PROGRESS, DONE, CANNOT_FIX}),
    DONE: frozenset({CLOSED, NEW}),
    CANNOT_FIX: frozenset({CLOSED, NEW}),
    DUPLICATE: frozenset({CLOSED, NEW}),
    NOT_OURS: frozenset({CLOSED, NEW}),
    CLOSED: frozenset({NEW}),
}

# Open311 knows only open and closed; status_notes carries the rest in words.
STATUS_NOTES: Final = {
    NEW: "Received, waiting for a crew.",
    ASSIGNED: "A crew is assigned.",
    ON_THE_WAY: "The crew is on the way.",
    IN_PROGRESS: "The crew is working on it.",
    WAITING_FOR_PARTS: "Waiting for parts.",
    DONE: "Done.",
    CANNOT_FIX: "Could not be fixed.",
    DUPLICATE: "Already reported: see the original request.",
    NOT_OURS: "Not our responsibility.",
    CLOSED: "Closed.",
}

PRIORITIES: Final = ("normal", "high", "emergency")
EMERGENCY: Final = 2

CATEGORIES_FILE: Final = Path(__file__).resolve().parent / "service_categories.yaml"
CODE_RE = re.compile(r"^[a-z0-9_-]{1,32}$")


class LifecycleError(ValueError):
    """A change the rules refuse; the message is safe to show. `code` is stable."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def is_open(state: str) -> bool:
    return state in OPEN_STATES


def open311_status(state: str) -> str:
    return "open" if is_open(state) else "closed"


def check_move(current: str, target: str) -> None:
    """Refuse a change the table does not allow (or a state that does not exist)."""
    if target not in TRANSITIONS:
        raise LifecycleError(f"unknown state {target!r}; one of: {', '.join(STATES)}", "state")
    if target not in TRANSITIONS.get(current, frozenset()):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, frozenset()))) or "none"
        raise LifecycleError(
            f"a request that is {current} cannot become {target} (allowed: {allowed})",
            "transition",
        )


def priority_value(name: str | int) -> int:
    if isinstance(name, int) and 0 <= name < len(PRIORITIES):
        return name
    if isinstance(name, str) and name in PRIORITIES:
        return PRIORITIES.index(name)
    raise LifecycleError(f"priority: one of {', '.join(PRIORITIES)}", "priority")


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    sla_hours: float
    emergency_sla_hours: float | None = None
    group: str | None = None
    keywords: str | None = None
    agency: str | None = None
    intents: tuple[str, ...] = ()
    # The queue a resident asking about such a request is put through to (phone menu).
    queue: str | None = None

    def deadline(self, created_at: datetime, priority: int) -> datetime:
        """The SLA deadline: the category's hours (the emergency hours for an emergency)."""
        hours = self.sla_hours
        if priority >= EMERGENCY and self.emergency_sla_hours is not None:
            hours = min(hours, self.emergency_sla_hours)
        return created_at + timedelta(hours=hours)


def parse_categories(data: object) -> dict[str, Category]:
    """Categories from the YAML's data; a bad file is refused with the entry at fault."""
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
        raise LifecycleError("categories file: a top-level `categories:` list", "categories")
    found: dict[str, Category] = {}
    for index, item in enumerate(data["categories"]):
        where = f"categories[{index}]"
        if not isinstance(item, dict):
            raise LifecycleError(f"{where}: a mapping", "categories")
        code, name, hours = item.get("code"), item.get("name"), item.get("sla_hours")
        if not isinstance(code, str) or not CODE_RE.match(code):
            raise LifecycleError(f"{where}.code: 1-32 of a-z 0-9 _ -", "categories")
        if code in found:
            raise LifecycleError(f"{where}.code: {code!r} twice", "categories")
        if not isinstance(name, str) or not name.strip():
            raise LifecycleError(f"{where}.name: required", "categories")
        emergency = item.get("emergency_sla_hours")
        for label, value in (("sla_hours", hours), ("emergency_sla_hours", emergency)):
            if value is None and label == "emergency_sla_hours":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise LifecycleError(f"{where}.{label}: a positive number of hours", "categories")
        intents = item.get("intents") or []
        if not isinstance(intents, list) or not all(isinstance(i, str) for i in intents):
            raise LifecycleError(f"{where}.intents: a list of intent names", "categories")
        queue = item.get("queue")
        if queue is not None and (not isinstance(queue, str) or not CODE_RE.match(queue)):
            raise LifecycleError(f"{where}.queue: a queue name", "categories")
        assert isinstance(hours, int | float)
        found[code] = Category(
            code=code,
            name=name.strip(),
            sla_hours=float(hours),
            emergency_sla_hours=float(emergency) if emergency is not None else None,
            group=item.get("group"),
            keywords=item.get("keywords"),
            agency=item.get("agency"),
            intents=tuple(intents),
            queue=queue,
        )
    if not found:
        raise LifecycleError("categories file: no categories", "categories")
    return found


def load_categories(path: Path = CATEGORIES_FILE) -> dict[str, Category]:
    return parse_categories(yaml.safe_load(path.read_text(encoding="utf-8")))


def category_for_intent(categories: dict[str, Category], intent: str | None) -> str | None:
    """The category a recognised menu intent suggests (the operator may change it)."""
    if not intent:
        return None
    for category in categories.values():
        if intent in category.intents:
            return category.code
    return None


def _norm(text: str | None) -> str:
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return re.sub(r"[\W_]+", " ", folded).strip()


def address_key(street: str, house: str, flat: str | None) -> str:
    """One spelling per address, for duplicates: case, punctuation and spacing do not count
    ("Lenina st. 5, flat 12" and "lenina st 5 / 12" are one place)."""
    return "|".join((_norm(street), _norm(house), _norm(flat)))


def open_key(tenant_id: int | None, category: str, key: str) -> str:
    return f"{tenant_id or 0}|{category}|{key}"[:320]


def overdue(state: str, deadline: datetime, now: datetime) -> bool:
    return is_open(state) and now > deadline


# Escalation of a request nobody finished in time (the seeds' "ignored request"): first the
# dispatchers see it as overdue; if it is still open after half its SLA span again (at least an
# hour), it goes up to the supervisors.
DISPATCHER_LEVEL: Final = "dispatcher"
SUPERVISOR_LEVEL: Final = "supervisor"
MIN_SUPERVISOR_DELAY: Final = timedelta(hours=1)


def escalation(state: str, created_at: datetime, deadline: datetime, now: datetime) -> str | None:
    """Who must look at an overdue request now: None (not overdue), dispatcher, supervisor."""
    if not overdue(state, deadline, now):
        return None
    delay = max((deadline - created_at) / 2, MIN_SUPERVISOR_DELAY)
    return SUPERVISOR_LEVEL if now > deadline + delay else DISPATCHER_LEVEL
