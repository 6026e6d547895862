"""What may go into the Asterisk configuration: the patterns of names, numbers, hosts and
secrets, and the checks every value passes before it is rendered (ConfigError otherwise), down
to the Jinja `finalize` that refuses a newline or `;` in any rendered value."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from call_router.ban_policy import host_network, is_protected
from call_router.operators import PENALTY_MAX, RESERVED_LOGINS
from call_router.settings import QUEUES, Settings
from call_router.sip_bans import carrier_entries, carrier_networks
from call_router.tenant_routing import parse_tenant_queue

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


class ConfigError(ValueError):
    """A value that must not go into the Asterisk configuration."""


@dataclass(frozen=True)
class OperatorConf:
    sip_login: str
    sip_password: str
    name: str
    queues: tuple[tuple[str, int], ...]  # (queue, penalty)


def must_match(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(f"{what} {value!r} is not allowed in the Asterisk config")
    return value


def ip_text(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError(f"{what} must be an IP address, got {value!r}") from None


def bind_ip(value: str, what: str) -> str:
    return "127.0.0.1" if value == "localhost" else ip_text(value, what)


def host_name(value: str, what: str) -> str:
    return must_match(HOST_RE, value, what)


def port_number(value: int, what: str) -> int:
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(f"{what} must be a port number, got {value!r}")
    return value


def carrier_entry(value: str) -> str:
    """One pstn_match entry: an IP, a CIDR or a host name (pjsip identify `match`)."""
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        return host_name(value, "pstn_match")


def carrier(settings: Settings) -> dict[str, list[str]]:
    """The trunk's identify `match` entries and its ACL (host names resolved to addresses)."""
    entries = [carrier_entry(entry) for entry in carrier_entries(settings)]
    if not entries:
        raise ConfigError("pstn_match must name at least one carrier address")
    try:
        networks = carrier_networks(settings)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return {"carrier_match": entries, "carrier_networks": [str(net) for net in networks]}


def banned_acl(addresses: Sequence[str], settings: Settings) -> list[str]:
    """ACL entries for banned addresses; a carrier address is never one of them."""
    protected = carrier_networks(settings)
    valid = [ip_text(address, "banned address") for address in addresses]
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
class CheckedOperator:
    login: str
    password: str
    name: str
    queues: tuple[tuple[str, int], ...]


def checked_operators(
    operators: Sequence[OperatorConf], settings: Settings, known: tuple[str, ...] = QUEUES
) -> list[CheckedOperator]:
    seen: set[str] = set()
    result = []
    for op in operators:
        login = must_match(LOGIN_RE, op.sip_login, "SIP login")
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
            CheckedOperator(login, op.sip_password, display_name(op.name, login), tuple(queues))
        )
    return result


def checked_queues(tenant_queues: Sequence[str] = ()) -> tuple[str, ...]:
    """The centre's queues, then the tenants' own (`t<id>_<service>`, from the store)."""
    for queue in QUEUES:
        must_match(QUEUE_RE, queue, "queue name")
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


def extra_numbers(numbers: Sequence[str], settings: Settings) -> list[str]:
    """The registered numbers [from-pstn] answers besides the hotline and meters numbers."""
    own = {settings.hotline_number, settings.meters_number}
    result = []
    for number in numbers:
        # The store allows * and # (tenants.clean_number); a trunk extension takes digits.
        if number in own or number in result or not NUMBER_RE.fullmatch(number):
            continue
        result.append(number)
    return result


def check_rendered(value: Any) -> Any:
    """Jinja `finalize`: the last line of defence for every {{ value }} in every template."""
    text = str(value)
    for bad in _BAD_VALUE_CHARS:
        if bad in text:
            raise ConfigError(f"refusing to render {text[:40]!r}: it contains {bad!r}")
    return value
