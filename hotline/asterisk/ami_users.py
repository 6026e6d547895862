"""The hotline's AMI users (manager.conf): one per role, each with only the classes its
process uses and an event filter that lets through only the events it reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from call_router.ban_policy import FAILURE_EVENTS
from call_router.settings import AmiRole, Settings
from hotline.asterisk.config_checks import AMI_USER_RE, SECRET_RE, must_match

# manager.conf `eventfilter`s for the hotline's AMI user: only what the router
# (call_router/router_events.py) and click-to-call (OriginateResponse) read. Asterisk then never
# sends the busy classes' noise (Newexten, VarSet, RTCP, Newstate, ...) that was parsed and
# dropped. Action replies (QueueStatus, CoreShowChannels lists) are not events: not filtered.
AMI_EVENTS = (
    "FullyBooted",
    "Newchannel",
    "Hangup",
    "QueueCallerJoin",
    "QueueCallerLeave",
    "QueueCallerAbandon",
    "AgentCalled",
    "AgentRingNoAnswer",
    "AgentConnect",
    "AgentComplete",
    "BlindTransfer",
    "AttendedTransfer",
    "QueueMemberAdded",
    "QueueMemberStatus",
    "QueueMemberPause",
    "QueueMemberPenalty",
    "QueueMemberRemoved",
    "UserEvent",
    "OriginateResponse",
    # Failed SIP authentications (class "security"): the router's brute-force bans.
    *sorted(FAILURE_EVENTS),
)
# (event, header, method, value): events wanted only when one header matches.
AMI_HEADER_FILTERS = (
    # The caller's variables the call log reads (QUEUESTATUS, VMSTATUS, HOTLINE_QUEUE).
    ("VarSet", "Variable", "regex", "^(QUEUESTATUS|VMSTATUS|HOTLINE_QUEUE)$"),
    # The voicemail greeting was played (outcome voicemail_offered).
    ("Newexten", "Application", "exact", "VoiceMail"),
    # A click-to-call's resident leg; Queue()'s own dials are not ours to log.
    ("DialBegin", "Context", "exact", "callback-out"),
    ("DialEnd", "Context", "exact", "callback-out"),
    # The operator a supervisor moved a caller to answered (call_control/moving.py).
    ("DialEnd", "Context", "exact", "hotline-move"),
)


SPY_DTMF_FILTER = (
    "action(include),name(DTMFEnd),header(Context),method(exact)",
    "hotline-spy",
)


# Security filters, for every user that reads events, even with the event filter off (they are
# not an optimisation). Asterisk writes header values raw (a security event's AccountID, a
# channel's CallerIDNum: the From user, URI-unescaped by pjsip), so "%0D%0A%0D%0AEvent: ..."
# ended the genuine event early and the rest read as a forged event of its own (SECURITY.md).
# Asterisk applies an exclude filter without header() to the whole event text (manager.c
# filter_cmp_fn; POSIX extended regex, C.UTF-8 locale: Cyrillic is not [[:cntrl:]]). A genuine
# event ends with its only blank line ("\r\n\r\n", nothing after) and has its only "Event:"
# at the start. The config file can hold no CR or LF, hence [[:cntrl:]]; Asterisk strips the
# value's trailing blank, hence "Event:" with no space.
AMI_INJECTION_FILTERS = (
    # A blank line inside the event: four control characters and then anything else.
    ("action(exclude),method(regex)", "[[:cntrl:]]{4}[^[:cntrl:]]"),
    # A second Event header on a line of its own (panoramisk would make Event a list).
    ("action(exclude),method(regex)", "[[:cntrl:]]Event:"),
)


def ami_event_filters(
    enabled: bool,
    events: Sequence[str] = AMI_EVENTS,
    with_headers: bool = True,
    extra: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """(criteria, value) pairs for `eventfilter(<criteria>) = <value>`: the events to include
    (none when disabled), then the injection filters (always)."""
    if not enabled:
        return list(AMI_INJECTION_FILTERS)
    filters = [(f"action(include),name({name})", "") for name in events]
    if with_headers:
        filters += [
            (f"action(include),name({name}),header({header}),method({method})", value)
            for name, header, method, value in AMI_HEADER_FILTERS
        ]
    return [*filters, *extra, *AMI_INJECTION_FILTERS]


@dataclass(frozen=True)
class AmiUserClasses:
    """What one AMI user may receive (read) and send (write); Asterisk's class names."""

    purpose: str
    read: str
    write: str


# Per role (call_router/settings.py AmiRole), the smallest class sets its actions and events
# need. Events: Newchannel/Hangup/Dial*/OriginateResponse are "call", Queue*/Agent* "agent",
# UserEvent "user", VarSet/Newexten "dialplan", failed SIP authentications "security" (the
# router's brute-force bans). Actions: QueueAdd/Remove/Pause/Penalty need
# "agent", CoreShowChannels and LoggerRotate "reporting", UserEvent (the router's lag probe)
# "user", Originate "originate" (of System()
# & co. also "system", which nobody has); Ping and QueueStatus need none. Nobody gets system
# or command.
AMI_USERS: dict[AmiRole, AmiUserClasses] = {
    "router": AmiUserClasses(
        "the router: reads call events, syncs queue members, reconciles",
        read="call,agent,user,dialplan,security",
        write="agent,reporting,user",
    ),
    "originate": AmiUserClasses(
        "the router's one action link (virtual hold: QueueStatus and its call-backs' Originates,"
        " the 'is it fixed?' calls, the daily LoggerRotate) and the CLI's click-to-call and"
        " `hotline retention sweep`: Originate, OriginateResponse, LoggerRotate",
        read="call",
        # LoggerRotate is "system" or "reporting": reporting, the one that cannot restart or
        # reload Asterisk. The router process holds it already (its listener's user).
        write="originate,reporting",
    ),
    "control": AmiUserClasses(
        "the CLI's one-shot queue actions (`hotline agents`): QueueStatus, pause, login",
        read="",
        write="agent",
    ),
    "supervise": AmiUserClasses(
        "the dashboard's one long-lived link (and `hotline calls`): supervisors' call control"
        " (channels, Hangup, Redirect, Originate to ChanSpy), the agents panel's queue"
        " actions, click-to-call's Originate, the DTMF mode switches pressed on supervisors'"
        " phones while they monitor",
        read="call,dtmf",
        write="agent,call,originate,reporting",
    ),
}


def ami_users(settings: Settings) -> list[dict[str, Any]]:
    users = []
    for role, classes in AMI_USERS.items():
        name, secret = settings.ami_login(role)
        if role == "router":
            filters = ami_event_filters(settings.ami_event_filter)
        elif role == "supervise":
            # Only the digits pressed during a monitor session (monitoring.SpyModes).
            filters = ami_event_filters(
                settings.ami_event_filter,
                ("OriginateResponse",),
                with_headers=False,
                extra=(SPY_DTMF_FILTER,),
            )
        elif classes.read:
            filters = ami_event_filters(
                settings.ami_event_filter, ("OriginateResponse",), with_headers=False
            )
        else:
            filters = []
        users.append(
            {
                "name": must_match(AMI_USER_RE, name, "AMI user"),
                "secret": must_match(SECRET_RE, secret, "the AMI secret"),
                "purpose": classes.purpose,
                "read": classes.read,
                "write": classes.write,
                "filters": filters,
            }
        )
    return users
