"""SipBanGuard (call_router/sip_bans.py) on a real database (SQLite and PostgreSQL), fed plain
AMI security-event dicts: it bans at the threshold, applies the ACL only when the set of active
bans changes (a ban, a lift elsewhere, an expiry), and never bans a carrier address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from call_router import sip_bans
from call_router.ban_policy import BanRules, parse_networks
from call_router.db import Database

RULES = BanRules(threshold=3, window=timedelta(minutes=5), duration=timedelta(hours=1))
T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def failed(address: str, event: str = "ChallengeResponseFailed") -> dict[str, str]:
    return {"Event": event, "RemoteAddress": f"IPV4/UDP/{address}/5060", "Severity": "Error"}


async def test_the_guard_bans_applies_and_follows_lifts_and_expiry(database: Database) -> None:
    now = [T0]
    applied: list[list[str]] = []

    def apply() -> None:
        with database.session() as session:
            applied.append(sip_bans.active_addresses(session, now[0]))

    guard = sip_bans.SipBanGuard(
        database, RULES, parse_networks(["127.0.0.1"]), apply, clock=lambda: now[0]
    )
    await guard.sync()
    assert applied == [[]]

    for _ in range(2):
        await guard.on_event(failed("198.51.100.9"))
    await guard.on_event({"Event": "SuccessfulAuth", "RemoteAddress": "IPV4/UDP/198.51.100.9/5"})
    assert applied == [[]]
    await guard.on_event(failed("198.51.100.9", "InvalidAccountID"))
    assert applied == [[], ["198.51.100.9"]]

    # The carrier's address is never banned, however often it fails.
    for _ in range(10):
        await guard.on_event(failed("127.0.0.1"))
    await guard.sync()
    assert applied == [[], ["198.51.100.9"]]

    # Lifted elsewhere (CLI, dashboard): the next sync applies it.
    with database.session() as session:
        assert sip_bans.lift(session, "198.51.100.9", by="sup", now=now[0]) == 1
    await guard.sync()
    assert applied[-1] == []

    # Banned again, then the hour passes: the expiry is applied too.
    for _ in range(3):
        await guard.on_event(failed("198.51.100.9"))
    assert applied[-1] == ["198.51.100.9"]
    now[0] = T0 + timedelta(hours=1, seconds=1)
    await guard.sync()
    assert applied[-1] == []
    assert len(applied) == 5
