"""The real Asterisk 22 (sandbox chroot, or the host's own) with our rendered configuration.

Ports 16060 (SIP), 16038 (AMI), 16573 (AGI, deliberately left unserved), 16000-16199 (RTP),
16061 (the test softphone) belong to this file, so it runs beside a developer's hotline and
other test files. In CI a missing Asterisk fails here; locally it skips with the reason.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from call_router.settings import QUEUES, AmiRole, Settings
from hotline.asterisk.render import OperatorConf, render_config
from hotline.asterisk.sandbox import Asterisk, AsteriskError
from hotline.asterisk.sandbox_root import is_mounted
from tests.audio import write_tone
from tests.conftest import asterisk_available, environment, require

pytestmark = pytest.mark.asterisk

ENV = {
    "HOTLINE_SIP_PORT": "16060",
    "HOTLINE_AMI_PORT": "16038",
    "HOTLINE_AGI_PORT": "16573",
    "HOTLINE_RTP_START": "16000",
    "HOTLINE_RTP_END": "16199",
    "HOTLINE_QUEUE_TIMEOUT": "30",
    # These tests watch each dialplan step over AMI (VarSet, Newexten); the router's event
    # filter would hide them (the filter itself: test_asterisk_render and every stack test).
    "HOTLINE_AMI_EVENT_FILTER": "false",
}
SOFTPHONE_PORT = 16061
OPERATOR = OperatorConf(
    sip_login="1001",
    sip_password="test_Op3rator-pass",
    name="Ольга; Тестовая\n[evil]",
    queues=(("coordinator", 0), ("plumbing", 2)),
)


# --- a small synchronous AMI client ---------------------------------------------------------


class Ami:
    """Enough AMI for tests: login, actions with ActionID, waiting for events."""

    _ids = itertools.count(1)

    def __init__(self, host: str, port: int, timeout: float = 10) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.banner = self._line()
        self.events: list[dict[str, str]] = []

    def _line(self) -> str:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("AMI closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def _message(self) -> dict[str, str]:
        message: dict[str, str] = {}
        while True:
            line = self._line()
            if not line:
                if message:
                    return message
                continue
            key, _, value = line.partition(":")
            message[key.strip()] = value.strip()

    def send(self, action: str, **fields: str) -> str:
        action_id = f"t{next(self._ids)}"
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        lines += [f"{key}: {value}" for key, value in fields.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return action_id

    def action(self, action: str, **fields: str) -> dict[str, str]:
        action_id = self.send(action, **fields)
        while True:
            message = self._message()
            if message.get("ActionID") == action_id and "Response" in message:
                return message
            if "Event" in message:
                self.events.append(message)

    def wait_event(
        self, match: Callable[[dict[str, str]], bool], timeout: float = 20, what: str = "event"
    ) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        for i, event in enumerate(self.events):
            if match(event):
                del self.events[: i + 1]
                return event
        self.events.clear()
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                message = self._message()
            except TimeoutError:
                break
            if "Event" in message and match(message):
                return message
        raise AssertionError(f"no {what} within {timeout}s")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def login(
    settings: Settings, secret: str | None = None, role: AmiRole = "router"
) -> tuple[Ami, dict[str, str]]:
    ami = Ami(settings.ami_host, settings.ami_port)
    username, right_secret = settings.ami_login(role)
    reply = ami.action(
        "Login", Username=username, Secret=secret if secret is not None else right_secret
    )
    return ami, reply


class AmiPair:
    """What the tests drive Asterisk with: actions (Originate) as click-to-call's AMI user,
    events as the router's; no AMI user may do both (manager.conf)."""

    def __init__(self, events: Ami, actions: Ami) -> None:
        self.events_client = events
        self.actions_client = actions

    def action(self, action: str, **fields: str) -> dict[str, str]:
        return self.actions_client.action(action, **fields)

    def wait_event(
        self, match: Callable[[dict[str, str]], bool], timeout: float = 20, what: str = "event"
    ) -> dict[str, str]:
        return self.events_client.wait_event(match, timeout, what)

    def close(self) -> None:
        self.events_client.close()
        self.actions_client.close()


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    state = tmp_path_factory.mktemp("asterisk-state")
    env = {
        **ENV,
        "HOTLINE_STATE_DIR": str(state),
        "HOTLINE_RECORDINGS_DIR": str(state / "recordings"),
    }
    with environment(env):
        yield Settings()


@pytest.fixture(scope="module")
def asterisk(settings: Settings) -> Iterator[Asterisk]:
    ok, reason = asterisk_available(settings)
    require(ok, reason)
    ast = Asterisk(settings)
    try:
        ast.ensure_installed()
    except AsteriskError as err:
        require(False, f"the sandbox Asterisk root cannot be built: {err}")
    render_config(settings, ast.paths, [OPERATOR])
    ast.start()
    # Queue members are dynamic: the router adds them over AMI. Without a router here, add
    # the operator the same way Asterisk would see it (login as member name keeps it simple).
    for queue, penalty in OPERATOR.queues:
        ast.cli(
            f"queue add member PJSIP/{OPERATOR.sip_login} to {queue} penalty {penalty} "
            f"as {OPERATOR.sip_login} state_interface PJSIP/{OPERATOR.sip_login}"
        )
    try:
        yield ast
    finally:
        ast.stop()
        artifacts = Path(__file__).parent.parent / "artifacts" / "asterisk-sandbox"
        shutil.rmtree(artifacts, ignore_errors=True)
        logs = settings.asterisk_dir / "log"
        if logs.is_dir():
            shutil.copytree(logs, artifacts, dirs_exist_ok=True, symlinks=True)
        out = settings.log_dir / "asterisk.out"
        if out.is_file():
            artifacts.mkdir(parents=True, exist_ok=True)
            shutil.copy(out, artifacts / "asterisk.out")


@pytest.fixture
def ami(asterisk: Asterisk, settings: Settings) -> Iterator[AmiPair]:
    events, reply = login(settings)
    assert reply["Response"] == "Success", reply
    actions, reply = login(settings, role="originate")
    assert reply["Response"] == "Success", reply
    client = AmiPair(events, actions)
    yield client
    client.close()


# --- start, stop, CLI -----------------------------------------------------------------------


def test_asterisk_22_answers_on_ami_with_the_generated_secret(
    asterisk: Asterisk, settings: Settings
) -> None:
    good, reply = login(settings)
    assert good.banner.startswith("Asterisk Call Manager/")
    assert reply["Response"] == "Success", reply
    good.close()
    bad, reply = login(settings, secret="not-the-secret")
    assert reply["Response"] == "Error"
    bad.close()
    assert "Asterisk 22." in asterisk.cli("core show version")


def test_up_twice_is_idempotent(asterisk: Asterisk) -> None:
    before = asterisk.status()
    assert before.running and before.pid
    assert "Asterisk 22." in before.detail
    asterisk.start()
    assert asterisk.status().pid == before.pid


def test_asterisk_runs_on_jemalloc(asterisk: Asterisk, settings: Settings) -> None:
    # On glibc's malloc a soak's Asterisk RSS crept up call after call (BENCHMARKS.md, Soak).
    status = asterisk.status()
    assert status.pid
    assert settings.asterisk_allocator == "jemalloc"
    environ = Path(f"/proc/{status.pid}/environ").read_bytes().split(b"\0")
    assert f"MALLOC_ARENA_MAX={settings.asterisk_malloc_arena_max}".encode() in environ
    maps = Path(f"/proc/{status.pid}/maps").read_text()
    assert "libjemalloc.so.2" in maps  # loaded, not only named


def test_every_module_we_load_is_running(asterisk: Asterisk, settings: Settings) -> None:
    wanted = [
        line.split("=", 1)[1].strip()
        for line in (settings.asterisk_dir / "etc" / "modules.conf").read_text().splitlines()
        if line.startswith("load")
    ]
    shown = asterisk.cli("module show")
    status = {parts[0]: line for line in shown.splitlines() if (parts := line.split()) and parts[0]}
    not_running = [
        m for m in wanted if "Running" not in status.get(m, "").replace("Not Running", "")
    ]
    assert not not_running, f"modules not running: {not_running}"
    full = (settings.asterisk_dir / "log" / "full").read_text(errors="replace")
    errors = [line for line in full.splitlines() if " ERROR[" in line]
    assert not errors, "\n".join(errors)


def test_endpoints_queues_and_dialplan_are_loaded(asterisk: Asterisk) -> None:
    endpoints = asterisk.cli("pjsip show endpoints")
    assert "pstn" in endpoints
    assert "1001" in endpoints
    queues = asterisk.cli("queue show")
    shown = {
        line.split()[0] for line in queues.splitlines() if line[:1].strip() and " strategy " in line
    }
    assert shown == set(QUEUES)
    assert "general" not in shown
    coordinator = asterisk.cli("queue show coordinator")
    assert "(PJSIP/1001" in coordinator
    ivr = asterisk.cli("dialplan show hotline-ivr")
    agi = "AGI(agi://127.0.0.1:16573/${HOTLINE_FLOW},${CHANNEL(linkedid)},${HOTLINE_RECORDINGS})"
    assert agi in ivr
    identify = asterisk.cli("pjsip show identifies")
    assert "pstn" in identify


def test_russian_sounds_are_found(asterisk: Asterisk) -> None:
    if asterisk.mode == "sandbox":
        assert (asterisk.root / "usr/share/asterisk/sounds/ru/queue-youarenext.gsm").exists()


def test_view_maps_host_paths_to_what_asterisk_sees(asterisk: Asterisk, settings: Settings) -> None:
    probe = settings.recordings_dir / "view-probe.txt"
    probe.write_text("x")
    inside = asterisk.view(probe)
    if asterisk.mode == "sandbox":
        assert (asterisk.root / inside.lstrip("/")).read_text() == "x"
    else:
        assert Path(inside).read_text() == "x"


# --- the fail-safe ------------------------------------------------------------------------


def _agi_port_is_free(settings: Settings) -> bool:
    try:
        socket.create_connection((settings.agi_host, settings.agi_port), timeout=1).close()
    except OSError:
        return True
    return False


def originate_into_ivr(ami: AmiPair, exten: str = "silent") -> None:
    reply = ami.action(
        "Originate",
        Channel="Local/s@hotline-ivr",
        Context="hotline-tests",
        Exten=exten,
        Priority="1",
        CallerID='"Resident" <+74950000001>',
        Async="true",
        Timeout="20000",
    )
    assert reply["Response"] == "Success", reply


def hang_up_everything(asterisk: Asterisk) -> None:
    asterisk.cli("channel request hangup all")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "0 active channels" not in asterisk.cli(
        "core show channels count"
    ):
        time.sleep(0.2)


def test_with_no_fastagi_server_and_no_operator_the_caller_goes_coordinator_then_voicemail(
    asterisk: Asterisk, settings: Settings, ami: AmiPair
) -> None:
    assert _agi_port_is_free(settings), "something listens on the AGI test port"
    try:
        originate_into_ivr(ami)

        def var(name: str, value: str) -> Callable[[dict[str, str]], bool]:
            return lambda e: (
                e.get("Event") == "VarSet" and e.get("Variable") == name and e.get("Value") == value
            )

        ami.wait_event(var("AGISTATUS", "FAILURE"), what="AGISTATUS=FAILURE")
        ami.wait_event(var("HOTLINE_FALLBACK", "agi"), what="HOTLINE_FALLBACK=agi")
        ami.wait_event(
            lambda e: (
                e.get("Event") == "Newexten"
                and e.get("Application") == "Queue"
                and e.get("AppData", "").startswith("coordinator,")
            ),
            what="Queue(coordinator)",
        )
        # Nobody is registered: the caller is not left waiting, voicemail takes the message.
        ami.wait_event(var("QUEUESTATUS", "JOINEMPTY"), what="QUEUESTATUS=JOINEMPTY")
        ami.wait_event(
            lambda e: e.get("Event") == "Newexten" and e.get("Application") == "VoiceMail",
            what="VoiceMail()",
        )
    finally:
        hang_up_everything(asterisk)


def _softphone(asterisk: Asterisk, settings: Settings) -> subprocess.Popen[bytes]:
    """baresip registered as the operator, auto-answering with a tone (quits after 90 s)."""
    folder = settings.asterisk_dir / "tests" / "baresip"
    folder.mkdir(parents=True, exist_ok=True)
    write_tone(folder / "say.wav", 60, 440, amplitude=6000)
    (folder / "config").write_text(
        "\n".join(
            [
                "poll_method epoll",
                f"sip_listen 127.0.0.1:{SOFTPHONE_PORT}",
                f"audio_player aufile,{asterisk.view(folder / 'heard.wav')}",
                f"audio_source aufile,{asterisk.view(folder / 'say.wav')}",
                "audio_alert aufile,/dev/null",
                "rtp_ports 16180-16199",
                "module_path /usr/lib/baresip/modules",
                "module g711.so",
                "module aufile.so",
                "module_app account.so",
                "module_app menu.so",
                "",
            ]
        )
    )
    (folder / "accounts").write_text(
        f"<sip:{OPERATOR.sip_login}@{settings.sip_host}:{settings.sip_port}>"
        f";auth_pass={OPERATOR.sip_password};answermode=auto;regint=60\n"
    )
    args = ["-f", asterisk.view(folder), "-t", "90"]
    if asterisk.mode == "sandbox":
        argv = ["chroot", str(asterisk.root), "baresip", *args]
    else:
        binary = shutil.which("baresip")
        require(binary is not None, "baresip is not installed on this host")
        argv = [str(binary), *args]
    log = (settings.log_dir / "baresip.out").open("ab")
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def test_with_no_fastagi_server_a_registered_operator_still_gets_the_call(
    asterisk: Asterisk, settings: Settings, ami: AmiPair
) -> None:
    assert _agi_port_is_free(settings), "something listens on the AGI test port"
    phone = _softphone(asterisk, settings)
    try:
        deadline = time.monotonic() + 20
        while "Not in use" not in asterisk.cli("queue show coordinator"):
            assert phone.poll() is None, "baresip exited; see log/baresip.out"
            assert time.monotonic() < deadline, asterisk.cli("pjsip show contacts")
            time.sleep(0.3)
        originate_into_ivr(ami)
        join = ami.wait_event(lambda e: e.get("Event") == "QueueCallerJoin", what="QueueCallerJoin")
        assert join["Queue"] == "coordinator"
        connect = ami.wait_event(
            lambda e: e.get("Event") == "AgentConnect", timeout=30, what="AgentConnect"
        )
        assert connect["Queue"] == "coordinator"
        assert connect["Interface"] == "PJSIP/1001"
        queue_log = (settings.asterisk_dir / "log" / "queue_log").read_text()
        assert "|coordinator|" in queue_log and "|CONNECT|" in queue_log
    finally:
        hang_up_everything(asterisk)
        phone.terminate()
        try:
            phone.wait(10)
        except subprocess.TimeoutExpired:
            phone.kill()
            phone.wait(5)


def test_the_fastagi_priority_becomes_the_queue_priority(asterisk: Asterisk, ami: AmiPair) -> None:
    for value, expected in (("7", ["7"]), ("1) evil", [])):
        reply = ami.action(
            "Originate",
            Channel="Local/plumbing@hotline-queues",
            Application="Wait",
            Data="5",
            Variable=f"HOTLINE_PRIORITY={value}",
            Async="true",
            Timeout="5000",
        )
        assert reply["Response"] == "Success", reply
        seen: list[dict[str, str]] = []

        def queue_started(event: dict[str, str], seen: list[dict[str, str]] = seen) -> bool:
            seen.append(event)
            return event.get("Event") == "Newexten" and event.get("Application") == "Queue"

        ami.wait_event(queue_started, what="Queue(plumbing)")
        hang_up_everything(asterisk)
        # Only this call's entry into plumbing: an overflow to the coordinator sets its own.
        prio = [
            e["Value"]
            for e in seen
            if e.get("Event") == "VarSet"
            and e.get("Variable") == "QUEUE_PRIO"
            and e.get("Exten") == "plumbing"
        ]
        assert prio == expected, value


def test_from_pstn_rejects_numbers_other_than_the_hotline(asterisk: Asterisk, ami: AmiPair) -> None:
    reply = ami.action(
        "Originate",
        Channel="Local/999@from-pstn",
        Application="Wait",
        Data="5",
        Async="true",
        Timeout="5000",
    )
    assert reply["Response"] == "Success", reply
    hangup = ami.wait_event(
        lambda e: e.get("Event") == "Hangup" and e.get("Channel", "").endswith(";2"),
        what="the trunk side hanging up",
    )
    assert hangup["Cause"] == "1"  # unallocated number
    hang_up_everything(asterisk)


def test_cdrs_are_written_as_csv(asterisk: Asterisk, settings: Settings, ami: AmiPair) -> None:
    csv = settings.asterisk_dir / "log" / "cdr-csv" / "Master.csv"
    reply = ami.action(
        "Originate",
        Channel="Local/silent@hotline-tests",
        Application="Wait",
        Data="1",
        Async="true",
    )
    assert reply["Response"] == "Success", reply
    deadline = time.monotonic() + 10
    while not (csv.is_file() and csv.read_text().strip()):
        assert time.monotonic() < deadline, "no CDR written"
        time.sleep(0.3)
    assert "hotline-tests" in csv.read_text()
    hang_up_everything(asterisk)


# --- lifecycle (last: it restarts Asterisk) ---------------------------------------------------


def test_down_is_safe_twice_unmounts_and_up_comes_back(
    asterisk: Asterisk, settings: Settings
) -> None:
    mounts = [point for _src, point in asterisk._mounts()] if asterisk.mode == "sandbox" else []
    assert all(is_mounted(p) for p in mounts)
    pid = asterisk.status().pid
    assert pid
    asterisk.stop()
    assert not asterisk.status().running
    assert not Path(f"/proc/{pid}").exists() or "asterisk" not in Path(
        f"/proc/{pid}/cmdline"
    ).read_bytes().decode(errors="replace")
    assert not asterisk.pid_file.exists()
    assert not any(is_mounted(p) for p in mounts)
    if asterisk.mode == "sandbox":
        assert is_mounted(asterisk.root / "proc"), "/proc is shared and stays mounted"
    asterisk.stop()  # safe to re-run
    assert _agi_port_is_free(settings)
    asterisk.start()
    asterisk.start()
    assert asterisk.status().running
    assert "Asterisk 22." in asterisk.cli("core show version")
