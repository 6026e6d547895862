"""Render the Asterisk configuration (asterisk_conf/*.conf.j2) from settings and the roster.

Everything that lands in a config file is checked here first, and the Jinja environment checks
every rendered value again (no newline, no `;`), so an operator name or a setting can never add
a config line: in Asterisk's config files a newline starts a new option and `;` a comment.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import os
import re
import struct
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from call_router.asterisk_paths import AsteriskPaths
from call_router.ban_policy import FAILURE_EVENTS, host_network, is_protected
from call_router.dial_plan import DialPlan, DialPlanError
from call_router.operators import PENALTY_MAX, RESERVED_LOGINS
from call_router.private_files import give_to_folder_owner
from call_router.settings import PROJECT_ROOT, QUEUES, AmiRole, Settings
from call_router.sip_bans import carrier_entries, carrier_networks
from call_router.tenant_routing import parse_tenant_queue

TEMPLATES_DIR = PROJECT_ROOT / "asterisk_conf"
# The virtual-hold offer queues.conf plays every minute, named without a language folder: Asterisk
# takes it from recordings/prompts/<the caller's channel language>/.
CALLER_LANGUAGE_PROMPT = "queue_callback_offer"

# Dialplan and pjsip section names are built from these: lower-case, and never starting with
# "_" (an extension starting with "_" is a pattern that would match other numbers).
LOGIN_RE = re.compile(r"[a-z0-9][a-z0-9_]{0,39}")
# Generated passwords are token_urlsafe; allow a little more but nothing a config parser reads.
PASSWORD_RE = re.compile(r"[A-Za-z0-9._~!@#%^&*()+=:/?-]{8,128}")
QUEUE_RE = re.compile(r"[a-z][a-z0-9_-]{0,39}")
NUMBER_RE = re.compile(r"\+?[0-9]{1,20}")
DIAL_PATTERN_RE = re.compile(r"_\+[0-9XNZ\[\]]{2,40}\.?")
HOST_RE = re.compile(r"[A-Za-z0-9.:-]{1,253}")
AMI_USER_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SECRET_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
# Characters that would break a config value or a dialplan argument list.
_BAD_PATH_CHARS = re.compile(r"[\x00-\x1f\x7f;,\"$\[\]{}\\|]")
_BAD_VALUE_CHARS = ("\n", "\r", "\x00", ";")
# In a display name: config syntax characters become spaces.
_NAME_UNSAFE = re.compile(r"[;,\"\\\[\]<>=$|{}`]")
AUDIO_SUFFIXES = frozenset({".wav", ".gsm", ".sln", ".ulaw", ".alaw", ".g722", ".mp3"})


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


def ami_event_filters(
    enabled: bool, events: Sequence[str] = AMI_EVENTS, with_headers: bool = True
) -> list[tuple[str, str]]:
    """(criteria, value) pairs for `eventfilter(<criteria>) = <value>`; none when disabled."""
    if not enabled:
        return []
    filters = [(f"action(include),name({name})", "") for name in events]
    if with_headers:
        filters += [
            (f"action(include),name({name}),header({header}),method({method})", value)
            for name, header, method, value in AMI_HEADER_FILTERS
        ]
    return filters


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
# "agent", CoreShowChannels and LoggerRotate "reporting", Originate "originate" (of System()
# & co. also "system", which nobody has); Ping and QueueStatus need none. Nobody gets system
# or command.
AMI_USERS: dict[AmiRole, AmiUserClasses] = {
    "router": AmiUserClasses(
        "the router: reads call events, syncs queue members, reconciles, rotates logs",
        read="call,agent,user,dialplan,security",
        write="agent,reporting",
    ),
    "originate": AmiUserClasses(
        "click-to-call and virtual hold: Originate and its OriginateResponse",
        read="call",
        write="originate",
    ),
    "control": AmiUserClasses(
        "one-shot queue actions (CLI, dashboard, virtual hold): QueueStatus, pause, login",
        read="",
        write="agent",
    ),
    "supervise": AmiUserClasses(
        "supervisors' call control (the dashboard's one long-lived link, `hotline calls`):"
        " channels, Hangup, Redirect, Originate to ChanSpy, queue pauses, the DTMF mode"
        " switches pressed on supervisors' phones while they monitor",
        read="call,dtmf",
        write="agent,call,originate,reporting",
    ),
}


def _ami_users(settings: Settings) -> list[dict[str, Any]]:
    users = []
    for role, classes in AMI_USERS.items():
        name, secret = settings.ami_login(role)
        if role == "router":
            filters = ami_event_filters(settings.ami_event_filter)
        elif role == "supervise":
            filters = ami_event_filters(
                settings.ami_event_filter, ("OriginateResponse",), with_headers=False
            )
            if filters:
                # Only the digits pressed during a monitor session (monitoring.SpyModes).
                filters.append(SPY_DTMF_FILTER)
        elif classes.read:
            filters = ami_event_filters(
                settings.ami_event_filter, ("OriginateResponse",), with_headers=False
            )
        else:
            filters = []
        users.append(
            {
                "name": _full(AMI_USER_RE, name, "AMI user"),
                "secret": _full(SECRET_RE, secret, "the AMI secret"),
                "purpose": classes.purpose,
                "read": classes.read,
                "write": classes.write,
                "filters": filters,
            }
        )
    return users


class ConfigError(ValueError):
    """A value that must not go into the Asterisk configuration."""


@dataclass(frozen=True)
class OperatorConf:
    sip_login: str
    sip_password: str
    name: str
    queues: tuple[tuple[str, int], ...]  # (queue, penalty)


# --- validation ------------------------------------------------------------------------------


def _full(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(f"{what} {value!r} is not allowed in the Asterisk config")
    return value


def _ip(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError(f"{what} must be an IP address, got {value!r}") from None


def _bind_ip(value: str, what: str) -> str:
    return "127.0.0.1" if value == "localhost" else _ip(value, what)


def _host(value: str, what: str) -> str:
    return _full(HOST_RE, value, what)


def _port(value: int, what: str) -> int:
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(f"{what} must be a port number, got {value!r}")
    return value


def _match(value: str) -> str:
    """One pstn_match entry: an IP, a CIDR or a host name (pjsip identify `match`)."""
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        return _host(value, "pstn_match")


def _carrier(settings: Settings) -> dict[str, list[str]]:
    """The trunk's identify `match` entries and its ACL (host names resolved to addresses)."""
    entries = [_match(entry) for entry in carrier_entries(settings)]
    if not entries:
        raise ConfigError("pstn_match must name at least one carrier address")
    try:
        networks = carrier_networks(settings)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return {"carrier_match": entries, "carrier_networks": [str(net) for net in networks]}


def _banned(addresses: Sequence[str], settings: Settings) -> list[str]:
    """ACL entries for banned addresses; a carrier address is never one of them."""
    protected = carrier_networks(settings)
    valid = [_ip(address, "banned address") for address in addresses]
    return [host_network(address) for address in valid if not is_protected(address, protected)]


def config_path(value: str, what: str) -> str:
    if not value.startswith("/") or _BAD_PATH_CHARS.search(value):
        raise ConfigError(f'{what} {value!r} must be an absolute path without ;,"$[]{{}}\\|')
    return value


def display_name(name: str, fallback: str) -> str:
    """A name safe in `callerid = "..."` and a queue member line; Cyrillic is kept."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in name)
    cleaned = " ".join(_NAME_UNSAFE.sub(" ", cleaned).split())[:64].strip()
    return cleaned or fallback


@dataclass(frozen=True)
class _Operator:
    login: str
    password: str
    name: str
    queues: tuple[tuple[str, int], ...]


def _operators(
    operators: Sequence[OperatorConf], settings: Settings, known: tuple[str, ...] = QUEUES
) -> list[_Operator]:
    seen: set[str] = set()
    result = []
    for op in operators:
        login = _full(LOGIN_RE, op.sip_login, "SIP login")
        if login in RESERVED_LOGINS or login in (settings.hotline_number, settings.meters_number):
            raise ConfigError(f"SIP login {login!r} is reserved")
        if login in seen:
            raise ConfigError(f"SIP login {login!r} is listed twice")
        seen.add(login)
        if not isinstance(op.sip_password, str) or not PASSWORD_RE.fullmatch(op.sip_password):
            # Never echo the password itself.
            raise ConfigError(
                f"SIP password of {login!r} must be 8-128 characters of letters, digits"
                " and ._~!@#%^&*()+=:/?-"
            )
        queues = []
        for queue, penalty in op.queues:
            if queue not in known:
                raise ConfigError(f"operator {login!r}: unknown queue {queue!r}")
            if (
                not isinstance(penalty, int)
                or isinstance(penalty, bool)
                or not 0 <= penalty <= PENALTY_MAX
            ):
                raise ConfigError(
                    f"operator {login!r}: penalty {penalty!r} must be 0..{PENALTY_MAX}"
                )
            queues.append((queue, penalty))
        result.append(
            _Operator(login, op.sip_password, display_name(op.name, login), tuple(queues))
        )
    return result


def _queues(tenant_queues: Sequence[str] = ()) -> tuple[str, ...]:
    """The centre's queues, then the tenants' own (`t<id>_<service>`, from the store)."""
    for queue in QUEUES:
        _full(QUEUE_RE, queue, "queue name")
        if queue == "general":
            raise ConfigError(
                "a queue cannot be named 'general': app_queue reads [general] as its settings"
            )
    if "coordinator" not in QUEUES:
        raise ConfigError("the dialplan's fail-safe needs a 'coordinator' queue")
    own = []
    for queue in tenant_queues:
        if parse_tenant_queue(queue) is None:
            raise ConfigError(f"{queue!r} is not a tenant queue name (t<id>_<service>)")
        if queue not in own:
            own.append(queue)
    return (*QUEUES, *own)


def _dialled_numbers(numbers: Sequence[str], settings: Settings) -> list[str]:
    """The registered numbers [from-pstn] answers besides the hotline and meters numbers."""
    own = {settings.hotline_number, settings.meters_number}
    result = []
    for number in numbers:
        # The store allows * and # (tenants.clean_number); a trunk extension takes digits.
        if number in own or number in result or not NUMBER_RE.fullmatch(number):
            continue
        result.append(number)
    return result


def _check_rendered(value: Any) -> Any:
    """Jinja `finalize`: the last line of defence for every {{ value }} in every template."""
    text = str(value)
    for bad in _BAD_VALUE_CHARS:
        if bad in text:
            raise ConfigError(f"refusing to render {text[:40]!r}: it contains {bad!r}")
    return value


# --- rendering -------------------------------------------------------------------------------


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        finalize=_check_rendered,
    )


def voicemail_pin(settings: Settings) -> str:
    """An 8-digit mailbox PIN derived from the per-state-dir secret: no default credential."""
    digest = hmac.new(settings.ami_secret.encode(), b"hotline voicemail pin", hashlib.sha256)
    return f"{int(digest.hexdigest(), 16) % 10**8:08d}"


def template_context(
    settings: Settings,
    paths: AsteriskPaths,
    operators: Sequence[OperatorConf],
    moh_dir: str,
    banned: Sequence[str] = (),
    tenant_queues: Sequence[str] = (),
    dialled_numbers: Sequence[str] = (),
) -> dict[str, Any]:
    for field in ("etc", "spool", "log", "run", "lib", "recordings", "data", "modules"):
        config_path(getattr(paths, field), f"paths.{field}")
    if not settings.rtp_start < settings.rtp_end:
        raise ConfigError("rtp_start must be below rtp_end")
    if not 1 <= settings.queue_timeout <= 86400:
        raise ConfigError("queue_timeout must be 1..86400 seconds")
    ami_host = _bind_ip(settings.ami_host, "ami_host")
    ami_permit = {"127.0.0.1"}
    if not ipaddress.ip_address(ami_host).is_unspecified:
        ami_permit.add(ami_host)
    queues = _queues(tenant_queues)
    roster = _operators(operators, settings, queues)
    return {
        "paths": paths,
        # Asterisk's systemname in a cluster: unique call ids (linkedids) across nodes.
        "node": settings.node,
        # What Kamailio adds to the carrier's requests in a cluster (extensions [from-edge]).
        "edge_secret": settings.secrets["edge_secret"] if settings.node else "",
        "queues": queues,
        "operators": roster,
        "hotline_number": _full(NUMBER_RE, settings.hotline_number, "hotline_number"),
        "dialled_numbers": _dialled_numbers(dialled_numbers, settings),
        "meters_number": _meters_number(settings),
        **_dial_out(settings),
        "hotline_caller_id": _full(NUMBER_RE, settings.hotline_caller_id, "hotline_caller_id"),
        "default_language": _full(re.compile(r"[a-z]{2}"), settings.default_language, "language"),
        "sip_host": _bind_ip(settings.sip_host, "sip_host"),
        "sip_port": _port(settings.sip_port, "sip_port"),
        **_carrier(settings),
        "banned_networks": _banned(banned, settings),
        "pstn_host": _host(settings.pstn_host, "pstn_host"),
        "pstn_port": _port(settings.pstn_port, "pstn_port"),
        "rtp_start": _port(settings.rtp_start, "rtp_start"),
        "rtp_end": _port(settings.rtp_end, "rtp_end"),
        "ami_host": ami_host,
        "ami_port": _port(settings.ami_port, "ami_port"),
        "ami_permit": sorted(ami_permit),
        "ami_users": _ami_users(settings),
        "agi_host": _host(settings.agi_host, "agi_host"),
        "agi_port": _port(settings.agi_port, "agi_port"),
        "agi_addresses": _agi_addresses(settings),
        "queue_timeout": settings.queue_timeout,
        **_queue_behaviour(settings, paths, queues),
        "voicemail_pin": voicemail_pin(settings),
        "moh_dir": config_path(moh_dir, "music on hold folder"),
    }


def _agi_addresses(settings: Settings) -> list[str]:
    """The FastAGI pool as the dialplan tries it ("host:port", each checked)."""
    checked = []
    for address in settings.agi_addresses:
        host, _, port = address.rpartition(":")
        checked.append(f"{_host(host, 'agi_pool host')}:{_port(int(port), 'agi_pool port')}")
    return checked


def _dial_out(settings: Settings) -> dict[str, list[str]]:
    """The dial-out plan as extension patterns ([callback-plan], [callback-denied])."""
    try:
        plan = DialPlan.from_settings(settings)
        allowed, denied = plan.asterisk_patterns(), plan.asterisk_denied_patterns()
    except DialPlanError as exc:
        raise ConfigError(str(exc)) from exc
    if not allowed:
        raise ConfigError("the dial-out plan allows no number at all: check dial_out_* settings")
    for pattern in allowed + denied:
        _full(DIAL_PATTERN_RE, pattern, "dial-out pattern")
    return {"dial_out_allowed": allowed, "dial_out_denied": denied}


def _meters_number(settings: Settings) -> str | None:
    if not settings.meters_number:
        return None
    number = _full(NUMBER_RE, settings.meters_number, "meters_number")
    if number == settings.hotline_number:
        raise ConfigError("meters_number must differ from hotline_number")
    return number


def _queue_behaviour(
    settings: Settings, paths: AsteriskPaths, queues: tuple[str, ...]
) -> dict[str, Any]:
    """Overflow timeouts, wrap-up, queue length, recording and the virtual-hold prompt."""
    for name in ("coordinator_timeout", "wrapup_seconds", "queue_maxlen"):
        value = getattr(settings, name)
        if not isinstance(value, int) or not 0 <= value <= 86400:
            raise ConfigError(f"{name} must be 0..86400, got {value!r}")
    if settings.coordinator_timeout < 1:
        raise ConfigError("coordinator_timeout must be at least 1 second")
    unknown = [q for q in settings.record_queues if q not in queues]
    if unknown:
        raise ConfigError(f"record_queues: unknown queue(s) {', '.join(unknown)}")
    return {
        # A specialist queue overflows to the coordinator after queue_timeout; the coordinator
        # (reached directly or by overflow) keeps the caller up to coordinator_timeout.
        "queue_timeouts": {
            q: settings.coordinator_timeout if q == "coordinator" else settings.queue_timeout
            for q in queues
        },
        "wrapup_seconds": settings.wrapup_seconds,
        "queue_maxlen": settings.queue_maxlen,
        "callback_offer_seconds": settings.callback_offer_seconds,
        "record_queues": frozenset(settings.record_queues),
        # queues.conf takes no variables, but Asterisk puts the channel's language into a
        # sound path without one, before its last part (main/file.c, "old layout" for
        # absolute paths): .../prompts/queue_callback_offer plays
        # .../prompts/<caller's language>/queue_callback_offer.
        "callback_offer_prompt": config_path(
            f"{paths.recordings}/prompts/{CALLER_LANGUAGE_PROMPT}", "prompt path"
        ),
    }


def render_templates(context: dict[str, Any]) -> dict[str, str]:
    """{file name: text} for every asterisk_conf/*.conf.j2."""
    env = _environment()
    names = sorted(p.name for p in TEMPLATES_DIR.glob("*.conf.j2"))
    if not names:
        raise ConfigError(f"no templates in {TEMPLATES_DIR}")
    return {name.removesuffix(".j2"): env.get_template(name).render(context) for name in names}


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Atomic: a reload never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    give_to_folder_owner(tmp)  # the sandbox Asterisk's user owns etc/ (it must read this)
    tmp.replace(path)


def write_hold_music(path: Path, seconds: float = 12.0) -> None:
    """A quiet, slow arpeggio (8 kHz 16-bit mono WAV) for when no real music is installed.

    Debian's asterisk-moh-opsound-* is not in the sandbox root, so without this the `default`
    class would have no files and callers would wait in silence (and think they were cut off).
    """
    rate = 8000
    notes = (261.63, 329.63, 392.00, 523.25, 392.00, 329.63)  # C major, up and down
    note_len = seconds / len(notes)
    frames = bytearray()
    for freq in notes:
        n = int(rate * note_len)
        for i in range(n):
            t = i / rate
            envelope = min(1.0, t / 0.05) * math.exp(-2.5 * t / note_len)
            sample = (
                0.12
                * envelope
                * (math.sin(2 * math.pi * freq * t) + 0.3 * math.sin(4 * math.pi * freq * t))
            )
            frames += struct.pack("<h", int(max(-1.0, min(1.0, sample)) * 32767))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    give_to_folder_owner(tmp)
    tmp.replace(path)


def _moh_dir(settings: Settings, paths: AsteriskPaths) -> str:
    """recordings/moh if someone put music there, else a generated hold tone."""
    custom = settings.recordings_dir / "moh"
    if custom.is_dir() and any(p.suffix.lower() in AUDIO_SUFFIXES for p in custom.iterdir()):
        return f"{paths.recordings}/moh"
    generated = settings.asterisk_dir / "lib" / "moh" / "hotline-hold.wav"
    if not generated.exists():
        write_hold_music(generated)
    return f"{paths.lib}/moh"


def _link_voicemail(settings: Settings, paths: AsteriskPaths) -> None:
    """Voicemail lives in recordings/voicemail (the layout the rest of the project reads).

    app_voicemail always writes under <astspooldir>/voicemail, so that folder is a symlink to
    the recordings folder *as Asterisk sees it* (inside the sandbox root it dangles on the host,
    which is fine: only Asterisk follows it; host code reads settings.recordings_dir/voicemail).
    """
    (settings.recordings_dir / "voicemail").mkdir(parents=True, exist_ok=True)
    link = settings.asterisk_dir / "spool" / "voicemail"
    target = f"{paths.recordings}/voicemail"
    if link.is_symlink():
        if os.readlink(link) == target:
            return
        link.unlink()
    elif link.exists():
        return  # a real folder from an older layout: keep its messages, leave it alone
    link.symlink_to(target)


def render_config(
    settings: Settings,
    paths: AsteriskPaths,
    operators: Sequence[OperatorConf],
    banned: Sequence[str] = (),
    tenant_queues: Sequence[str] = (),
    dialled_numbers: Sequence[str] = (),
) -> Path:
    """Write settings.asterisk_dir/etc/*.conf; create spool/log/run/lib; return asterisk.conf."""
    base = settings.asterisk_dir
    for sub in ("etc", "spool", "log", "log/cdr-csv", "run", "lib"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    context = template_context(
        settings,
        paths,
        operators,
        _moh_dir(settings, paths),
        banned,
        tenant_queues=tenant_queues,
        dialled_numbers=dialled_numbers,
    )
    rendered = render_templates(context)
    etc = base / "etc"
    for name, text in rendered.items():
        # Credentials only in the two files that need them, and only readable by us.
        secret = name in {"manager.conf", "pjsip.conf", "voicemail.conf"}
        _write(etc / name, text, 0o600 if secret else 0o644)
    for stale in etc.glob("*.conf"):
        if stale.name not in rendered:
            stale.unlink()
    _link_voicemail(settings, paths)
    return etc / "asterisk.conf"
