"""The test resident's phone behind the carrier trunk: SIPp as a UAS on pstn_host:pstn_port.

Asterisk dials residents as PJSIP/<number>@pstn (call-backs, the "is it fixed?" call); this
answers one such call, presses the given keys (RFC 4733) at the given times after the answer,
and stays until the far end hangs up. Started in the background (`start`), then `wait`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType

from call_router.settings import Settings
from hotline.sipua.rootexec import RootExec, find_program, remove_workdir
from hotline.sipua.rtp_pcap import RtpStream, iter_valid_dtmf, write_pcap
from hotline.sipua.testcall import free_udp_port, parse_messages


@dataclass
class AnswerResult:
    invited: bool  # an INVITE arrived
    remote_hangup: bool  # the far end sent BYE
    detail: str
    sip_log: str = field(default="", repr=False)


def _media_block(pcap_inside: str | None) -> str:
    if pcap_inside is None:
        return ""
    # play_pcap_audio returns at once; the BYE is waited for below, whenever it comes.
    return f'  <nop><action><exec play_pcap_audio="{pcap_inside}"/></action></nop>\n'


class ResidentPhone:
    """`with ResidentPhone(settings, keys=[(4.0, "2")]) as phone: ...; phone.wait(60)`."""

    def __init__(
        self, settings: Settings, *, keys: Sequence[tuple[float, str]] = (), timeout: float = 120
    ) -> None:
        self.settings = settings
        self.keys = [(at, "".join(iter_valid_dtmf(k))) for at, k in sorted(keys)]
        self.timeout = timeout
        self._sipp: RootExec | None = None
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        sipp = find_program(self.settings, "sipp")
        self._sipp = sipp
        workdir = self._workdir = sipp.make_workdir("hotline-resident-")
        pcap_inside = None
        if self.keys:
            stream = RtpStream()
            for at, digits in self.keys:
                stream.add_pause(max(0.0, at - stream.duration))
                for digit in digits:
                    stream.add_dtmf(digit)
            pcap = workdir / "resident-media.pcap"
            write_pcap(pcap, stream.packets)
            pcap_inside = sipp.inside(pcap)
        template = resources.files("hotline.sipua").joinpath("scenarios/uas.xml").read_text()
        scenario = workdir / "uas.xml"
        scenario.write_text(template.replace("@MEDIA@", _media_block(pcap_inside)))
        host = self.settings.pstn_host
        args = [
            "-sf", sipp.inside(scenario),
            "-m", "1",
            "-i", host,
            "-p", str(self.settings.pstn_port),
            "-mi", host,
            "-mp", str(free_udp_port(even=True)),
            "-timeout", f"{round(self.timeout)}s",
            "-timeout_error",
            "-nostdin",
            "-trace_msg", "-message_file", sipp.inside(workdir / "messages.log"),
            "-trace_err", "-error_file", sipp.inside(workdir / "errors.log"),
        ]  # fmt: skip
        out = (workdir / "screen.log").open("wb")
        self._proc = sipp.popen(
            *args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def wait(self, timeout: float | None = None) -> AnswerResult:
        assert self._proc is not None and self._workdir is not None
        try:
            code = self._proc.wait(timeout=timeout if timeout is not None else self.timeout + 15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            code = self._proc.wait()
        path = self._workdir / "messages.log"
        log = path.read_text(errors="replace") if path.exists() else ""
        _status, call_id, remote_bye = parse_messages(log)
        return AnswerResult(call_id is not None, remote_bye, f"sipp exit {code}", log)

    def __enter__(self) -> ResidentPhone:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._workdir is not None:
            remove_workdir(self._workdir)
