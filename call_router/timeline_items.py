"""A call's timeline as people and the API read it: one entry per thing that happened.

The FastAGI server stores the flow steps between two waits for the caller as one row
(`flow_steps`: the steps' data and each one's offset from the row's time, agi_scripts/flows/
step_records.py). Read back, such a row is one `flow_step` entry per step, at its own time,
with the row's id; every other row is one entry as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from call_router.call_event_kinds import EVENT_FLOW_STEP, EVENT_FLOW_STEPS


class StoredEvent(Protocol):
    """What a call_events row has that the timeline shows."""

    @property
    def id(self) -> int: ...

    @property
    def at(self) -> datetime: ...

    @property
    def kind(self) -> str: ...

    @property
    def data(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class TimelineItem:
    # The stored row's: the steps of one `flow_steps` row share it.
    id: int
    at: datetime
    kind: str
    data: dict[str, Any]


def flow_steps_data(steps: list[dict[str, Any]], offsets_us: list[int]) -> dict[str, Any]:
    """A `flow_steps` row's data: each step's own data, and its microseconds after the row."""
    return {"steps": steps, "us": offsets_us}


def timeline_items(events: Iterable[StoredEvent]) -> list[TimelineItem]:
    """The rows as timeline entries, in time order."""
    items: list[TimelineItem] = []
    for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        steps, offsets = data.get("steps"), data.get("us")
        if (
            event.kind == EVENT_FLOW_STEPS
            and isinstance(steps, list)
            and isinstance(offsets, list)
            and len(steps) == len(offsets)
            and all(isinstance(offset, int) for offset in offsets)
        ):
            items.extend(
                TimelineItem(
                    event.id,
                    event.at + timedelta(microseconds=offset),
                    EVENT_FLOW_STEP,
                    step if isinstance(step, dict) else {"step": step},
                )
                for step, offset in zip(steps, offsets, strict=True)
            )
        else:
            items.append(TimelineItem(event.id, event.at, event.kind, data))
    # Stable: entries at the same moment keep the rows' order. A row's later steps may come
    # after events written meanwhile (the menu result is written during the route step).
    items.sort(key=lambda item: item.at)
    return items
