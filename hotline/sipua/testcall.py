"""The test caller behind `hotline call`: one inbound carrier call placed with SIPp.

It plays the carrier trunk (endpoint ``pstn``, identified by source address
127.0.0.1): INVITE with PCMU + telephone-event, wait ``dtmf_delay`` seconds after
the answer, send the caller's media (optional audio, then RFC 4733 digits), keep
the call up, then BYE. A far-end BYE at any point is answered with 200 OK.
Caller ID is attacker-controlled in real life, so any display name and number
can be sent (they are quoted/escaped per RFC 3261, never trusted).
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from call_router.settings import Settings
from hotline.sipua.rootexec import find_program, remove_workdir
from hotline.sipua.rtp_pcap import caller_media, iter_valid_dtmf, write_pcap

ANONYMOUS_NAME = "Anonymous"
ANONYMOUS_URI = "sip:anonymous@anonymous.invalid"
# RFC 3261 user part: unreserved / escaped / user-unreserved; anything else is %-escaped.
_USER_SAFE = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]")
# Seconds SIPp may take beyond the planned call length (ringing, queue wait, BYE).
SLACK_SECONDS = 60.0


@dataclass
class CallResult:
    answered: bool
    sip_status: int | None  # final response to the INVITE
    call_id: str | None  # SIP Call-ID
    duration: float
    detail: str
    remote_hangup: bool = False  # the far end sent BYE
    sip_log: str = field(default="", repr=False)  # SIPp's -trace_msg log of the call


def quote_display_name(name: str) -> str:
    """A SIP quoted-string: backslash-escape \\ and ", drop CR/LF and other controls."""
    cleaned = "".join(ch for ch in name if ch == "\t" or ord(ch) >= 0x20 and ord(ch) != 0x7F)
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def escape_user(user: str) -> str:
    return "".join(
        ch if _USER_SAFE.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode()) for ch in user
    )


def from_header(from_number: str | None, from_name: str | None) -> str:
    """The From value without tag (SIPp appends it)."""
    if from_number is None:
        return f"{quote_display_name(from_name or ANONYMOUS_NAME)} <{ANONYMOUS_URI}>"
    uri = f"<sip:{escape_user(from_number)}@127.0.0.1>"
    return f"{quote_display_name(from_name)} {uri}" if from_name is not None else uri


def free_udp_port(even: bool = False) -> int:
    """An unused UDP port on 127.0.0.1 (RTP wants an even one, RTCP takes the next)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if not even or (port % 2 == 0 and _udp_port_free(port + 1)):
            return port
    raise RuntimeError("no free UDP port found")


def _udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_REINVITE_ANSWER = """
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[contact_user]@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 2 IN IP[local_ip_type] [local_ip]
      s=hotline-testcall
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
      a=ptime:20
      a=sendrecv
"""


def _wait_block(name: str, seconds: float) -> str:
    """Stay in the call `seconds`, answering re-INVITEs (which restart the wait) and BYE."""
    ms = max(1, round(seconds * 1000))
    return (
        f'  <label id="{name}"/>\n'
        f'  <recv request="INVITE" optional="true" timeout="{ms}" ontimeout="{name}_end"'
        f' next="{name}_reinvite"/>\n'
        '  <recv request="BYE" next="remote_bye"/>\n'
        f'  <label id="{name}_reinvite"/>\n'
        f"  <send><![CDATA[\n{_REINVITE_ANSWER}\n    ]]></send>\n"
        f'  <recv request="ACK" next="{name}"/>\n'
        f'  <label id="{name}_end"/>\n'
    )


def _media_block(pcap_inside: str | None, delay: float, media: float, hold: float) -> str:
    """Timeline after the ACK: wait, play the caller's media, stay until `hold` has passed."""
    steps = [_wait_block("wait_media", delay)] if delay > 0 else []
    if pcap_inside is not None:
        # play_pcap_audio returns at once; the wait lets the packets go out.
        steps.append(f'  <nop><action><exec play_pcap_audio="{pcap_inside}"/></action></nop>\n')
        steps.append(_wait_block("wait_playing", media + 0.2))
    rest = hold - delay - (media + 0.2 if pcap_inside else 0.0)
    if rest > 0:
        steps.append(_wait_block("wait_hold", rest))
    return "".join(steps)


def _scenario_text(privacy: bool, media_block: str) -> str:
    template = resources.files("hotline.sipua").joinpath("scenarios/uac.xml").read_text()
    privacy_line = "      Privacy: id" if privacy else ""
    return template.replace("@PRIVACY@\n", privacy_line + "\n" if privacy else "").replace(
        "@MEDIA@", media_block
    )


def parse_messages(log: str) -> tuple[int | None, str | None, bool]:
    """From SIPp's -trace_msg log: final INVITE status, Call-ID, did the far end BYE."""
    status: int | None = None
    call_id: str | None = None
    remote_bye = False
    for block in re.split(r"^-{10,}.*$", log, flags=re.MULTILINE):
        header, _, body = block.strip().partition("\n")
        direction_received = "message received" in header
        first = body.strip().split("\n", 1)[0].strip()
        if call_id is None:
            found = re.search(r"^Call-ID:\s*(\S+)", body, re.MULTILINE | re.IGNORECASE)
            if found:
                call_id = found.group(1)
        if not direction_received:
            continue
        if first.startswith("BYE "):
            remote_bye = True
        response = re.match(r"SIP/2\.0 (\d{3})", first)
        if response and re.search(r"^CSeq:\s*\d+\s+INVITE", body, re.MULTILINE | re.IGNORECASE):
            code = int(response.group(1))
            if code >= 200:
                status = code
    return status, call_id, remote_bye


def place_call(
    settings: Settings,
    *,
    dtmf: str = "",
    from_number: str | None = "74951234567",
    from_name: str | None = None,
    audio: Path | None = None,
    hold: float = 8.0,
    dtmf_delay: float = 2.0,
    to: str | None = None,
    local_port: int | None = None,
    dtmf_schedule: Sequence[tuple[float, str]] = (),
    local_ip: str = "127.0.0.1",
) -> CallResult:
    """Place one call to the hotline and wait until it ends.

    `hold` counts from the answer; it is stretched if the caller's media needs longer.
    `dtmf_delay` is the wait after the answer before the audio and then the digits start.
    `dtmf_schedule`: more digits later in the call, as (seconds after the media starts,
    digits), e.g. [(12.0, "1")] to press 1 while waiting in a queue.
    `local_ip`: the source address (another loopback address plays a stranger, not the carrier).
    """
    digits = "".join(iter_valid_dtmf(dtmf))
    schedule = [(at, "".join(iter_valid_dtmf(keys))) for at, keys in sorted(dtmf_schedule)]
    sipp = find_program(settings, "sipp")
    workdir = sipp.make_workdir()
    started = time.monotonic()
    try:
        pcap_inside = None
        media_seconds = 0.0
        if audio is not None or digits or schedule:
            stream = caller_media(audio, digits)
            for at, keys in schedule:
                # No packets in between: RTP time runs on, so the digits go out at `at`.
                stream.add_pause(max(0.0, at - stream.duration))
                for key in keys:
                    stream.add_dtmf(key)
            media_seconds = stream.duration
            pcap = workdir / "caller-media.pcap"
            write_pcap(pcap, stream.packets)
            pcap_inside = sipp.inside(pcap)
        scenario = workdir / "uac.xml"
        scenario.write_text(
            _scenario_text(
                from_number is None, _media_block(pcap_inside, dtmf_delay, media_seconds, hold)
            ),
            encoding="utf-8",
        )
        messages, errors, screen = (
            workdir / "messages.log",
            workdir / "errors.log",
            workdir / "screen.log",
        )
        sip_port = local_port or free_udp_port()
        budget = max(hold, dtmf_delay + media_seconds) + SLACK_SECONDS
        args = [
            f"{settings.sip_host}:{settings.sip_port}",
            "-sf", sipp.inside(scenario),
            "-m", "1",
            "-i", local_ip,
            "-p", str(sip_port),
            "-mi", local_ip,
            "-mp", str(free_udp_port(even=True)),
            "-timeout", f"{round(budget)}s",
            "-timeout_error",
            "-aa",
            "-nostdin",
            "-trace_msg", "-message_file", sipp.inside(messages),
            "-trace_err", "-error_file", sipp.inside(errors),
            "-key", "to_user", to or settings.hotline_number,
            "-key", "from_header", from_header(from_number, from_name),
            "-key", "contact_user", escape_user(from_number) if from_number else "anonymous",
        ]  # fmt: skip
        with screen.open("wb") as out:
            proc = sipp.popen(*args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                exit_code = proc.wait(timeout=budget + 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                exit_code = proc.wait()
        duration = time.monotonic() - started
        log = messages.read_text(errors="replace") if messages.exists() else ""
        status, call_id, remote_bye = parse_messages(log)
        answered = status == 200
        detail = f"sipp exit {exit_code}, INVITE final status {status}"
        if remote_bye:
            detail += ", far end hung up"
        if not answered or exit_code not in (0, 1):
            detail += "\n" + _failure_detail(errors, screen, log)
        return CallResult(answered, status, call_id, duration, detail, remote_bye, log)
    finally:
        remove_workdir(workdir)


def _failure_detail(errors: Path, screen: Path, messages: str, limit: int = 3000) -> str:
    parts = []
    for label, path in (("errors", errors), ("screen", screen)):
        if path.exists():
            text = path.read_text(errors="replace").strip()
            if text:
                parts.append(f"--- sipp {label} ---\n{text[-limit:]}")
    if messages:
        parts.append(f"--- sip messages ---\n{messages[-limit:]}")
    return "\n".join(parts) or "sipp left no logs"
