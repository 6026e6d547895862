"""SIP brute-force protection: Asterisk's security events → bans in the database → PJSIP ACL.

The router hands every failed-authentication event to `SipBanGuard`; an address that reaches
the threshold (call_router/ban_policy.py) gets a row in `sip_bans`. The database is the one
truth, so every process and box agrees and bans survive restarts; the guard re-applies the set
of active bans (`apply`, handed in by the `hotline` CLI: re-render pjsip.conf, where each
operator endpoint gets `deny = <address>`, and reload res_pjsip) whenever it changes, which
also covers expiry and a supervisor lifting a ban from the CLI or the dashboard.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from call_router.ban_policy import (
    FAILURE_EVENTS,
    BanRules,
    FailureCounter,
    IPNetwork,
    is_protected,
    parse_networks,
    source_address,
)
from call_router.db import Database
from call_router.models import utcnow
from call_router.settings import Settings
from call_router.sip_ban_models import SipBan

log = structlog.get_logger(__name__)

# How often the guard checks for bans that expired or were lifted elsewhere.
SYNC_INTERVAL = 2.0


class ProtectedAddress(ValueError):
    """A carrier address: it is never banned."""


def rules_of(settings: Settings) -> BanRules | None:
    """The ban rules from settings; None when protection is off (threshold 0)."""
    if settings.sip_ban_threshold == 0:
        return None
    return BanRules(
        threshold=settings.sip_ban_threshold,
        window=timedelta(seconds=settings.sip_ban_window_seconds),
        duration=timedelta(seconds=settings.sip_ban_seconds),
    )


def carrier_entries(settings: Settings) -> list[str]:
    """settings.pstn_match split into its entries (IPs, networks, host names)."""
    return [entry.strip() for entry in settings.pstn_match.split(",") if entry.strip()]


def carrier_networks(settings: Settings) -> tuple[IPNetwork, ...]:
    """Every carrier address as a network; host names are resolved now (DNS)."""
    networks: list[str] = []
    for entry in carrier_entries(settings):
        try:
            parse_networks([entry])
            networks.append(entry)
        except ValueError:
            try:
                infos = socket.getaddrinfo(entry, None, proto=socket.IPPROTO_UDP)
            except OSError as exc:
                raise ValueError(f"carrier host {entry!r} does not resolve: {exc}") from None
            networks += sorted({str(info[4][0]) for info in infos})
    return parse_networks(networks)


# --- the store -------------------------------------------------------------------------------


def active_bans(session: Session, now: datetime) -> list[SipBan]:
    rows = session.scalars(
        select(SipBan)
        .where(SipBan.lifted_at.is_(None), SipBan.expires_at > now)
        .order_by(SipBan.banned_at, SipBan.id)
    )
    return list(rows)


def active_addresses(session: Session, now: datetime) -> list[str]:
    return sorted({ban.address for ban in active_bans(session, now)})


def record_ban(
    session: Session,
    address: str,
    *,
    now: datetime,
    duration: timedelta,
    failures: int,
    reason: str,
    protected: tuple[IPNetwork, ...],
) -> SipBan | None:
    """Ban `address` until now + duration; None if it is banned already."""
    if is_protected(address, protected):
        raise ProtectedAddress(f"{address} is a carrier address: it is never banned")
    if any(ban.address == address for ban in active_bans(session, now)):
        return None
    ban = SipBan(
        address=address,
        reason=reason[:64],
        failures=failures,
        banned_at=now,
        expires_at=now + duration,
    )
    session.add(ban)
    session.flush()
    return ban


def lift(session: Session, address: str, *, by: str, now: datetime) -> int:
    """End the address's active ban(s) now; how many there were."""
    result = session.execute(
        update(SipBan)
        .where(SipBan.address == address, SipBan.lifted_at.is_(None), SipBan.expires_at > now)
        .values(lifted_at=now, lifted_by=by[:64])
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def ban_dict(ban: SipBan) -> dict[str, Any]:
    return {
        "address": ban.address,
        "reason": ban.reason,
        "failures": ban.failures,
        "banned_at": ban.banned_at.isoformat(),
        "expires_at": ban.expires_at.isoformat(),
    }


# --- the guard in the router -----------------------------------------------------------------

Apply = Callable[[], None]


class SipBanGuard:
    """Counts failures from security events, records bans, keeps Asterisk's ACL in step."""

    def __init__(
        self,
        db: Database,
        rules: BanRules,
        protected: tuple[IPNetwork, ...],
        apply: Apply | None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._rules = rules
        self._protected = protected
        self._apply = apply
        self._clock = clock
        self._counter = FailureCounter(rules, protected)
        self._applied: list[str] | None = None  # unknown until the first sync
        self._lock = asyncio.Lock()

    async def on_event(self, event: Mapping[str, str]) -> None:
        name = event.get("Event", "")
        if name not in FAILURE_EVENTS:
            return
        address = source_address(event)
        if address is None:
            return
        now = self._clock()
        failures = self._counter.failure(address, now)
        if failures is None:
            if is_protected(address, self._protected):
                log.warning("sip_failure_from_carrier", address=address, ami_event=name)
            return
        ban = await asyncio.to_thread(self._record, address, now, failures, name)
        if ban is not None:
            log.warning("sip_address_banned", address=address, failures=failures, reason=name)
        await self.sync()

    def _record(self, address: str, now: datetime, failures: int, reason: str) -> int | None:
        with self._db.session() as session:
            ban = record_ban(
                session,
                address,
                now=now,
                duration=self._rules.duration,
                failures=failures,
                reason=reason,
                protected=self._protected,
            )
            return ban.id if ban is not None else None

    async def sync(self) -> None:
        """Apply the active bans if they changed since the last time."""
        async with self._lock:
            now = self._clock()
            self._counter.prune(now)
            addresses = await asyncio.to_thread(self._active, now)
            if addresses == self._applied:
                return
            if self._apply is not None:
                await asyncio.to_thread(self._apply)
            if self._applied is not None:
                for address in set(self._applied) - set(addresses):
                    self._counter.forget(address)
            log.info("sip_bans_applied", addresses=addresses)
            self._applied = addresses

    def _active(self, now: datetime) -> list[str]:
        with self._db.session() as session:
            return active_addresses(session, now)

    async def run(self) -> None:
        """Forever: keep Asterisk's ACL equal to the active bans (expiry, lifted elsewhere)."""
        while True:
            try:
                await self.sync()
            except Exception:  # a failed reload is retried on the next round
                log.exception("sip_bans_sync_failed")
                self._applied = None
            await asyncio.sleep(SYNC_INTERVAL)
