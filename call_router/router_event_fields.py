"""The vocabulary of the router's AMI event handlers: an event, what a handler leaves for after
the commit, and the event's own time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Event = Mapping[str, str]
# What a handler leaves for after the commit (live state, agent state); runs on the loop.
Effect = Callable[[], Awaitable[Any]]
Handler = Callable[[Event], Effect | None]


def event_time(event: Event, clock: Callable[[], datetime]) -> datetime:
    """Asterisk's event time when manager.conf has timestampevents=yes, else now."""
    stamp = event.get("Timestamp")
    if stamp:
        try:
            return datetime.fromtimestamp(float(stamp), UTC)
        except (ValueError, OverflowError, OSError):
            pass
    return clock()


def moment(event: Event) -> str:
    """The event's own time if Asterisk sent one; replays of one event share it."""
    return event.get("Timestamp", "")
