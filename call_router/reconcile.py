"""What Asterisk's own records say about calls whose AMI events the router missed.

After every AMI (re)connect the router compares its open calls with Asterisk. Events sent while
it was away are gone, but Asterisk also writes them down: the queue_log (one line per queue
event: ENTERQUEUE, CONNECT, COMPLETECALLER, ABANDON, ... and our dialplan's own HOTLINECALLBACK
line for a virtual-hold request) and the CDR CSV (when each channel ended). This module turns
those lines into the AMI-shaped events the listener already handles, so a replayed queue_log
line takes the very path a live event takes and stays idempotent.

Pure, apart from the two small file readers at the end; unit-tested with plain lines.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Our dialplan's QueueLog() line for "press 1 to be called back" (extensions.conf.j2).
VERB_CALLBACK = "HOTLINECALLBACK"
# Its line for "the FastAGI server failed, the caller goes to the coordinator" (agi-fail).
VERB_AGI_FAILED = "HOTLINEAGIFAILED"
# queue_log verbs that end the caller's stay in a queue, and the QUEUESTATUS they mean.
_EXIT_STATUS = {"EXITWITHTIMEOUT": "TIMEOUT", "EXITEMPTY": "LEAVEEMPTY", "EXITWITHKEY": ""}
_COMPLETE_REASON = {"COMPLETECALLER": "caller", "COMPLETEAGENT": "agent"}
# A live event and its queue_log line differ by the sub-second part Asterisk drops there.
SAME_MOMENT_SECONDS = 1.5
# Only the tail of a long queue_log / CDR file is read (the calls open now are recent).
READ_TAIL_BYTES = 16 * 2**20
# CDR CSV columns (cdr.conf: loguniqueid, loguserfield, newcdrcolumns).
_CDR_SRC, _CDR_CLID, _CDR_CHANNEL, _CDR_START = 1, 4, 5, 9
_CDR_END, _CDR_UNIQUEID, _CDR_LINKEDID = 11, 16, 19
# ENTERQUEUE's data: url|caller number|position (a caller number with a "|" shifts them).
_ENTERQUEUE_FIELDS = 3


@dataclass(frozen=True)
class QueueLogRow:
    at: float  # Unix seconds, as Asterisk wrote them
    callid: str  # the caller's channel uniqueid (= the call's linkedid for inbound calls)
    queue: str
    agent: str
    verb: str
    data: tuple[str, ...]

    def field(self, index: int) -> str:
        return self.data[index] if index < len(self.data) else ""


@dataclass(frozen=True)
class KnownEvent:
    """A timeline entry the call log already has: (kind, queue, when)."""

    kind: str
    queue: str | None
    at: datetime


def parse_queue_log(lines: Iterable[str], callids: Collection[str] | None) -> list[QueueLogRow]:
    """The rows of these calls (None: of every call), in file order. Malformed lines are
    skipped, never fatal."""
    rows = []
    for line in lines:
        parts = line.rstrip("\r\n").split("|")
        if len(parts) < 5 or (callids is not None and parts[1] not in callids):
            continue
        try:
            at = float(parts[0])
            datetime.fromtimestamp(at, UTC)  # a time, not nan, inf or beyond year 9999
        except (ValueError, OverflowError, OSError):
            continue
        rows.append(QueueLogRow(at, parts[1], parts[2], parts[3], parts[4], tuple(parts[5:])))
    return rows


def parse_cdr_ends(text: str, linkedids: Collection[str]) -> dict[str, datetime]:
    """linkedid → when its last channel ended (the CDR `end`, UTC with usegmtime)."""
    ends: dict[str, datetime] = {}
    for record in _csv_records(text):
        if len(record) <= _CDR_LINKEDID or record[_CDR_LINKEDID] not in linkedids:
            continue
        end = _cdr_time(record[_CDR_END])
        if end is None:
            continue
        linkedid = record[_CDR_LINKEDID]
        if linkedid not in ends or end > ends[linkedid]:
            ends[linkedid] = end
    return ends


@dataclass(frozen=True)
class FailsafeCall:
    """A call the dialplan's fail-safe sent to the coordinator (no FastAGI server logged it),
    as Asterisk's records tell it: enough for its call-log row."""

    linkedid: str
    started_at: datetime
    caller_number: str | None
    caller_name: str | None
    channel: str | None
    dialed_number: str | None


def failsafe_calls(rows: Iterable[QueueLogRow], cdr_text: str) -> list[FailsafeCall]:
    """The calls among `rows` that met the fail-safe (a HOTLINEAGIFAILED line), in file order.

    The caller's own CDR (uniqueid = linkedid) gives the caller ID, channel and start; a call
    still in progress has none yet, and its ENTERQUEUE line gives the number. The dialled
    number is our dialplan's (the extension it matched), never the caller's.
    """
    by_call: dict[str, list[QueueLogRow]] = {}
    for row in rows:
        by_call.setdefault(row.callid, []).append(row)
    failed = {
        callid: next(r for r in own if r.verb == VERB_AGI_FAILED)
        for callid, own in by_call.items()
        if any(r.verb == VERB_AGI_FAILED for r in own)
    }
    cdrs: dict[str, list[str]] = {}
    for record in _csv_records(cdr_text):
        if (
            len(record) > _CDR_LINKEDID
            and record[_CDR_LINKEDID] in failed
            and record[_CDR_UNIQUEID] == record[_CDR_LINKEDID]
        ):
            cdrs.setdefault(record[_CDR_LINKEDID], record)
    calls = []
    for callid, line in failed.items():
        cdr = cdrs.get(callid)
        joined = [r for r in by_call[callid] if r.verb == "ENTERQUEUE"]
        number = cdr[_CDR_SRC] if cdr else None
        if not number and joined and len(joined[0].data) == _ENTERQUEUE_FIELDS:
            number = joined[0].field(1)
        started = _cdr_time(cdr[_CDR_START]) if cdr else None
        calls.append(
            FailsafeCall(
                linkedid=callid,
                started_at=min(started or _when(line), _when(line)),
                caller_number=number or None,
                caller_name=_clid_name(cdr[_CDR_CLID]) if cdr else None,
                channel=(cdr[_CDR_CHANNEL] or None) if cdr else None,
                dialed_number=line.field(1) or None,
            )
        )
    return calls


def _when(row: QueueLogRow) -> datetime:
    return datetime.fromtimestamp(row.at, UTC)


def _cdr_time(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _clid_name(clid: str) -> str | None:
    """The name part of a CDR's `"Name" <number>`."""
    name = clid.rsplit("<", 1)[0].strip() if clid.endswith(">") else ""
    return name.removeprefix('"').removesuffix('"') or None


def _csv_records(text: str) -> Iterator[list[str]]:
    """One record per line: a line cut short by a crash (an open quote) must not swallow the
    records after it, as one csv.reader over the whole text would (or fail on its size)."""
    for line in _lines(text):
        try:
            yield next(csv.reader([line]), [])
        except csv.Error:
            continue


def _lines(text: str) -> list[str]:
    # Only "\n" ends an Asterisk record: splitlines() would also cut at U+2028 and the like,
    # which a caller ID written into a record may carry (and forge a line for another call).
    return [line.rstrip("\r") for line in text.split("\n")]


def missed_events(rows: Sequence[QueueLogRow], known: Sequence[KnownEvent]) -> list[dict[str, str]]:
    """AMI-shaped events for one call's queue_log rows that its timeline does not have yet.

    Rings (RINGNOANSWER) are left out: a miss long past must not auto-pause an operator now.
    CONNECT/COMPLETE carry the operator leg's uniqueid, so they get the live event's key.
    """
    events: list[dict[str, str]] = []
    leg = ""
    for row in rows:
        base = {
            "Linkedid": row.callid,
            "Uniqueid": row.callid,
            "Queue": row.queue,
            "Timestamp": f"{row.at:.0f}",
            "Source": "queue_log",
        }
        at = datetime.fromtimestamp(row.at, UTC)
        if row.verb == "ENTERQUEUE":
            if not _seen(known, "queue_join", row.queue, at):
                events.append({"Event": "QueueCallerJoin", **base, "Position": row.field(2)})
        elif row.verb == "CONNECT":
            leg = row.field(1)
            if not _seen(known, "agent_connect", row.queue, at):
                events.append(
                    {
                        "Event": "AgentConnect",
                        **base,
                        "MemberName": row.agent,
                        "HoldTime": row.field(0),
                        "RingTime": row.field(2),
                        "DestUniqueid": leg,
                    }
                )
        elif row.verb in _COMPLETE_REASON:
            if not _seen(known, "agent_complete", row.queue, at):
                events.append(
                    {
                        "Event": "AgentComplete",
                        **base,
                        "MemberName": row.agent,
                        "HoldTime": row.field(0),
                        "TalkTime": row.field(1),
                        "Reason": _COMPLETE_REASON[row.verb],
                        "DestUniqueid": leg,
                    }
                )
        elif row.verb == "ABANDON":
            if not _seen(known, "abandon", row.queue, at):
                events.append({"Event": "QueueCallerAbandon", **base, "HoldTime": row.field(2)})
        elif row.verb in _EXIT_STATUS:
            if not _seen(known, "queue_leave", row.queue, at):
                events.append({"Event": "QueueCallerLeave", **base})
            status = _EXIT_STATUS[row.verb]
            if status and not _seen(known, "queue_status", None, at):
                events.append(
                    {"Event": "VarSet", **base, "Variable": "QUEUESTATUS", "Value": status}
                )
        elif row.verb == VERB_CALLBACK:
            # The request is idempotent by itself (one per call): no need to look it up.
            events.append({"Event": "UserEvent", **base, "UserEvent": "HotlineCallbackRequest"})
        elif row.verb == VERB_AGI_FAILED:
            # Recorded under one key per call: a replay adds nothing.
            failed = {
                "UserEvent": "HotlineAgiFailed",
                "Status": row.field(0),
                "Dialed": row.field(1),
            }
            events.append({"Event": "UserEvent", **base, **failed})
    return events


def ended_at(
    linkedid: str, rows: Sequence[QueueLogRow], cdr_ends: dict[str, datetime]
) -> datetime | None:
    """When Asterisk says the call ended: its CDR end, else a queue_log line that ends it."""
    if linkedid in cdr_ends:
        return cdr_ends[linkedid]
    final = [r for r in rows if r.verb in _COMPLETE_REASON or r.verb == "ABANDON"]
    return datetime.fromtimestamp(final[-1].at, UTC) if final else None


def _seen(known: Sequence[KnownEvent], kind: str, queue: str | None, at: datetime) -> bool:
    return any(
        k.kind == kind
        and (queue is None or k.queue == queue)
        and abs((k.at - at).total_seconds()) <= SAME_MOMENT_SECONDS
        for k in known
    )


# --- the two file readers (the only I/O here) --------------------------------------------------


def read_tail(path: Path, limit: int = READ_TAIL_BYTES) -> str:
    """The last `limit` bytes of a text file from a line start; "" if it does not exist."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - limit))
            data = fh.read()
    except OSError:
        return ""
    if size > limit:
        data = data.split(b"\n", 1)[-1]
    return data.decode("utf-8", errors="replace")


def newest_rotated(path: Path) -> Path | None:
    """The most recently rotated copy of a log (`queue_log.<time>`), if any."""
    try:
        rotated = [p for p in path.parent.glob(path.name + ".*") if p.is_file()]
        return max(rotated, key=lambda p: p.stat().st_mtime, default=None)
    except OSError:
        return None


@dataclass(frozen=True)
class AsteriskRecords:
    """Where this installation's Asterisk writes the queue_log and the CDR CSV."""

    queue_log: Path
    cdr_csv: Path

    @classmethod
    def in_log_dir(cls, log_dir: Path) -> AsteriskRecords:
        return cls(log_dir / "queue_log", log_dir / "cdr-csv" / "Master.csv")

    def failsafe_calls_since(self, since: datetime) -> list[FailsafeCall]:
        """The calls that met the dialplan's fail-safe at `since` or later."""
        lines = _lines(self._queue_log_text())
        cutoff = since.timestamp()
        # Only the fail-safe's lines are parsed whole at first: the tail holds a busy day.
        failed = parse_queue_log((line for line in lines if VERB_AGI_FAILED in line), None)
        met = {r.callid for r in failed if r.verb == VERB_AGI_FAILED and r.at >= cutoff}
        if not met:
            return []
        return failsafe_calls(parse_queue_log(lines, met), self._cdr_text())

    def _queue_log_text(self) -> str:
        # The daily log rotation (call_router/retention.py) may have just moved the lines we
        # need into queue_log.<time>: read the newest rotated file's tail first.
        text = read_tail(self.queue_log)
        rotated = newest_rotated(self.queue_log)
        return text if rotated is None else read_tail(rotated) + "\n" + text

    def _cdr_text(self) -> str:
        # The same for the CDR file, which the sweep rotates too (Master.csv.<time>).
        text = read_tail(self.cdr_csv)
        rotated = newest_rotated(self.cdr_csv)
        return text if rotated is None else read_tail(rotated) + "\n" + text

    def read(
        self, linkedids: Collection[str]
    ) -> tuple[dict[str, list[QueueLogRow]], dict[str, datetime]]:
        """Per call its queue_log rows, and the CDR end times."""
        wanted = frozenset(linkedids)
        by_call: dict[str, list[QueueLogRow]] = {}
        for row in parse_queue_log(_lines(self._queue_log_text()), wanted):
            by_call.setdefault(row.callid, []).append(row)
        return by_call, parse_cdr_ends(self._cdr_text(), wanted)
