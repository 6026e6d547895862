"""An auto-answering operator softphone (baresip) for tests and demos.

baresip registers as one operator endpoint, answers queue calls (or leaves them
ringing with ``answer=False``), says a wav or a sine tone, and can record what it
hears. It is driven through its ``ctrl_tcp`` module: netstring-framed JSON
commands in, netstring-framed JSON events out, read by a background thread.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from call_router.settings import Settings
from hotline.sipua.rootexec import RootExec, find_program, remove_workdir

# baresip's aufile source hangs up at the end of the file: pad the operator's
# audio with silence so a call lasts until the test ends it.
AUDIO_HOLD_SECONDS = 300
SINE_HZ = 440
_MODULE_DIRS = (
    "usr/lib/baresip/modules",
    "usr/lib/x86_64-linux-gnu/baresip/modules",
    "usr/local/lib/baresip/modules",
)


class SoftphoneError(RuntimeError):
    pass


# Below Linux's ephemeral range (32768+), so a port we probe free is not taken a moment later
# by some client socket; baresip binds UDP+TCP on its SIP port and TLS on the next one.
LISTEN_PORTS = range(30000, 32700)


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_listen_port(span: int = 1) -> int:
    """A port where `span` consecutive ports are free for both UDP and TCP."""
    for _ in range(200):
        port = random.choice(LISTEN_PORTS)
        if all(
            _bindable(p, kind)
            for p in range(port, port + span)
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM)
        ):
            return port
    raise SoftphoneError("no free port for the softphone")


def free_tcp_port() -> int:
    return free_listen_port()


def netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


class NetstringReader:
    """Incremental netstring decoder: feed bytes, get complete payloads."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        payloads = []
        while True:
            length_text, colon, rest = self._buffer.partition(b":")
            if not colon:
                break
            if not length_text.isdigit():
                raise SoftphoneError(f"bad netstring from baresip: {self._buffer[:40]!r}")
            length = int(length_text)
            if len(rest) < length + 1:
                break
            payloads.append(rest[:length])
            self._buffer = rest[length + 1 :]  # drop the trailing comma
        return payloads


class Softphone:
    """One baresip instance registered as ``login``; use it as a context manager."""

    def __init__(
        self,
        settings: Settings,
        login: str,
        password: str,
        *,
        audio: Path | None = None,
        record_to: Path | None = None,
        answer: bool = True,
        local_port: int | None = None,
        register: bool = True,
    ) -> None:
        self.settings = settings
        self.login = login
        self.password = password
        self.audio = audio
        self.record_to = record_to
        self.answer = answer
        self.local_port = local_port
        # register=False: a phone that only listens on local_port, e.g. the resident's phone
        # behind the carrier trunk (pstn_host:pstn_port), which Asterisk calls directly.
        self.register = register
        self.events: list[dict[str, object]] = []
        self._events_changed = threading.Condition()
        self._registered = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctrl: socket.socket | None = None
        self._workdir: Path | None = None
        self._baresip: RootExec | None = None
        self._threads: list[threading.Thread] = []
        self._log_lines: list[str] = []
        # e.g. "op1@127.0.0.1: (prio 0) {0/UDP/v4} 200 OK (Asterisk PBX 22...) [1 binding]"
        self._register_ok_line = re.compile(rf"{re.escape(login)}@\S+: .*\b200 OK\b.*binding")

    # --- life cycle -------------------------------------------------------------------

    def start(self, timeout: float = 15) -> None:
        """Start baresip and return once Asterisk accepted its REGISTER."""
        self._baresip = find_program(self.settings, "baresip")
        self._workdir = self._baresip.make_workdir("hotline-softphone-")
        ctrl_port = free_tcp_port()
        self._write_config(self._workdir, ctrl_port)
        self._proc = self._baresip.popen(
            "-f", self._baresip.inside(self._workdir),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self._spawn(self._read_log)
        deadline = time.monotonic() + timeout
        self._ctrl = self._connect_ctrl(ctrl_port, deadline)
        self._spawn(self._read_events)
        if not self.register:
            return  # ctrl_tcp is an app module: it listens only after the SIP transport is up
        if not self.wait_for(lambda: self._registered, deadline - time.monotonic()):
            log = "\n".join(self._log_lines[-30:])
            self.stop()
            raise SoftphoneError(f"{self.login} did not register within {timeout}s:\n{log}")

    def stop(self) -> None:
        if self._ctrl is not None:
            with contextlib.suppress(OSError):
                self._send({"command": "quit"})
        if self._proc is not None:
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
        if self._ctrl is not None:
            with contextlib.suppress(OSError):
                self._ctrl.close()
        for thread in self._threads:
            thread.join(timeout=2)
        if self._workdir is not None:
            recording = self._workdir / "heard.wav"
            if self.record_to is not None and recording.exists():
                self.record_to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(recording, self.record_to)
            remove_workdir(self._workdir)
        self._proc = self._ctrl = self._workdir = None
        self._registered = False

    @property
    def recording(self) -> Path:
        """What the phone has heard so far (`record_to` gets a copy when it stops)."""
        assert self._workdir is not None and self.record_to is not None, "not recording"
        return self._workdir / "heard.wav"

    def __enter__(self) -> Softphone:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- state and control ------------------------------------------------------------

    @property
    def registered(self) -> bool:
        return self._registered

    def calls_answered(self) -> int:
        return self._count("CALL_ESTABLISHED")

    def calls_ringing(self) -> int:
        return self._count("CALL_INCOMING")

    def calls_closed(self) -> int:
        return self._count("CALL_CLOSED")

    def hangup(self) -> None:
        self._send({"command": "hangup"})

    def accept(self) -> None:
        """Answer the ringing call (for ``answer=False``)."""
        self._send({"command": "accept"})

    def dial(self, uri: str) -> None:
        """Call `uri` (e.g. the hotline through the carrier trunk, for a caller who records
        what they hear)."""
        self._send({"command": "dial", "params": uri})

    def send_digits(self, digits: str) -> None:
        """Press keys during the call (RFC 4733 events, as a desk phone's keypad sends)."""
        self._send({"command": "sndcode", "params": digits})

    def wait_for_event(self, event_type: str, count: int = 1, timeout: float = 15) -> bool:
        return self.wait_for(lambda: self._count(event_type) >= count, timeout)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate` holds; it is re-checked on every event and log line."""
        with self._events_changed:
            return self._events_changed.wait_for(predicate, timeout=max(timeout, 0))

    @property
    def log(self) -> str:
        return "\n".join(self._log_lines)

    # --- internals --------------------------------------------------------------------

    def _count(self, event_type: str) -> int:
        with self._events_changed:
            return sum(1 for event in self.events if event.get("type") == event_type)

    def _send(self, command: dict[str, str]) -> None:
        if self._ctrl is None:
            raise SoftphoneError("softphone is not running")
        self._ctrl.sendall(netstring(json.dumps(command).encode()))

    def _spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True, name=f"softphone-{self.login}")
        thread.start()
        self._threads.append(thread)

    def _connect_ctrl(self, port: int, deadline: float) -> socket.socket:
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                break
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=1)
            except OSError:
                time.sleep(0.1)
        log = "\n".join(self._log_lines[-30:])
        self.stop()
        raise SoftphoneError(f"baresip ctrl_tcp on port {port} never came up:\n{log}")

    def _read_events(self) -> None:
        assert self._ctrl is not None
        self._ctrl.settimeout(None)
        reader = NetstringReader()
        while True:
            try:
                data = self._ctrl.recv(65536)
            except OSError:
                return
            if not data:
                return
            for payload in reader.feed(data):
                try:
                    message = json.loads(payload)
                except ValueError:
                    continue
                if isinstance(message, dict) and message.get("event"):
                    self._record_event(message)

    def _record_event(self, event: dict[str, object]) -> None:
        with self._events_changed:
            self.events.append(event)
            if event.get("type") == "REGISTER_OK":
                self._registered = True
            elif event.get("type") in ("REGISTER_FAIL", "UNREGISTERING"):
                self._registered = False
            self._events_changed.notify_all()

    def _read_log(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            # Drop the "[0:00:33] audio=64426/0 (bit/s)" status updates baresip ends with \r.
            line = raw.decode(errors="replace").split("\r")[-1].rstrip()
            with self._events_changed:
                self._log_lines.append(line)
                # REGISTER_OK may fire before ctrl_tcp is connected; the log says it too.
                if self._register_ok_line.match(line):
                    self._registered = True
                self._events_changed.notify_all()

    def _write_config(self, folder: Path, ctrl_port: int) -> None:
        assert self._baresip is not None
        inside = self._baresip.inside
        if self.audio is not None:
            source = f"aufile,{inside(self._padded_audio(folder))}"
        else:
            source = f"ausine,{SINE_HZ}"
        player = f"aufile,{inside(folder / 'heard.wav')}" if self.record_to else "aufile,/dev/null"
        sip_port = self.local_port or free_listen_port(span=2)
        lines = [
            f"sip_listen\t\t127.0.0.1:{sip_port}",
            f"audio_source\t\t{source}",
            f"audio_player\t\t{player}",
            "audio_alert\t\taufile,/dev/null",
            # ausine only makes 48 kHz; baresip resamples to the 8 kHz codec.
            f"ausrc_srate\t\t{48000 if self.audio is None else 8000}",
            "ausrc_channels\t\t1",
            "auplay_srate\t\t8000",
            "auplay_channels\t\t1",
            f"module_path\t\t{self._module_path()}",
            "module\t\t\tg711.so",
            "module\t\t\taufile.so",
            "module\t\t\tausine.so",
            "module_app\t\taccount.so",
            "module_app\t\tmenu.so",
            "module_app\t\tctrl_tcp.so",
            f"ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}",
        ]
        (folder / "config").write_text("\n".join(line for line in lines if line) + "\n")
        answermode = "auto" if self.answer else "manual"
        account = (
            f"<sip:{self.login}@{self.settings.sip_host}:{self.settings.sip_port}>"
            f";auth_pass={self.password};answermode={answermode};regint=300\n"
        )
        if not self.register:
            # regint=0: never REGISTER; incoming INVITEs for this user are still answered.
            account = f"<sip:{self.login}@127.0.0.1>;answermode={answermode};regint=0\n"
        (folder / "accounts").write_text(account)
        (folder / "contacts").write_text("")

    def _module_path(self) -> str:
        assert self._baresip is not None
        for folder in _MODULE_DIRS:
            if self._baresip.host("/" + folder).is_dir():
                return "/" + folder
        raise SoftphoneError("baresip modules folder not found")

    def _padded_audio(self, folder: Path) -> Path:
        from pydub import AudioSegment  # imported here: only softphones with audio need it

        assert self.audio is not None
        speech = AudioSegment.from_file(self.audio).set_frame_rate(8000).set_channels(1)
        padded = speech.set_sample_width(2) + AudioSegment.silent(
            duration=AUDIO_HOLD_SECONDS * 1000, frame_rate=8000
        )
        target = folder / "say.wav"
        padded.export(target, format="wav")
        return target
