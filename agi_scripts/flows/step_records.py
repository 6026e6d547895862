"""A call's flow steps, held from one wait for the caller to the next and written as one row.

Every node visit is on the call's timeline (`flow_step` entries). Most steps follow each other
within microseconds (a condition, a `set`, a jump); as a row each they were most of a call's
timeline rows (11 of 13 on the keypad path). So the engine keeps the steps here and
hands them to the call-log writer as one `flow_steps` row (call_router/timeline_items.py reads
it back as one `flow_step` entry per step) before every AGI command that may wait for the
caller (`AgiChannel.before_wait`) and when the flow ends. Nothing is held while the caller
listens or thinks, so a killed process loses no more than before: the writes of its last few
milliseconds. The call's other writes made meanwhile (the menu result, the company decided,
a transcript) do not hand the steps over first: the timeline is read in time order, each step
at its own time, so a row of steps written after them still reads before them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from call_router.call_event_kinds import EVENT_FLOW_STEPS
from call_router.timeline_items import flow_steps_data


class StepRecords:
    """The steps since the last hand-over: each step's data and its time."""

    def __init__(self) -> None:
        self._steps: list[dict[str, Any]] = []
        self._times: list[float] = []  # time.time() of each step: cheap per step
        self._first_seq = 0

    def add(self, data: dict[str, Any], seq: int) -> None:
        """One step, as it happened now; `seq` is unique within the call (the row's key)."""
        if not self._steps:
            self._first_seq = seq
        self._steps.append(data)
        self._times.append(time.time())

    def take(self) -> dict[str, Any] | None:
        """The held steps as a `record_event` write's arguments (then none are held); None
        when there are none."""
        if not self._steps:
            return None
        times = self._times
        first = times[0]
        record = {
            "kind": EVENT_FLOW_STEPS,
            "key": f"flow:{self._first_seq}:{EVENT_FLOW_STEPS}",
            "at": datetime.fromtimestamp(first, UTC),
            "data": flow_steps_data(self._steps, [int((t - first) * 1e6) for t in times]),
        }
        self._steps, self._times = [], []
        return record
