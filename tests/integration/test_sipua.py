"""The SIP user agents against a real Asterisk: SIPp test caller and baresip softphone.

The fixture starts a throwaway minimal Asterisk from the sandbox root on its own
ports (SIP 26060, AMI 26038, RTP 26000-26199); the lead will switch it to the
project's sandbox runner. In CI (CI=true) a missing root fails instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from call_router.settings import Settings
from hotline.sipua.rootexec import remove_workdir
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.audio import loudest_second, write_tone
from tests.conftest import require

pytestmark = pytest.mark.asterisk

SIP_PORT, AMI_PORT, RTP_START, RTP_END = 26060, 26038, 26000, 26199
AMI_USER, AMI_SECRET = "sipua", "sipua-test-secret"
OPERATOR, OPERATOR_PASSWORD = "op1", "op1-test-secret"

CONFIG = {
    "modules.conf": """[modules]
autoload = yes
noload = chan_alsa.so
noload = chan_console.so
noload = chan_oss.so
noload = res_hep.so
noload = res_hep_pjsip.so
noload = res_hep_rtcp.so
noload = pbx_lua.so
noload = pbx_ael.so
""",
    "logger.conf": "[general]\n[logfiles]\nmessages.log => notice,warning,error,verbose,dtmf\n",
    "rtp.conf": f"[general]\nrtpstart={RTP_START}\nrtpend={RTP_END}\n",
    "manager.conf": f"""[general]
enabled = yes
port = {AMI_PORT}
bindaddr = 127.0.0.1
[{AMI_USER}]
secret = {AMI_SECRET}
read = all
write = all
""",
    "pjsip.conf": f"""[global]
type = global
endpoint_identifier_order = username,ip
[transport-udp]
type = transport
protocol = udp
bind = 127.0.0.1:{SIP_PORT}
[pstn]
type = endpoint
context = from-pstn
disallow = all
allow = ulaw
dtmf_mode = rfc4733
[pstn]
type = identify
endpoint = pstn
match = 127.0.0.1
[{OPERATOR}]
type = endpoint
context = operators
disallow = all
allow = ulaw
auth = {OPERATOR}
aors = {OPERATOR}
[{OPERATOR}]
type = auth
auth_type = userpass
username = {OPERATOR}
password = {OPERATOR_PASSWORD}
[{OPERATOR}]
type = aor
max_contacts = 1
remove_existing = yes
""",
    "queues.conf": (
        f"[general]\n[support]\nstrategy = ringall\ntimeout = 15\nmember => PJSIP/{OPERATOR}\n"
    ),
    # 500100: read one digit, report it (and the caller ID) as a UserEvent, 2 → the queue.
    # 500101: read up to four digits. 500102: the far end hangs up. 500103: busy.
    # 500104: straight to the operator.
    "extensions.conf": """[from-pstn]
exten = 500100,1,Answer()
 same = n,Read(DIGIT,,1,,1,10)
 same = n,UserEvent(SipuaDigits,Digits: ${DIGIT})
 same = n,GotoIf($["${DIGIT}" = "2"]?queue)
 same = n,Wait(20)
 same = n,Hangup()
 same = n(queue),Queue(support,,,,30)
 same = n,Hangup()
exten = 500101,1,Answer()
 same = n,Read(DIGITS,,4,,1,10)
 same = n,UserEvent(SipuaDigits,Digits: ${DIGITS})
 same = n,Wait(20)
exten = 500102,1,Answer()
 same = n,Wait(1)
 same = n,Hangup()
exten = 500103,1,Busy(5)
exten = 500104,1,Dial(PJSIP/op1,15)
[operators]
""",
}


def _asterisk_conf(inside: str) -> str:
    dirs = {
        "astetcdir": "etc",
        "astcachedir": "lib",
        "astdbdir": "lib",
        "astkeydir": "lib",
        "astspooldir": "spool",
        "astrundir": "run",
        "astlogdir": "log",
    }
    lines = ["[directories]"] + [f"{key} => {inside}/{sub}" for key, sub in dirs.items()]
    lines += [
        "astmoddir => /usr/lib/x86_64-linux-gnu/asterisk/modules",
        "astvarlibdir => /var/lib/asterisk",
        "astdatadir => /usr/share/asterisk",
        "astagidir => /usr/share/asterisk/agi-bin",
        "astsbindir => /usr/sbin",
        "[options]",
        "verbose = 3",
    ]
    return "\n".join(lines) + "\n"


class AmiEvents:
    """A tiny synchronous AMI event collector (the tests only need to look at events)."""

    def __init__(self, port: int) -> None:
        self.events: list[dict[str, str]] = []
        self._lock = threading.Condition()
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._sock.sendall(
            f"Action: Login\r\nUsername: {AMI_USER}\r\nSecret: {AMI_SECRET}\r\n\r\n".encode()
        )
        self._sock.settimeout(None)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while b"\r\n\r\n" in buffer:
                block, buffer = buffer.split(b"\r\n\r\n", 1)
                fields = {}
                for line in block.decode(errors="replace").split("\r\n"):
                    key, sep, value = line.partition(": ")
                    if sep:
                        fields[key] = value
                if "Event" in fields:
                    with self._lock:
                        self.events.append(fields)
                        self._lock.notify_all()

    def wait(self, timeout: float = 15, **match: str) -> dict[str, str] | None:
        def found() -> dict[str, str] | None:
            return next(
                (e for e in self.events if all(e.get(k) == v for k, v in match.items())), None
            )

        with self._lock:
            self._lock.wait_for(lambda: found() is not None, timeout=timeout)
            return found()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def _others_chrooted_in(root: Path) -> bool:
    """Whether other processes (e.g. another helper's Asterisk) still use the root's /proc."""
    resolved = str(root.resolve())
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "root") == resolved:
                    return True
    return False


def ami_unescape(value: str) -> str:
    """AMI backslash-escapes \\ and " in channel fields (CallerIDName etc.)."""
    return re.sub(r'\\([\\"])', r"\1", value)


@pytest.fixture(scope="module")
def asterisk() -> Iterator[Settings]:
    settings = Settings(sip_port=SIP_PORT, sip_host="127.0.0.1", hotline_number="500100")
    root = settings.sandbox_root
    if not (root / "usr/sbin/asterisk").is_file():
        require(False, f"no sandbox Asterisk root at {root}")
    with contextlib.suppress(OSError):  # another Asterisk on our ports would make this a lie
        socket.create_connection(("127.0.0.1", AMI_PORT), timeout=1).close()
        pytest.fail(f"something already listens on the test AMI port {AMI_PORT}")

    mounted_proc = False
    proc_dir = root / "proc"
    if not os.path.ismount(proc_dir):
        proc_dir.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "proc", "proc", str(proc_dir)], check=True)
        mounted_proc = True
    (root / "tmp").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="hotline-sipua-ast-", dir=root / "tmp"))
    inside = "/tmp/" + workdir.name
    for sub in ("etc", "lib", "spool", "run", "log"):
        (workdir / sub).mkdir()
    for name, text in CONFIG.items():
        (workdir / "etc" / name).write_text(text)
    (workdir / "etc" / "asterisk.conf").write_text(_asterisk_conf(inside))
    conf = f"{inside}/etc/asterisk.conf"
    output = (workdir / "console.out").open("wb")
    process = subprocess.Popen(
        ["chroot", str(root), "/usr/sbin/asterisk", "-C", conf, "-f"],
        stdout=output,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            booted = subprocess.run(
                [
                    "chroot",
                    str(root),
                    "/usr/sbin/asterisk",
                    "-C",
                    conf,
                    "-rx",
                    "core waitfullybooted",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if "fully booted" in booted.stdout:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "Asterisk did not start:\n" + (workdir / "console.out").read_text()[-3000:]
                )
            time.sleep(0.3)
        yield settings
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.close()
        remove_workdir(workdir)
        if mounted_proc and not _others_chrooted_in(root):
            subprocess.run(["umount", str(proc_dir)], check=False)


@pytest.fixture
def ami(asterisk: Settings) -> Iterator[AmiEvents]:
    events = AmiEvents(AMI_PORT)
    assert events.wait(timeout=10, Event="FullyBooted") is not None
    yield events
    events.close()


def test_call_is_answered_and_the_digit_reaches_asterisk(
    asterisk: Settings, ami: AmiEvents
) -> None:
    result = place_call(asterisk, dtmf="1", hold=3, dtmf_delay=1)

    assert result.answered, result.detail
    assert result.sip_status == 200
    assert result.call_id
    assert ami.wait(Event="DTMFEnd", Digit="1", Direction="Received") is not None
    assert ami.wait(Event="UserEvent", UserEvent="SipuaDigits", Digits="1") is not None


def test_repeated_digits_all_arrive(asterisk: Settings, ami: AmiEvents) -> None:
    result = place_call(asterisk, to="500101", dtmf="2*22", hold=3, dtmf_delay=1)

    assert result.answered, result.detail
    assert ami.wait(Event="UserEvent", UserEvent="SipuaDigits", Digits="2*22") is not None


def test_far_end_hangup_is_answered_and_counted(asterisk: Settings) -> None:
    result = place_call(asterisk, to="500102", hold=10)

    assert result.answered, result.detail
    assert result.remote_hangup
    assert result.duration < 8


@pytest.mark.parametrize(("number", "status"), [("500103", 486), ("no-such-number", 404)])
def test_rejected_call_is_not_answered(asterisk: Settings, number: str, status: int) -> None:
    result = place_call(asterisk, to=number, hold=2)

    assert not result.answered
    assert result.sip_status == status


@pytest.mark.parametrize(
    ("from_number", "from_name", "expected_num", "expected_name"),
    [
        (None, None, "anonymous", "Anonymous"),
        ("74951234567", "Иван Петров", "74951234567", "Иван Петров"),
        ("74951234567", "<script>alert(1)</script>", "74951234567", "<script>alert(1)</script>"),
        # pjsip keeps a quoted-string's backslash escape: CALLERID(name) is the wire form
        # O\"Brien (and AMI C-escapes it once more: O\\\"Brien).
        ("+7 (495) 1", 'O"Brien', "+7 (495) 1", 'O\\"Brien'),
    ],
)
def test_odd_caller_ids_arrive_as_sent(
    asterisk: Settings,
    ami: AmiEvents,
    from_number: str | None,
    from_name: str | None,
    expected_num: str,
    expected_name: str,
) -> None:
    result = place_call(
        asterisk, from_number=from_number, from_name=from_name, dtmf="1", hold=2, dtmf_delay=0.5
    )

    assert result.answered, result.detail
    channel = ami.wait(Event="Newchannel", Exten="500100", CallerIDNum=expected_num)
    assert channel is not None, [e for e in ami.events if e.get("Event") == "Newchannel"]
    assert ami_unescape(channel["CallerIDName"]) == expected_name
    if from_number is None:
        assert "Privacy: id" in result.sip_log


def _wait_until_queue_can_ring(ami: AmiEvents) -> None:
    """A REGISTER is answered before Asterisk updates the device state the queue reads;
    a queue that still sees the member unavailable waits its retry (5 s) before ringing."""
    ready = ami.wait(Event="DeviceStateChange", Device=f"PJSIP/{OPERATOR}", State="NOT_INUSE")
    assert ready is not None, "Asterisk never saw the operator's phone as available"


def test_softphone_registers_and_answers_a_queued_call(asterisk: Settings, ami: AmiEvents) -> None:
    with Softphone(asterisk, OPERATOR, OPERATOR_PASSWORD) as operator:
        assert operator.registered
        _wait_until_queue_can_ring(ami)
        result = place_call(asterisk, dtmf="2", hold=6, dtmf_delay=1)
        assert result.answered, result.detail
        assert operator.wait_for_event("CALL_ESTABLISHED", timeout=20), operator.log
        assert operator.calls_answered() == 1
        assert ami.wait(Event="AgentConnect", Queue="support") is not None
        # Asterisk re-INVITEd the caller when it bridged (direct media); our BYE still matched
        # the dialog, so it got 200 OK and not 481.
        assert re.search(r"received \[\d+\] bytes:\n\nINVITE ", result.sip_log), "no re-INVITE"
        assert re.search(r"^SIP/2\.0 200 OK\n(?:.+\n)*?CSeq: 2 BYE", result.sip_log, re.MULTILINE)
    assert not operator.registered


def test_softphone_left_ringing_and_hung_up(asterisk: Settings, ami: AmiEvents) -> None:
    with Softphone(asterisk, OPERATOR, OPERATOR_PASSWORD, answer=False) as operator:
        _wait_until_queue_can_ring(ami)
        caller = threading.Thread(
            target=place_call, args=(asterisk,), kwargs={"dtmf": "2", "hold": 15, "dtmf_delay": 1}
        )
        caller.start()
        assert operator.wait_for_event("CALL_INCOMING", timeout=15), operator.log
        assert operator.calls_answered() == 0
        operator.accept()
        assert operator.wait_for_event("CALL_ESTABLISHED", timeout=20), operator.log
        operator.hangup()
        assert operator.wait_for_event("CALL_CLOSED", timeout=5), operator.log
        caller.join(timeout=20)


def test_operator_hears_the_callers_audio(asterisk: Settings, tmp_path: Path) -> None:
    caller_audio, heard = tmp_path / "caller.wav", tmp_path / "heard.wav"
    write_tone(caller_audio, 2.0)
    operator_audio = tmp_path / "operator.wav"
    write_tone(operator_audio, 1.0, hz=600)
    with Softphone(
        asterisk, OPERATOR, OPERATOR_PASSWORD, audio=operator_audio, record_to=heard
    ) as operator:
        result = place_call(asterisk, to="500104", audio=caller_audio, hold=4, dtmf_delay=0.5)
        assert result.answered, result.detail
        assert operator.wait_for_event("CALL_CLOSED", timeout=5), operator.log
    assert heard.exists(), operator.log
    assert loudest_second(heard) > 2000  # the tone, not μ-law silence
