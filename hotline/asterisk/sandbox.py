"""Run the hotline's Asterisk: the host's own (system mode) or Asterisk 22 in a chroot (sandbox).

Why a chroot: our machines run Debian bookworm, which ships no `asterisk` package at all;
Debian sid has Asterisk 22. `debootstrap --variant=minbase` builds a small sid root
(~570 MB, about a minute) with asterisk, its Russian and English sounds, SIPp and baresip,
in settings.sandbox_root (a cache folder outside the repo, reused by every instance). No Docker
is needed, and the root's packages come from the same Debian mirror the host already uses.

Sandbox mode, per instance (one per state dir):
  ROOT/proc                              mounted once, shared by all instances (never unmounted)
  ROOT/srv/hotline/<id>/asterisk         bind mount of settings.asterisk_dir (config, spool...)
  ROOT/srv/hotline/<id>/recordings       bind mount of settings.recordings_dir
<id> is a short hash of the resolved state dir, so a test run and a developer's hotline run
side by side (on different ports). Asterisk runs as `chroot ROOT asterisk -C .../asterisk.conf -f`
(foreground, no console: `-c` without a tty spins), its output in settings.log_dir/asterisk.out,
its pid in settings.run_dir/asterisk.pid. Stop only ever signals that pid, after checking that
it is still our asterisk.

Asterisk does not run as root: `-U hotline-asterisk -G hotline-asterisk` (a user and group
`ensure_run_user` adds to the root, with an id no host account or group has: Debian's own
`asterisk` user, uid 101, is another service's uid on many hosts, and processes of one uid may
signal each other across a chroot) makes it drop to that user right after reading asterisk.conf,
before
any module loads, any port is bound or any caller is heard. Why -U rather than
`chroot --userspec`: the same binary then still starts as root, so Linux keeps CAP_NET_ADMIN
for it (TOS/DSCP marks on SIP and RTP) and nothing else, and it sets the supplementary groups
of the root's user; `--userspec` would start it with no capability at all. Neither keeps
CAP_NET_BIND_SERVICE: the ports it binds (SIP, RTP, AMI, HTTP) must be above 1023 (5060 is).
Before each start the folders it writes are handed to that user (sandbox_owner.py
`hand_over`, modes unchanged: 0700/0600), and files our processes write there later are too
(call_router/private_files.py `give_to_folder_owner`). The remote console (`asterisk -rx`, run
as root) still reaches the control socket in its run dir.

Never `rm -rf` a root while an instance runs: the bind mounts point at live state. Building
the root is sandbox_root.py.

System mode: a host `asterisk` binary (e.g. on Ubuntu) runs with host paths, no mounts.
settings.asterisk_mode: "auto" (system if the host has asterisk, else sandbox), "system",
"sandbox".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from call_router.asterisk_paths import (
    AsteriskMode,
    asterisk_mode,
    asterisk_paths,
    asterisk_view,
    host_path,
    inside_root,
    instance_id,
)
from call_router.settings import Settings
from hotline.asterisk.sandbox_owner import hand_over
from hotline.asterisk.sandbox_root import (
    ROOT_ENV,
    RUN_USER,
    AsteriskError,
    asterisk_environment,
    ensure_root,
    is_mounted,
    root_installed,
    run_command,
    tail,
    user_ids,
    warn_no_jemalloc,
)

AMI_BANNER = b"Asterisk Call Manager"


@dataclass(frozen=True)
class AsteriskStatus:
    running: bool
    pid: int | None
    detail: str


def _pid_alive(pid: int) -> bool:
    """True for a live process; False for none or a zombie (which we reap if it is our child)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


class Asterisk:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.sandbox_root
        self.instance = instance_id(settings)
        self.mode: AsteriskMode = asterisk_mode(settings)
        self._binary = shutil.which("asterisk") or "asterisk"
        self._proc: subprocess.Popen[bytes] | None = None
        self.inside = inside_root(settings)
        self.paths = asterisk_paths(settings, self.mode)

    # --- where things are --------------------------------------------------------------------

    @property
    def conf(self) -> str:
        """asterisk.conf as Asterisk sees it."""
        return f"{self.paths.etc}/asterisk.conf"

    @property
    def pid_file(self) -> Path:
        return self.settings.run_dir / "asterisk.pid"

    @property
    def out_file(self) -> Path:
        return self.settings.log_dir / "asterisk.out"

    @property
    def log_file(self) -> Path:
        """Asterisk's own full log on the host."""
        return self.settings.asterisk_dir / "log" / "full"

    def _host(self, inside_path: str) -> Path:
        """The host path of a path as seen from inside the root (sandbox mode)."""
        return host_path(self.settings, self.mode, inside_path)

    def _mounts(self) -> list[tuple[Path, Path]]:
        """(host source, mountpoint on the host) for this instance's bind mounts."""
        mp = self.root / self.inside.lstrip("/")
        return [
            (self.settings.asterisk_dir, mp / "asterisk"),
            (self.settings.recordings_dir, mp / "recordings"),
        ]

    def view(self, host: Path) -> str:
        """Where a host path under asterisk_dir or recordings_dir appears to Asterisk."""
        return asterisk_view(self.settings, self.paths, host)

    def run_ids(self) -> tuple[int, int] | None:
        """(uid, gid) of the root's `asterisk` user, which the sandbox Asterisk runs as."""
        if self.mode != "sandbox":
            return None
        return user_ids(self.root, RUN_USER)

    def _argv(self, *args: str) -> list[str]:
        if self.mode == "sandbox":
            return ["chroot", str(self.root), "asterisk", *args]
        return [self._binary, *args]

    # --- install --------------------------------------------------------------------------

    def installed(self) -> bool:
        if self.mode == "system":
            return shutil.which("asterisk") is not None
        return root_installed(self.root)

    def ensure_installed(self, progress: Callable[[str], None] = print) -> None:
        """Build the sandbox root if it is missing; a system Asterisk needs nothing."""
        if self.mode == "system":
            if not self.installed():
                raise AsteriskError(
                    "asterisk_mode is 'system' but there is no asterisk binary on PATH"
                )
            return
        ensure_root(self.root, self.settings, progress)

    # --- mounts ---------------------------------------------------------------------------

    def _mount(self) -> None:
        proc_dir = self.root / "proc"
        if not is_mounted(proc_dir):
            res = run_command(["mount", "-t", "proc", "proc", str(proc_dir)])
            if res.returncode != 0 and not is_mounted(proc_dir):
                raise AsteriskError(f"cannot mount /proc in {self.root}: {res.stderr.strip()}")
        for source, point in self._mounts():
            source.mkdir(parents=True, exist_ok=True)
            point.mkdir(parents=True, exist_ok=True)
            if is_mounted(point):
                continue
            res = run_command(["mount", "--bind", str(source.resolve()), str(point)])
            if res.returncode != 0:
                raise AsteriskError(f"cannot bind-mount {source} on {point}: {res.stderr.strip()}")

    def _unmount(self) -> None:
        for _source, point in reversed(self._mounts()):
            if not is_mounted(point):
                continue
            res = run_command(["umount", str(point)])
            if res.returncode != 0 and is_mounted(point):
                # Busy (e.g. a shell sits in it): detach now, it goes when released.
                run_command(["umount", "-l", str(point)])
        with contextlib.suppress(OSError):
            for _source, point in self._mounts():
                point.rmdir()
            (self.root / self.inside.lstrip("/")).rmdir()

    # --- process ----------------------------------------------------------------------------

    def _read_pid(self) -> int | None:
        """Our asterisk's pid, or None (no pid file, dead, or a reused pid that is not ours).

        Our pid file first; then the one Asterisk writes in its own run dir (same pid: the
        chroot shares the host's process namespace), in case ours was lost.
        """
        for path in (self.pid_file, self.settings.asterisk_dir / "run" / "asterisk.pid"):
            try:
                pid = int(path.read_text().strip())
            except (OSError, ValueError):
                continue
            if not _pid_alive(pid):
                continue
            args = _cmdline(pid)
            if args and Path(args[0]).name == "asterisk" and self.conf in args:
                return pid
        return None

    def _check_ports_free(self) -> None:
        """Fail early and clearly: another process on our AMI or SIP port breaks everything."""
        if self._ami_answers(timeout=1):
            raise AsteriskError(
                f"something already answers on AMI port {self.settings.ami_host}:"
                f"{self.settings.ami_port} (another Asterisk?); stop it or change HOTLINE_AMI_PORT"
            )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind((self.settings.sip_host, self.settings.sip_port))
            except OSError as err:
                raise AsteriskError(
                    f"SIP port {self.settings.sip_host}:{self.settings.sip_port}/udp is taken "
                    f"({err.strerror}); stop the other program or change HOTLINE_SIP_PORT"
                ) from None

    def _ami_answers(self, timeout: float = 2) -> bool:
        try:
            with socket.create_connection(
                (self.settings.ami_host, self.settings.ami_port), timeout=timeout
            ) as sock:
                sock.settimeout(timeout)
                return sock.recv(64).startswith(AMI_BANNER)
        except OSError:
            return False

    def start(self, timeout: float = 60) -> None:
        """Start Asterisk with the rendered config; return when AMI answers. Idempotent."""
        if self._read_pid():
            return
        self.ensure_installed()
        host_conf = self.settings.asterisk_dir / "etc" / "asterisk.conf"
        if not host_conf.is_file():
            raise AsteriskError(f"no rendered config at {host_conf}: render it first")
        self._check_ports_free()
        user: tuple[str, ...] = ()
        if self.mode == "sandbox":
            self._mount()
            ids = self.run_ids()
            if ids is None:
                raise AsteriskError(
                    f"the sandbox root {self.root} has no {RUN_USER!r} user to run Asterisk as "
                    "(is its asterisk package installed?)"
                )
            hand_over(self.settings, self.root, self.instance, ids)
            user = ("-U", RUN_USER, "-G", RUN_USER)
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        argv = self._argv("-C", self.conf, *user, "-f", "-n")
        if self.mode == "sandbox":
            env = asterisk_environment(self.settings, ROOT_ENV, self.root)
        else:
            env = asterisk_environment(self.settings, os.environ)
            if self.settings.asterisk_allocator == "jemalloc" and "LD_PRELOAD" not in env:
                warn_no_jemalloc("this host (apt-get install libjemalloc2)")
        with self.out_file.open("ab") as out:
            out.write(f"--- {time.strftime('%F %T')} starting {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        self._proc = proc  # kept so Python does not warn about a running child it dropped
        self.pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                self.pid_file.unlink(missing_ok=True)
                if self.mode == "sandbox":
                    self._unmount()
                raise AsteriskError(
                    f"asterisk exited with code {code} while starting; see {self.out_file} "
                    f"and {self.log_file}:\n{tail(self.out_file)}"
                )
            if self._ami_answers():
                break
            time.sleep(0.3)
        else:
            self.stop()
            raise AsteriskError(
                f"asterisk did not answer on AMI {self.settings.ami_host}:{self.settings.ami_port} "
                f"within {timeout:.0f}s; see {self.out_file} and {self.log_file}:\n"
                f"{tail(self.log_file)}"
            )
        # AMI comes up before every module is loaded; wait for the end of start-up.
        with contextlib.suppress(AsteriskError, subprocess.TimeoutExpired):
            self.cli("core waitfullybooted", timeout=max(5.0, deadline - time.monotonic()))

    def stop(self, timeout: float = 20) -> None:
        """Stop the Asterisk we started (only that pid) and unmount. Safe to re-run."""
        pid = self._read_pid()
        if pid:
            with contextlib.suppress(AsteriskError, subprocess.TimeoutExpired):
                self.cli("core stop now", timeout=min(5.0, timeout))
            if not self._wait_gone(pid, timeout / 2):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                if not self._wait_gone(pid, timeout / 2):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    self._wait_gone(pid, 5)
        self.pid_file.unlink(missing_ok=True)
        if self.mode == "sandbox":
            self._unmount()

    def pid(self) -> int | None:
        """Our running asterisk's pid, or None."""
        return self._read_pid()

    def kill(self, timeout: float = 10) -> int | None:
        """SIGKILL our asterisk the way a crash ends it (no shutdown, mounts left for `stop`);
        its pid, or None if it was not running."""
        pid = self._read_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, timeout)
        return pid

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return True
            time.sleep(0.1)
        return not _pid_alive(pid)

    def status(self) -> AsteriskStatus:
        pid = self._read_pid()
        where = f"{self.mode} {self.root}" if self.mode == "sandbox" else "system"
        if not pid:
            return AsteriskStatus(False, None, f"stopped ({where})")
        try:
            version = self.cli("core show version", timeout=5).strip().splitlines()[0]
            uptime = self.cli("core show uptime", timeout=5).strip().splitlines()[0]
            detail = (
                f"running, pid {pid}, {version.split(' built ')[0]}, {uptime.lower()} ({where})"
            )
        except (AsteriskError, subprocess.TimeoutExpired, IndexError) as err:
            detail = f"running, pid {pid}, but the CLI does not answer: {err} ({where})"
        return AsteriskStatus(True, pid, detail)

    def cli(self, command: str, timeout: float = 15) -> str:
        """Run one CLI command on the running Asterisk (`asterisk -rx`) and return its output."""
        if "\n" in command or "\0" in command:
            raise AsteriskError("one CLI command at a time")
        if not self._read_pid():
            raise AsteriskError(
                f"asterisk is not running for {self.settings.state_dir} ({self.mode} mode)"
            )
        res = subprocess.run(
            self._argv("-C", self.conf, "-rx", command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=ROOT_ENV if self.mode == "sandbox" else None,
        )
        if res.returncode != 0 or res.stdout.startswith("Unable to connect"):
            raise AsteriskError(
                f"asterisk -rx {command!r} failed ({res.returncode}): "
                f"{(res.stdout + res.stderr).strip() or 'no output'}"
            )
        return res.stdout
