"""SIP brute force: wrong passwords from one address ban it, a supervisor lifts the ban.

SIPp on a second loopback address (127.0.0.2) REGISTERs an operator's login with a wrong
password until the router's threshold; then even the right password from there is refused
(the operator endpoints' ACL), while the same operator on 127.0.0.1 (the carrier's
address, never bannable) still registers. `hotline security unban` lets it back in.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from call_router.settings import Settings
from hotline.sipua.register import register_once
from hotline.sipua.testcall import place_call
from tests.conftest import add_operator, run_hotline, wait_for

pytestmark = pytest.mark.asterisk

ATTACKER = "127.0.0.2"


def _bans() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(run_hotline("security", "bans", "--json").stdout)
    return rows


def test_wrong_passwords_ban_the_address_until_it_is_unbanned(stack: Settings) -> None:
    operator = add_operator("Bruno Brute-Target", "coordinator")
    login, password = operator["sip_login"], operator["sip_password"]
    assert register_once(stack, login, password, local_ip=ATTACKER) == 200

    for attempt in range(stack.sip_ban_threshold):
        status = register_once(stack, login, "not-the-password-1", local_ip=ATTACKER)
        assert status in (401, 403), f"attempt {attempt}: {status}"
    ban = wait_for(
        lambda: [b for b in _bans() if b["address"] == ATTACKER], what="the attacker's ban"
    )[0]
    assert ban["failures"] >= stack.sip_ban_threshold
    assert ban["reason"] == "ChallengeResponseFailed"

    # The right password no longer helps from there once Asterisk has the ACL (it answers a
    # request that fails the endpoint ACL like a failed password, telling the attacker nothing)
    wait_for(
        lambda: register_once(stack, login, password, local_ip=ATTACKER) in (401, 403),
        timeout=30,
        what="the banned address refused",
    )
    # ... while the same operator (and the carrier) on 127.0.0.1 are not affected.
    assert register_once(stack, login, password) == 200
    assert all(b["address"] != "127.0.0.1" for b in _bans())

    out = run_hotline("security", "unban", ATTACKER).stdout
    assert f"{ATTACKER} unbanned" in out
    assert _bans() == [] or all(b["address"] != ATTACKER for b in _bans())
    assert register_once(stack, login, password, local_ip=ATTACKER) == 200

    missing = run_hotline("security", "unban", ATTACKER, check=False)
    assert missing.returncode == 1 and "not banned" in missing.stderr


def test_a_scanner_trying_names_is_banned_too(stack: Settings) -> None:
    scanner = "127.0.0.4"
    for attempt in range(stack.sip_ban_threshold):
        result = place_call(stack, from_number=f"98765{attempt}", hold=1, local_ip=scanner)
        assert not result.answered, result.detail
    ban = wait_for(
        lambda: [b for b in _bans() if b["address"] == scanner], what="the scanner's ban"
    )[0]
    assert ban["reason"] == "InvalidAccountID"
    run_hotline("security", "unban", scanner)
