"""The queue_log feed: the line format Asterisk writes and Asternic / QueueMetrics read.

Asterisk (logger.conf `queue_log = yes`, `queue_log_to_file = yes`) appends one line per queue
event to `<state>/log/queue_log`:

    timestamp|callid|queue|agent|event|data1|data2|...

- timestamp  Unix seconds
- callid     the caller channel's unique id (ours: the call's linkedid), or NONE / REALTIME
- queue      the queue name, or NONE
- agent      the member (queues.conf `log_membername_as_agent = yes`: its MemberName, the
             roster name the call log keeps), or NONE
- event      below; everything after it is the event's parameters

Reference: Asterisk's "Queue Logs" page, https://docs.asterisk.org/Operation/Logging/Queue-Logs/
(the event list and each event's parameters). QueueMetrics and Asternic read the same file. Our
own dialplan adds lines with QueueLog() (`HOTLINE*` events, which such tools skip as unknown).

Pure: `check_line` says what is wrong with one line (the feed's test, tests/integration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Documented event -> its parameters, in order (Asterisk's Queue Logs page). Names ending in
# "time" or "position" are whole numbers.
EVENTS: Final[dict[str, tuple[str, ...]]] = {
    "ABANDON": ("position", "origposition", "waittime"),
    "ADDMEMBER": (),
    "AGENTDUMP": (),
    "AGENTLOGIN": ("channel",),
    "AGENTLOGOFF": ("channel", "logintime"),
    "COMPLETEAGENT": ("holdtime", "calltime", "origposition"),
    "COMPLETECALLER": ("holdtime", "calltime", "origposition"),
    "CONFIGRELOAD": (),
    "CONNECT": ("holdtime", "bridgedchanneluniqueid", "ringtime"),
    # The page documents (url|callerid); app_queue has since added the caller's position.
    "ENTERQUEUE": ("url", "callerid", "position"),
    "EXITEMPTY": ("position", "origposition", "waittime"),
    "EXITWITHKEY": ("key", "position", "origposition", "waittime"),
    "EXITWITHTIMEOUT": ("position", "origposition", "waittime"),
    "FULL": (),
    "JOINEMPTY": (),
    "JOINUNAVAIL": (),
    "LEAVEEMPTY": (),
    "PAUSE": ("reason",),
    "PAUSEALL": ("reason",),
    "UNPAUSE": ("reason",),
    "UNPAUSEALL": ("reason",),
    "REMOVEMEMBER": (),
    "RINGNOANSWER": ("ringtime",),
    "RINGCANCELED": ("ringtime",),
    "TRANSFER": ("extension", "context", "holdtime", "calltime", "origposition"),
    "ATTENDEDTRANSFER": ("method", "target", "holdtime", "calltime", "origposition"),
    "BLINDTRANSFER": ("extension", "context", "holdtime", "calltime", "origposition"),
    "SYSCOMPAT": (),
    "QUEUESTART": (),
}
# Our own lines (QueueLog() in asterisk_conf/extensions.conf.j2, the AMI QueueLog action).
OWN_PREFIX: Final = "HOTLINE"
# A supervisor moved a waiting caller (call_router/call_control/): app_queue logs the caller's
# leaving the queue as ABANDON, this line right after it says why; data: the queue or operator
# login they were moved to.
EVENT_MOVED: Final = "HOTLINEMOVED"
# Events about a member rather than a caller: callid NONE is expected.
MEMBER_EVENTS: Final = frozenset(
    {"ADDMEMBER", "REMOVEMEMBER", "PAUSE", "UNPAUSE", "PAUSEALL", "UNPAUSEALL"}
)
NOT_OF_A_CALLER: Final = frozenset({"CONFIGRELOAD", "QUEUESTART", "AGENTLOGIN", "AGENTLOGOFF"})


@dataclass(frozen=True)
class QueueLogLine:
    timestamp: int
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]

    def param(self, name: str) -> str | None:
        """A documented parameter by name (None: not in the line or not documented)."""
        names = EVENTS.get(self.event, ())
        if name not in names:
            return None
        index = names.index(name)
        return self.data[index] if index < len(self.data) else None


def moved_action(from_queue: str | None, callid: str, target: str) -> dict[str, str]:
    """The AMI action that writes `<from_queue>|<callid>|NONE|HOTLINEMOVED|<target>`."""
    return {
        "Action": "QueueLog",
        "Queue": from_queue or "NONE",
        "Event": EVENT_MOVED,
        "UniqueID": callid,
        "Interface": "NONE",
        "Message": target,
    }


def parse_line(line: str) -> QueueLogLine:
    """One line; ValueError if it does not have the five leading fields."""
    parts = line.rstrip("\r\n").split("|")
    if len(parts) < 5:
        raise ValueError(f"fewer than 5 fields: {line!r}")
    return QueueLogLine(int(parts[0]), parts[1], parts[2], parts[3], parts[4], tuple(parts[5:]))


def _numeric(name: str) -> bool:
    return name.endswith(("time", "position"))


def check_line(line: str) -> list[str]:
    """What is wrong with one queue_log line against the documented format ([] = nothing).

    A caller event (a documented event not about a member) needs a call id; a documented event
    has no more parameters than documented, and its times and positions are whole numbers.
    Events we do not know (a newer Asterisk's) pass if they only have the five leading fields
    right."""
    try:
        row = parse_line(line)
    except ValueError as exc:
        return [str(exc)]
    problems = []
    if row.timestamp <= 0:
        problems.append("timestamp is not Unix seconds")
    if not row.callid or not row.queue or not row.agent or not row.event:
        problems.append("an empty leading field")
    if row.event != row.event.upper() or "|" in row.event:
        problems.append(f"event {row.event!r} is not an upper-case word")
    names = EVENTS.get(row.event)
    if names is None:
        return problems
    if len(row.data) > max(len(names), 1):
        problems.append(f"{row.event}: {len(row.data)} parameters, documented {len(names)}")
    for name, value in zip(names, row.data, strict=False):
        if _numeric(name) and value and not value.lstrip("-").isdigit():
            problems.append(f"{row.event}: {name} {value!r} is not a whole number")
    if row.callid == "NONE" and row.event not in MEMBER_EVENTS | NOT_OF_A_CALLER:
        problems.append(f"{row.event}: a caller event without a call id")
    return problems
