"""Counting failed SIP authentications per address (call_router/ban_policy.py): plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from call_router.ban_policy import (
    BanRules,
    FailureCounter,
    host_network,
    is_protected,
    parse_networks,
    source_address,
)

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
RULES = BanRules(threshold=3, window=timedelta(minutes=5), duration=timedelta(hours=1))
CARRIER = parse_networks(["127.0.0.1", "10.20.0.0/16"])


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_threshold_within_the_window_bans() -> None:
    counter = FailureCounter(RULES, CARRIER)
    assert counter.failure("203.0.113.5", at(0)) is None
    assert counter.failure("203.0.113.5", at(10)) is None
    assert counter.failure("203.0.113.5", at(20)) == 3


def test_failures_that_left_the_window_do_not_count() -> None:
    counter = FailureCounter(RULES, CARRIER)
    counter.failure("203.0.113.5", at(0))
    counter.failure("203.0.113.5", at(100))
    # The first failure is exactly one window old at 300 s: it no longer counts.
    assert counter.failure("203.0.113.5", at(300)) is None
    assert counter.tracked("203.0.113.5") == 2
    assert counter.failure("203.0.113.5", at(301)) == 3


def test_addresses_are_counted_apart() -> None:
    counter = FailureCounter(RULES, CARRIER)
    for i in range(2):
        assert counter.failure("203.0.113.5", at(i)) is None
        assert counter.failure("203.0.113.6", at(i)) is None
    assert counter.failure("203.0.113.6", at(5)) == 3
    assert counter.tracked("203.0.113.5") == 2


def test_a_ban_starts_the_count_afresh_and_forget_clears_it() -> None:
    counter = FailureCounter(RULES, CARRIER)
    for i in range(3):
        counter.failure("203.0.113.5", at(i))
    assert counter.tracked("203.0.113.5") == 0
    counter.failure("203.0.113.5", at(10))
    counter.forget("203.0.113.5")
    assert counter.tracked("203.0.113.5") == 0


def test_carrier_addresses_are_never_counted() -> None:
    counter = FailureCounter(RULES, CARRIER)
    for i in range(10):
        assert counter.failure("127.0.0.1", at(i)) is None
        assert counter.failure("10.20.3.4", at(i)) is None
    assert counter.tracked("127.0.0.1") == 0
    assert is_protected("10.20.255.1", CARRIER)
    assert not is_protected("127.0.0.2", CARRIER)
    assert not is_protected("::1", CARRIER)


def test_prune_drops_quiet_addresses() -> None:
    counter = FailureCounter(RULES, CARRIER)
    counter.failure("203.0.113.5", at(0))
    counter.failure("203.0.113.6", at(200))
    counter.prune(at(400))
    assert counter.tracked("203.0.113.5") == 0
    assert counter.tracked("203.0.113.6") == 1


def test_source_address_reads_asterisk_remote_address() -> None:
    assert source_address({"RemoteAddress": "IPV4/UDP/203.0.113.5/5060"}) == "203.0.113.5"
    assert source_address({"RemoteAddress": "IPV6/UDP/2001:db8::1/5060"}) == "2001:db8::1"
    assert source_address({"RemoteAddress": "IPV4/UDP/not-an-ip/5060"}) is None
    assert source_address({}) is None


def test_host_network_and_parse_networks() -> None:
    assert host_network("203.0.113.5") == "203.0.113.5/32"
    assert host_network("2001:db8::1") == "2001:db8::1/128"
    with pytest.raises(ValueError, match="carrier.example"):
        parse_networks(["carrier.example"])


def test_rules_must_make_sense() -> None:
    with pytest.raises(ValueError):
        BanRules(threshold=0, window=timedelta(minutes=5), duration=timedelta(hours=1))
    with pytest.raises(ValueError):
        BanRules(threshold=3, window=timedelta(0), duration=timedelta(hours=1))
