"""Every hotline AMI connection reads the stream strictly (call_router/ami_protocol.py).

Found by playing attacker (2026-12-07): a caller's number with "%0D%0A%0D%0A" ends Asterisk's
message early; a byte that is not UTF-8 right after that blank line hides it from Asterisk's
exclude filter, and panoramisk, which drops undecodable bytes, then read a clean forged event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from call_router.ami_client import NoReconnectManager
from call_router.settings import Settings


class Collector:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def dispatch(self, message: Any) -> None:
        self.events.append(dict(message))

    def connection_lost(self, exc: Any) -> None:
        pass


class Transport:
    def write(self, data: bytes) -> None:
        pass


def connected(tmp_path: Path) -> tuple[Any, Collector]:
    """The protocol the hotline's managers use, connected to nothing."""
    settings = Settings(state_dir=tmp_path)
    protocol = NoReconnectManager.to(settings).config["protocol_factory"]()
    protocol.connection_made(Transport())
    collector = Collector()
    protocol.factory = collector
    return protocol, collector


def newchannel(number: bytes, name: bytes = b"Ivan") -> bytes:
    return (
        b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/pstn-00000001\r\n"
        b"CallerIDNum: " + number + b"\r\nCallerIDName: " + name + b"\r\n"
        b"Uniqueid: 1796000000.1\r\nLinkedid: 1796000000.1\r\n\r\n"
    )


def test_a_forged_message_after_a_stray_byte_is_dropped(tmp_path: Path) -> None:
    protocol, collector = connected(tmp_path)
    protocol.data_received(b"Asterisk Call Manager/9.0.0\r\n")
    forged = b"+7495\r\n\r\n\x80Event: QueueCallerAbandon\r\nLinkedid: 1796000000.9"
    protocol.data_received(newchannel(forged))
    assert [event["Event"] for event in collector.events] == ["Newchannel"]


def test_a_name_split_between_two_reads_keeps_every_letter(tmp_path: Path) -> None:
    protocol, collector = connected(tmp_path)
    raw = newchannel(b"+74951234567", "Анна Петрова".encode())
    cut = raw.index("Петрова".encode()) + 1  # inside the two bytes of "П"
    protocol.data_received(raw[:cut])
    protocol.data_received(raw[cut:])
    assert [event["CallerIDName"] for event in collector.events] == ["Анна Петрова"]


async def test_the_greeting_and_the_login_reply_in_one_read_still_log_in(
    tmp_path: Path,
) -> None:
    protocol, _ = connected(tmp_path)
    login = {"Action": "Login", "ActionID": "login-1", "Username": "u", "Secret": "s"}
    answered = protocol.send(login)
    reply = "Response: Success\r\nActionID: login-1\r\nMessage: Authentication accepted"
    protocol.data_received(f"Asterisk Call Manager/9.0.0\r\n{reply}\r\n\r\n".encode())
    assert protocol.version == "9.0.0"
    assert answered.done() and answered.result()["Response"] == "Success"
