"""Brute-force protection for POST /login: failed sign-ins are counted per account and per
client address, in Redis, so every dashboard process on every box shares the counts.

Without denial of service: the account and address limits apply to untrusted clients only.
A browser that signed in to the account before carries a device cookie for it
(dashboard/device_trust.py, OWASP's device-cookie scheme); its attempts are counted per device
instead, so an attacker who exhausts `admin`'s limit from elsewhere does not lock the real
supervisor out of their own browser, and a stolen device cookie buys PER_DEVICE guesses only.
The client address is the TCP peer's unless the dashboard is told to trust a proxy
(HOTLINE_FORWARDED_ALLOW_IPS, dashboard/main.py): a forged X-Forwarded-For changes nothing.

The `limits` library does the counting (a moving window: "5 failures in any 15 minutes", not
a fixed clock window an attacker can straddle). In effect failures are counted: a success
clears the account's (and the device's) count, not the address's (one valid account must not
reset a guessing run from the same address). Usernames are counted whether or not they
exist, and as a digest, so the answer and the keys in Redis say nothing about which accounts
exist.

When Redis is down the counts fall back to this process's memory, with one warning per
outage, rather than failing open: an outage (or an attacker who can cause one) must not
switch the protection off, and a per-process count still bounds guessing to the limit times
the number of worker processes. Failing closed (refusing every sign-in) would lock out the
whole call centre because of a cache. Redis is retried after RETRY_REDIS_AFTER seconds.

An attempt takes its place under the account's (or the device's) limit before the password is
checked, in one atomic step (`reserve`): parallel guesses cannot all pass a check made before
any of them was counted (they did: 30 at once were 30 guesses where the limit is 5). The
address limit is checked first and counted on failure only (a success from a new browser at a
shared office address must not count), so a burst across many names can overshoot it by the
requests in flight, once per window; each of those guesses is still an argon2 verification.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter

from call_router import accounts

log = logging.getLogger(__name__)

PER_ACCOUNT = parse("5 per 15 minutes")
PER_ADDRESS = parse("20 per 15 minutes")
PER_DEVICE = parse("5 per 15 minutes")
RETRY_REDIS_AFTER = 30.0

T = TypeVar("T")


@dataclass(frozen=True)
class Locked:
    """Sign-ins refused for now; `seconds` until one more attempt is allowed."""

    seconds: int

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.seconds / 60))


def account_key(username: str) -> str:
    # Case-folded: "Admin" and "admin" are one guessing run. A digest: no name in Redis.
    return accounts.digest(username.strip().casefold())


class LoginThrottle:
    def __init__(
        self,
        redis_url: str,
        key_prefix: str,
        *,
        per_account: RateLimitItem = PER_ACCOUNT,
        per_address: RateLimitItem = PER_ADDRESS,
        per_device: RateLimitItem = PER_DEVICE,
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.per_device = per_device
        storage = RedisStorage(
            redis_url,
            key_prefix=f"{key_prefix}:login-throttle",
            wrap_exceptions=True,
            # Short: a hung Redis must not hold the sign-in page.
            socket_timeout=1,
            socket_connect_timeout=1,
        )
        self._shared = MovingWindowRateLimiter(storage)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._lock = threading.Lock()
        self._redis_down_since: float | None = None

    def _limiter(self) -> MovingWindowRateLimiter:
        with self._lock:
            down = self._redis_down_since
        if down is not None and time.monotonic() - down < RETRY_REDIS_AFTER:
            return self._local
        return self._shared

    def _run(self, action: Callable[[MovingWindowRateLimiter], T]) -> T:
        limiter = self._limiter()
        if limiter is self._local:
            return action(limiter)
        try:
            result = action(limiter)
        except StorageError as exc:
            with self._lock:
                first = self._redis_down_since is None
                self._redis_down_since = time.monotonic()
            if first:
                log.warning("login throttle: Redis unavailable (%s); counting in this process", exc)
            return action(self._local)
        with self._lock:
            if self._redis_down_since is not None:
                log.warning("login throttle: Redis is back; counting there again")
            self._redis_down_since = None
        return result

    def _locked(
        self, limiter: MovingWindowRateLimiter, item: RateLimitItem, kind: str, key: str
    ) -> Locked:
        wait = limiter.get_window_stats(item, kind, key).reset_time - time.time()
        return Locked(max(1, math.ceil(wait)))

    def reserve(self, username: str, address: str, device: str = "") -> Locked | None:
        """Take this attempt's place under the limits before its password is checked (a
        sign-in for this name from this address, from a known browser's `device` if any);
        Locked if it must be refused now. Then call `failed` or `succeeded`."""

        def take(limiter: MovingWindowRateLimiter) -> Locked | None:
            if device:  # a known browser (device_trust.DeviceTrust.device_for): its own count
                if not limiter.hit(self.per_device, "device", device):
                    return self._locked(limiter, self.per_device, "device", device)
                return None
            if not limiter.test(self.per_address, "address", address):
                return self._locked(limiter, self.per_address, "address", address)
            account = account_key(username)
            if not limiter.hit(self.per_account, "account", account):
                return self._locked(limiter, self.per_account, "account", account)
            return None

        return self._run(take)

    def failed(self, username: str, address: str, device: str = "") -> None:
        """A wrong password after `reserve`: the address counts it too (untrusted clients)."""
        if device:
            return

        def count(limiter: MovingWindowRateLimiter) -> None:
            limiter.hit(self.per_address, "address", address)

        self._run(count)

    def succeeded(self, username: str, device: str = "") -> None:
        """A right password: the account's (and this device's) failures are forgiven; the
        address's are not."""
        self.forget_account(username)
        if device:
            self._run(lambda limiter: limiter.clear(self.per_device, "device", device))

    def forget_account(self, username: str) -> None:
        """Clear an account's failures (a sign-in, or a supervisor setting a new password)."""

        def clear(limiter: MovingWindowRateLimiter) -> None:
            limiter.clear(self.per_account, "account", account_key(username))

        self._run(clear)
        if self._limiter() is self._shared:
            # Counted here during an outage? Forget that too.
            self._local.clear(self.per_account, "account", account_key(username))


_app_lock = threading.Lock()


def for_app(app: Any, redis_url: str, key_prefix: str) -> LoginThrottle:
    """The app's one throttle (made on first use: one Redis pool per dashboard process)."""
    with _app_lock:
        throttle: LoginThrottle | None = getattr(app.state, "login_throttle", None)
        if throttle is None:
            throttle = LoginThrottle(redis_url, key_prefix)
            app.state.login_throttle = throttle
        return throttle
