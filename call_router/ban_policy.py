"""When a SIP source address gets banned: failures counted per address in a sliding window.

Pure (no I/O): the router feeds it Asterisk's security events (call_router/sip_bans.py) and
stores what it decides. Carrier addresses are protected: the trunk has no password, so its
address must never be locked out by failures that someone else (or a misconfigured operator
phone on the same host) caused there.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Asterisk security events (class "security") that mean "someone tried credentials or names
# that are wrong". PJSIP sends ChallengeResponseFailed for a wrong password, InvalidAccountID
# for a request that matches no endpoint; InvalidPassword is the older channel drivers' name
# for the same failure. FailedACL is not counted: that address is refused already.
FAILURE_EVENTS = frozenset({"ChallengeResponseFailed", "InvalidPassword", "InvalidAccountID"})
# How many addresses are tracked at most: a spray from many addresses cannot grow memory
# without bound (the oldest are forgotten first).
MAX_TRACKED = 100_000


@dataclass(frozen=True)
class BanRules:
    threshold: int  # failures within `window` that ban
    window: timedelta
    duration: timedelta  # how long a ban lasts

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("the ban threshold must be at least 1")
        if self.window <= timedelta(0) or self.duration <= timedelta(0):
            raise ValueError("the ban window and duration must be positive")


def source_address(event: Mapping[str, str]) -> str | None:
    """The remote IP of a security event (`RemoteAddress: IPV4/UDP/203.0.113.5/5060`)."""
    parts = event.get("RemoteAddress", "").split("/")
    if len(parts) < 3:
        return None
    try:
        return str(ipaddress.ip_address(parts[2]))
    except ValueError:
        return None


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """IP addresses or CIDR networks; ValueError names the one that is neither."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network") from None
    return tuple(networks)


def is_protected(address: str, protected: Iterable[IPNetwork]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in protected)


def host_network(address: str) -> str:
    """The ACL entry for one address: 203.0.113.5/32, 2001:db8::1/128."""
    ip = ipaddress.ip_address(address)
    return f"{ip}/{ip.max_prefixlen}"


class FailureCounter:
    """Failures per source address; `failure` says when one reaches the threshold."""

    def __init__(self, rules: BanRules, protected: Iterable[IPNetwork] = ()) -> None:
        self.rules = rules
        self._protected = tuple(protected)
        self._seen: dict[str, deque[datetime]] = {}

    def failure(self, address: str, at: datetime) -> int | None:
        """Count one failure; the number in the window when it reaches the threshold (ban
        now), else None. A protected address is never counted, and a ban starts afresh."""
        if is_protected(address, self._protected):
            return None
        times = self._seen.pop(address, None) or deque()
        self._seen[address] = times  # re-inserted: dict order is least recently failed first
        times.append(at)
        while times and times[0] <= at - self.rules.window:
            times.popleft()
        if len(self._seen) > MAX_TRACKED:
            del self._seen[next(iter(self._seen))]
        if len(times) >= self.rules.threshold:
            del self._seen[address]
            return len(times)
        return None

    def forget(self, address: str) -> None:
        self._seen.pop(address, None)

    def prune(self, now: datetime) -> None:
        """Drop addresses whose last failure left the window."""
        stale = [a for a, times in self._seen.items() if times[-1] <= now - self.rules.window]
        for address in stale:
            del self._seen[address]

    def tracked(self, address: str) -> int:
        return len(self._seen.get(address, ()))
