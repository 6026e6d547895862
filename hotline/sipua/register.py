"""One SIP REGISTER with a password, placed with SIPp (tests of operators' authentication).

`register_once` answers Asterisk's challenge with the given password from the given source
address and returns the final status: 200 registered, 401 wrong credentials, 403 refused
(e.g. a banned address), None when Asterisk did not answer.
"""

from __future__ import annotations

import re
import subprocess
from importlib import resources

from call_router.settings import Settings
from hotline.sipua.rootexec import find_program, remove_workdir
from hotline.sipua.testcall import free_udp_port

TIMEOUT_SECONDS = 20


def final_status(log: str) -> int | None:
    """The last final (>= 200) response to a REGISTER in SIPp's -trace_msg log."""
    status = None
    for block in re.split(r"^-{10,}.*$", log, flags=re.MULTILINE):
        header, _, body = block.strip().partition("\n")
        if "message received" not in header:
            continue
        response = re.match(r"SIP/2\.0 (\d{3})", body.strip())
        if response and re.search(r"^CSeq:\s*\d+\s+REGISTER", body, re.MULTILINE | re.I):
            code = int(response.group(1))
            if code >= 200:
                status = code
    return status


def register_scenario() -> str:
    """The SIPp scenario of `register_once` (a test may send a variant of it)."""
    return resources.files("hotline.sipua").joinpath("scenarios/register.xml").read_text()


def register_once(
    settings: Settings,
    login: str,
    password: str,
    *,
    local_ip: str = "127.0.0.1",
    scenario_text: str | None = None,
) -> int | None:
    sipp = find_program(settings, "sipp")
    workdir = sipp.make_workdir()
    try:
        scenario = workdir / "register.xml"
        scenario.write_text(scenario_text or register_scenario(), encoding="utf-8")
        messages = workdir / "messages.log"
        args = [
            f"{settings.sip_host}:{settings.sip_port}",
            "-sf", sipp.inside(scenario),
            "-m", "1",
            "-i", local_ip,
            "-p", str(free_udp_port()),
            "-timeout", f"{TIMEOUT_SECONDS}s",
            "-nostdin",
            "-trace_msg", "-message_file", sipp.inside(messages),
            "-key", "login", login,
            "-au", login,
            "-ap", password,
        ]  # fmt: skip
        proc = sipp.popen(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=TIMEOUT_SECONDS + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return final_status(messages.read_text(errors="replace")) if messages.exists() else None
    finally:
        remove_workdir(workdir)
