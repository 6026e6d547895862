"""The JSON shapes of `/api/requests` and `/api/crews`: what comes in (checked here: lengths,
ranges, known states) and what goes out. Text from residents is returned as data."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from call_router import request_assignment
from call_router import request_lifecycle as life
from call_router import service_requests as store
from dashboard.routes.schemas import MAX_ROW_ID

NUMBER = r"^[0-9]{4,12}$"
# Query filters: a known state, a category code's shape (call_router/service_categories.yaml),
# a caller number in any spelling but no control characters (PostgreSQL refuses NUL in text).
State = Literal[life.STATES]  # type: ignore[valid-type]
CATEGORY_CODE = r"^[a-z0-9_-]{1,32}$"
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"


class CrewOut(BaseModel):
    id: int
    name: str
    categories: list[str]
    districts: list[str]
    phone: str | None
    active: bool


class HistoryOut(BaseModel):
    at: str
    action: str
    actor: str
    from_state: str | None
    to_state: str | None
    note: str | None


class RequestOut(BaseModel):
    number: str
    category: str
    state: str
    status: str
    priority: str
    street: str
    house: str
    flat: str | None
    district: str | None
    lat: float | None
    long: float | None
    description: str
    caller_number: str | None
    caller_name: str | None
    source: str
    crew: CrewOut | None
    reports: int
    status_notes: str | None
    created_at: str
    updated_at: str
    sla_deadline: str
    overdue: bool
    # An overdue request goes to the dispatchers, later to the supervisors (null: not overdue).
    escalated_to: str | None
    closed_at: str | None
    version: int
    # The "is it fixed?" call: tries so far, the resident's answer (1 solved, 2 not solved).
    feedback_attempts: int = 0
    feedback_score: int | None = None


class RequestDetailOut(RequestOut):
    calls: list[int]
    history: list[HistoryOut]


class CreatedOut(RequestOut):
    # True: an open request for the same address and category took this report.
    attached: bool


class SuggestionOut(BaseModel):
    call_id: int
    caller_number: str | None
    caller_name: str | None
    # From the call's recognised intent (service_categories.yaml `intents`); null: none.
    category: str | None
    last_address: dict[str, str | None] | None
    open_requests: list[RequestOut]


class RequestIn(BaseModel):
    category: str = Field(max_length=32)
    street: str = Field(min_length=1, max_length=store.MAX_STREET)
    house: str = Field(min_length=1, max_length=store.MAX_HOUSE)
    flat: str | None = Field(default=None, max_length=store.MAX_FLAT)
    district: str | None = Field(default=None, max_length=store.MAX_DISTRICT)
    lat: float | None = Field(default=None, ge=-90, le=90)
    long: float | None = Field(default=None, ge=-180, le=180)
    description: str = Field(default="", max_length=store.MAX_DESCRIPTION)
    caller_number: str | None = Field(default=None, max_length=64)
    caller_name: str | None = Field(default=None, max_length=store.MAX_NAME)
    priority: Literal["normal", "high", "emergency"] = "normal"
    # The call it came from (its tenant becomes the request's).
    call_id: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)


class StatusIn(BaseModel):
    state: Literal[
        "new",
        "assigned",
        "on_the_way",
        "in_progress",
        "waiting_for_parts",
        "done",
        "cannot_fix",
        "duplicate",
        "not_our_responsibility",
        "closed",
    ]
    note: str | None = Field(default=None, max_length=store.MAX_NOTE)
    # The version you read: a change made meanwhile by someone else is then a 409.
    version: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)
    duplicate_of: str | None = Field(default=None, pattern=NUMBER)


class AssignIn(BaseModel):
    crew_id: int = Field(ge=1, le=MAX_ROW_ID)
    note: str | None = Field(default=None, max_length=store.MAX_NOTE)
    version: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)
    force: bool = False


class PickIn(BaseModel):
    number: str = Field(pattern=NUMBER)
    # The version you read: if someone changed the request meanwhile, it is not assigned.
    version: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)


class BulkAssignIn(BaseModel):
    requests: list[PickIn] = Field(min_length=1, max_length=request_assignment.MAX_BULK)
    crew_id: int = Field(ge=1, le=MAX_ROW_ID)
    note: str | None = Field(default=None, max_length=store.MAX_NOTE)
    force: bool = False


class RefusedOut(BaseModel):
    number: str
    # conflict (changed meanwhile), not_found, crew_mismatch, transition …
    code: str
    message: str


class BulkAssignOut(BaseModel):
    assigned: list[RequestOut]
    refused: list[RefusedOut]


class LinkIn(BaseModel):
    call_id: int = Field(ge=1, le=MAX_ROW_ID)


class CrewIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    categories: list[Annotated[str, Field(max_length=32)]] = Field(default=[], max_length=50)
    districts: list[Annotated[str, Field(max_length=64)]] = Field(default=[], max_length=200)
    phone: str | None = Field(default=None, max_length=32)
