"""Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): a browser
that once signed in to an account keeps a signed cookie saying so, and sign-ins to that account
from it are not subject to the account's lock-out (dashboard/login_throttle.py).

Why: a per-account lock-out is a denial of service by design: anyone who can reach /login can
fail five times for `admin` and keep the supervisors out. With device cookies the lock-out
applies only to browsers that never signed in to the account ("untrusted clients"); a known
browser's failures are counted per device cookie instead, so a stolen cookie buys no more
guesses than the account's own limit, and the right password from a known browser still works
while an attacker holds the account's lock-out.

An entry is `<account>.<issued>.<nonce>.<mac>`: `account` is the digest of the case-folded
user name (the cookie names nobody), `issued` a Unix time (entries older than LIFETIME are
ignored), `mac` an HMAC-SHA256 over the rest with a per-installation key kept in the state
folder's secrets.json. One cookie holds the entries of the last MAX_ENTRIES accounts signed in
from that browser (a shared desk: a supervisor and an operator).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from call_router import accounts

DEVICE_COOKIE = "hotline_device"
LIFETIME = timedelta(days=180)
MAX_ENTRIES = 4
_ENTRIES_SEP = "~"
_FIELD_SEP = "."
# The digest is 64 hex characters; 32 keep entries short and still never collide in practice.
_ACCOUNT_CHARS = 32


def _account(username: str) -> str:
    return accounts.digest(username.strip().casefold())[:_ACCOUNT_CHARS]


@dataclass(frozen=True)
class DeviceTrust:
    key: bytes

    def _mac(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()

    def _entries(self, cookie: str | None, now: float) -> list[tuple[str, str]]:
        """The cookie's valid entries as (account, entry), newest last."""
        valid = []
        for entry in (cookie or "").split(_ENTRIES_SEP)[-MAX_ENTRIES:]:
            fields = entry.split(_FIELD_SEP)
            if len(fields) != 4:
                continue
            account, issued, nonce, mac = fields
            payload = _FIELD_SEP.join((account, issued, nonce))
            if not hmac.compare_digest(mac, self._mac(payload)):
                continue
            if not issued.isdigit() or now - int(issued) > LIFETIME.total_seconds():
                continue
            valid.append((account, entry))
        return valid

    def device_for(self, cookie: str | None, username: str, *, now: float | None = None) -> str:
        """The device's id for `username` if this cookie proves the browser signed in to that
        account before (a value to count failures under), else "" (an untrusted client)."""
        account = _account(username)
        now = time.time() if now is None else now
        for owner, entry in self._entries(cookie, now):
            if owner == account:
                return accounts.digest(entry)
        return ""

    def issue(self, cookie: str | None, username: str, *, now: float | None = None) -> str:
        """The cookie to set after a successful sign-in: a fresh entry for `username`, plus
        the other accounts' still valid entries."""
        account = _account(username)
        now = time.time() if now is None else now
        payload = _FIELD_SEP.join((account, str(int(now)), secrets.token_urlsafe(16)))
        fresh = f"{payload}{_FIELD_SEP}{self._mac(payload)}"
        others = [entry for owner, entry in self._entries(cookie, now) if owner != account]
        return _ENTRIES_SEP.join([*others[-(MAX_ENTRIES - 1) :], fresh])
