"""A stranger cannot forge AMI events (found by playing attacker, 2026-12-07).

Asterisk writes AMI header values raw: a security event's AccountID is the From header's user
part of a request from an unknown address, URI-unescaped by pjsip ("%0D%0A" is CR LF). A
blank line in it ends the genuine InvalidAccountID early and what follows reads, to the
router's AMI client (panoramisk) as to this test's, as an event of its own: a forged
QueueCallerAbandon, AgentRingNoAnswer, ... Every hotline AMI user that reads events now has
an exclude filter that drops an event with a blank line inside (manager.conf.j2).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable

import pytest

from call_router.settings import Settings
from hotline.sipua.testcall import place_call
from tests.integration.test_asterisk_sandbox import login

pytestmark = pytest.mark.asterisk

# A loopback address of its own: the SIP-ban tests ban and unban 127.0.0.2 and 127.0.0.4.
STRANGER = "127.0.0.9"


def _send_options(settings: Settings, from_user: str) -> None:
    """One SIP OPTIONS from the stranger's address; its From user is sent as given (already
    URI-escaped). Asterisk has no endpoint for it: InvalidAccountID with that user."""
    branch, call_id = uuid.uuid4().hex, uuid.uuid4().hex
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((STRANGER, 0))
        port = sock.getsockname()[1]
        target = f"{settings.sip_host}:{settings.sip_port}"
        request = (
            f"OPTIONS sip:hotline@{target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {STRANGER}:{port};branch=z9hG4bK{branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{from_user}@{STRANGER}>;tag={branch[:10]}\r\n"
            f"To: <sip:hotline@{target}>\r\n"
            f"Call-ID: {call_id}@{STRANGER}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), (settings.sip_host, settings.sip_port))


def test_a_strangers_from_user_forges_no_event_for_the_router(stack: Settings) -> None:
    events, reply = login(stack, role="router")
    assert reply["Response"] == "Success", reply
    try:
        token = uuid.uuid4().hex[:6]
        # "\r\n\r\nEvent: Forged\r\nX: <token>": 28 characters, pjsip's name[36] keeps them all.
        _send_options(stack, f"%0D%0A%0D%0AEvent%3A%20Forged%0D%0AX%3A%20{token}")
        # Then an ordinary unknown name from the same address: its InvalidAccountID comes
        # after whatever the first request produced (one event queue, in order).
        probe = f"probe{token}"
        _send_options(stack, probe)
        seen: list[dict[str, str]] = []

        def probe_arrived(event: dict[str, str]) -> bool:
            seen.append(event)
            return event.get("Event") == "InvalidAccountID" and event.get("AccountID") == probe

        events.wait_event(probe_arrived, timeout=30, what="the probe's InvalidAccountID")
        forged = [e for e in seen if e.get("Event") == "Forged" or e.get("X") == token]
        assert forged == [], forged
    finally:
        events.close()


def test_a_callers_number_forges_no_event_and_a_cyrillic_name_still_arrives(
    stack: Settings,
) -> None:
    """The carrier's caller ID reaches Newchannel's CallerIDNum raw (before the dialplan
    filters it); the exclude filters must not drop an honest caller's Cyrillic name."""
    events, reply = login(stack, role="router")
    assert reply["Response"] == "Success", reply
    try:
        token = uuid.uuid4().hex[:6]
        seen: list[dict[str, str]] = []

        def hangup_of(number: str) -> Callable[[dict[str, str]], bool]:
            def match(event: dict[str, str]) -> bool:
                seen.append(event)
                return event.get("Event") == "Hangup" and event.get("CallerIDNum") == number

            return match

        forged = f"+7495\r\n\r\nEvent: Forged\r\nX: {token}"
        result = place_call(stack, from_number=forged, hold=1)
        assert result.answered, result.detail
        # By its Hangup the dialplan has stripped the number (extensions.conf.j2).
        events.wait_event(hangup_of(f"+7495EventForgedX{token}"), what="the forger's Hangup")
        assert [e for e in seen if e.get("Event") == "Forged" or e.get("X") == token] == []

        name = "Ольга Петровна"
        result = place_call(stack, from_number=f"7495{token}", from_name=name, hold=1)
        assert result.answered, result.detail
        newchannel = events.wait_event(
            lambda e: e.get("Event") == "Newchannel" and e.get("CallerIDNum") == f"7495{token}",
            what="the honest caller's Newchannel",
        )
        assert newchannel["CallerIDName"] == name
    finally:
        events.close()
