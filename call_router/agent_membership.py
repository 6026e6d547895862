"""Queue membership as Asterisk reports it and as we want it, in plain values: AMI replies
parsed into `Membership`, the actions (`plan`) that make Asterisk match the desired state, and
the operator's state the wallboard shows. Pure: no database, no AMI (call_router/agents.py
does the I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MAX_REASON = 64

# Asterisk device states (AST_DEVICE_*) as QueueMember events report them in `Status`.
DEVICE_STATES = {
    0: "unknown",
    1: "not_inuse",
    2: "inuse",
    3: "busy",
    4: "invalid",
    5: "unavailable",
    6: "ringing",
    7: "ringinuse",
    8: "onhold",
}
_BUSY = {"inuse", "busy", "ringinuse", "onhold"}
_OFFLINE = {"invalid", "unavailable", "unknown"}

# The operator's state as the wallboard shows it, most important first.
STATE_LOGGED_OUT = "logged_out"
STATE_OFFLINE = "offline"  # logged in, but the softphone is not registered
STATE_PAUSED = "paused"
STATE_BUSY = "busy"
STATE_RINGING = "ringing"
STATE_WRAPUP = "wrapup"
STATE_FREE = "free"


def interface_of(login: str) -> str:
    return f"PJSIP/{login}"


def login_of(interface: str) -> str | None:
    """`PJSIP/1001` → `1001`; None for anything that is not one of our operators' endpoints."""
    tech, _, rest = interface.partition("/")
    return rest if tech.upper() == "PJSIP" and rest and "/" not in rest else None


# --- plain values -------------------------------------------------------------------------


@dataclass(frozen=True)
class Membership:
    """One operator in one queue, as Asterisk has it."""

    queue: str
    interface: str
    name: str
    penalty: int
    paused: bool
    reason: str
    status: int
    in_call: bool
    dynamic: bool
    last_call: int = 0  # Unix time the last call ended, 0 if none
    wrapup: int = 0


@dataclass(frozen=True)
class DesiredAgent:
    login: str
    name: str
    queues: Mapping[str, int]  # queue → penalty; empty when logged out
    paused: bool = False
    reason: str = ""

    @property
    def interface(self) -> str:
        return interface_of(self.login)


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def membership_from_event(event: Mapping[str, str]) -> Membership | None:
    """A QueueMember (QueueStatus reply) or QueueMember* event → Membership."""
    interface = event.get("Interface") or event.get("Location") or ""
    queue = event.get("Queue", "")
    if not interface or not queue:
        return None
    return Membership(
        queue=queue,
        interface=interface,
        name=event.get("MemberName", "") or interface,
        penalty=_int(event.get("Penalty")),
        paused=_bool(event.get("Paused")),
        reason=event.get("PausedReason", "") or "",
        status=_int(event.get("Status")),
        in_call=_bool(event.get("InCall")),
        dynamic=(event.get("Membership", "dynamic").lower() != "static"),
        last_call=_int(event.get("LastCall")),
        wrapup=_int(event.get("Wrapuptime")),
    )


def parse_members(replies: Iterable[Mapping[str, str]]) -> list[Membership]:
    members = []
    for reply in replies:
        if reply.get("Event") == "QueueMember":
            member = membership_from_event(reply)
            if member is not None:
                members.append(member)
    return members


def plan(
    desired: Sequence[DesiredAgent],
    actual: Sequence[Membership],
    *,
    managed: Iterable[str] = (),
) -> list[dict[str, str]]:
    """The AMI actions that make Asterisk's membership match `desired`.

    Only PJSIP members are touched: desired agents' interfaces, `managed` interfaces (roster
    operators now disabled or logged out) and dynamic PJSIP members nobody wants any more.
    Static members (if an admin keeps some in queues.conf) are never removed.
    """
    want = {(q, a.interface): (a, penalty) for a in desired for q, penalty in a.queues.items()}
    have = {(m.queue, m.interface): m for m in actual}
    managed_set = set(managed) | {a.interface for a in desired}
    actions: list[dict[str, str]] = []
    for (queue, interface), member in sorted(have.items()):
        if (queue, interface) in want or not member.dynamic:
            continue
        if interface in managed_set or login_of(interface) is not None:
            actions.append({"Action": "QueueRemove", "Queue": queue, "Interface": interface})
    for (queue, interface), (agent, penalty) in sorted(want.items()):
        present = have.get((queue, interface))
        if present is None:
            actions.append(
                {
                    "Action": "QueueAdd",
                    "Queue": queue,
                    "Interface": interface,
                    "Penalty": str(penalty),
                    "Paused": "true" if agent.paused else "false",
                    "MemberName": agent.name,
                    # Device state (ringing, in use, unregistered) comes from the endpoint.
                    "StateInterface": interface,
                }
            )
            if agent.paused and agent.reason:
                actions.append(_pause_action(queue, interface, True, agent.reason))
            continue
        if present.penalty != penalty:
            actions.append(
                {
                    "Action": "QueuePenalty",
                    "Queue": queue,
                    "Interface": interface,
                    "Penalty": str(penalty),
                }
            )
        if present.paused != agent.paused or (agent.paused and present.reason != agent.reason):
            actions.append(_pause_action(queue, interface, agent.paused, agent.reason))
    return actions


def _pause_action(queue: str, interface: str, paused: bool, reason: str) -> dict[str, str]:
    action = {
        "Action": "QueuePause",
        "Queue": queue,
        "Interface": interface,
        "Paused": "true" if paused else "false",
    }
    if paused and reason:
        action["Reason"] = reason
    return action


def agent_state(memberships: Sequence[Membership], *, logged_in: bool, now: float) -> str:
    """One operator's state across all their queues."""
    if not logged_in or not memberships:
        return STATE_LOGGED_OUT
    device = DEVICE_STATES.get(memberships[0].status, "unknown")
    if any(m.in_call for m in memberships) or device in _BUSY:
        return STATE_BUSY
    if device in _OFFLINE:
        return STATE_OFFLINE
    if device == "ringing":
        return STATE_RINGING
    if all(m.paused for m in memberships):
        return STATE_PAUSED
    if any(m.wrapup and m.last_call and now - m.last_call < m.wrapup for m in memberships):
        return STATE_WRAPUP
    return STATE_FREE


def queue_counts(
    members: Iterable[Membership], queues: Iterable[str], *, now: float
) -> dict[str, dict[str, int]]:
    """Per queue: operators free / busy / paused / offline (the wallboard's queue line)."""
    counts = {q: {"free": 0, "busy": 0, "paused": 0, "offline": 0} for q in queues}
    for m in members:
        if m.queue not in counts:
            continue
        state = agent_state([m], logged_in=True, now=now)
        bucket = {
            STATE_FREE: "free",
            STATE_WRAPUP: "busy",
            STATE_RINGING: "busy",
            STATE_BUSY: "busy",
            STATE_PAUSED: "paused",
        }.get(state, "offline")
        counts[m.queue][bucket] += 1
    return counts
