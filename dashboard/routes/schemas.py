"""JSON shapes of the API. A contract for integrators: add fields, never rename or drop them.

Datetimes are UTC, ISO 8601, always with microseconds and a `Z` suffix
(`2026-11-23T19:55:00.000000Z`): fixed width, so comparing two as strings orders them in time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import Path as PathParam
from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
)

from call_router import date_range
from call_router.models import MAX_ROW_ID


def iso_utc(dt: datetime) -> str:
    if dt.tzinfo is None:
        raise ValueError("naive datetime: the call log only holds UTC-aware ones")
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


Timestamp = Annotated[datetime, PlainSerializer(iso_utc, return_type=str, when_used="json")]


def _usable_time(at: datetime) -> datetime:
    date_range.checked(at, "a time")
    return at


# A time given to the API: within call_router/date_range.py (else a 422, not an overflow).
BoundedTime = Annotated[datetime, AfterValidator(_usable_time)]
# The same, with its UTC offset (a naive time would be read in an unknown zone).
BoundedAwareTime = Annotated[AwareDatetime, AfterValidator(_usable_time)]

# A row id in a path: past call_router.models.MAX_ROW_ID it names no row (422 here;
# PostgreSQL would refuse to compare it and the request would end in a 500).
RowId = Annotated[int, PathParam(ge=1, le=MAX_ROW_ID)]


class _FromRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CallOut(_FromRow):
    id: int
    caller_number: str
    caller_name: str | None
    started_at: Timestamp
    answered_at: Timestamp | None
    ended_at: Timestamp | None
    menu_choice: str | None
    intent: str | None
    queue: str | None
    outcome: str | None
    operator: str | None
    wait_seconds: int | None
    talk_seconds: int | None
    # What the speech menu heard (None for keypad-only calls). Caller speech: treat as hostile.
    transcript: str | None = None
    intent_confidence: float | None = None
    # The kept utterance as a path relative to the recordings folder (`utterances/<id>-1.wav`),
    # never the server's absolute path; None when there is none or it lies outside that folder.
    utterance: str | None = None
    # The management company (tenant slug); None: the contact centre's own (added field).
    tenant: str | None = Field(default=None, validation_alias=AliasChoices("tenant_slug", "tenant"))
    # The number the caller dialled, and how the tenant was decided: number, phone,
    # earlier_call, keypad, unknown, centre; None before the menu said (added fields).
    dialed_number: str | None = None
    tenant_source: str | None = None
    # inbound / callback (an operator's click-to-call) / internal / feedback (the automatic
    # "is it fixed?" call to a resident) (added field).
    direction: str = "inbound"
    # The cluster node that served the call (`hotline cluster`); None on one box (added field).
    node: str | None = None


def recording_reference(path: str | None, recordings_dir: Path) -> str | None:
    """`path` relative to `recordings_dir` in POSIX form, or None if it is not inside it.

    The call log stores what the AGI side wrote (an absolute path on the server); the API
    shows only the part below the recordings folder, which is what a playback URL needs.
    """
    if not path:
        return None
    candidate = PurePosixPath(path.replace("\\", "/"))
    root = PurePosixPath(recordings_dir.as_posix())
    if candidate.is_relative_to(root):
        candidate = candidate.relative_to(root)
    elif candidate.is_absolute():
        return None
    if not candidate.parts or ".." in candidate.parts:
        return None
    return candidate.as_posix()


class CallEventOut(_FromRow):
    # The stored row's id: the menu's steps stored together in one row share it.
    id: int
    at: Timestamp
    kind: str
    data: dict[str, Any]


class DispositionOut(_FromRow):
    """The operator's answer after the call (dashboard/routes/api_dispositions.py)."""

    category: str
    note: str | None
    callout_created: bool
    operator: str | None
    created_at: Timestamp
    updated_at: Timestamp
    # Who saved this version: a dashboard user, or `token:<name>` (None before history began).
    changed_by: str | None = None


class DispositionChangeOut(_FromRow):
    """One save of a disposition, as saved: for `operator`, by `changed_by`, at `at`."""

    at: Timestamp
    category: str
    note: str | None
    callout_created: bool
    operator: str | None
    changed_by: str | None


class CallDetailOut(CallOut):
    language: str | None
    menu_ended_at: Timestamp | None
    queue_joined_at: Timestamp | None
    hangup_cause: str | None
    hangup_by: str | None
    # One entry per step of the menu, though several are stored to a row (Call.timeline).
    events: list[CallEventOut] = Field(validation_alias=AliasChoices("timeline", "events"))
    # None until the operator saves one.
    disposition: DispositionOut | None = None
    # Every save of the disposition, oldest first (empty until the first).
    disposition_history: list[DispositionChangeOut] = []


class CallbackOut(_FromRow):
    id: int
    caller_number: str
    status: str
    reason: str
    queue: str | None
    attempts: int
    created_at: Timestamp
    updated_at: Timestamp
    closed_at: Timestamp | None
    last_call_id: int | None
    # Set when the number is outside the dial-out plan (e.g. "international"): never dialled.
    refused_reason: str | None = None
    # The management company (tenant slug); None: the contact centre's own (added field).
    tenant: str | None = Field(default=None, validation_alias=AliasChoices("tenant_slug", "tenant"))


class HealthOut(BaseModel):
    status: str
    # Each dependency: "ok" or "down" (database, asterisk, ami_link, router_lag, redis, ...).
    dependencies: dict[str, str] = {}
