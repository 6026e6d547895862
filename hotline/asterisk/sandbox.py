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
`_ensure_run_user` adds to the root, with an id no host account or group has: Debian's own
`asterisk` user, uid 101, is another service's uid on many hosts, and processes of one uid may
signal each other across a chroot) makes it drop to that user right after reading asterisk.conf,
before
any module loads, any port is bound or any caller is heard. Why -U rather than
`chroot --userspec`: the same binary then still starts as root, so Linux keeps CAP_NET_ADMIN
for it (TOS/DSCP marks on SIP and RTP) and nothing else, and it sets the supplementary groups
of the root's user; `--userspec` would start it with no capability at all. Neither keeps
CAP_NET_BIND_SERVICE: the ports it binds (SIP, RTP, AMI, HTTP) must be above 1023 (5060 is).
Before each start the folders it writes are handed to that user (`_hand_over`, modes unchanged:
0700/0600), and files our processes write there later are too
(call_router/private_files.py `give_to_folder_owner`). The remote console (`asterisk -rx`, run
as root) still reaches the control socket in its run dir.

Never `rm -rf` a root while an instance runs: the bind mounts point at live state.

System mode: a host `asterisk` binary (e.g. on Ubuntu) runs with host paths, no mounts.
settings.asterisk_mode: "auto" (system if the host has asterisk, else sandbox), "system",
"sandbox".
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
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

PACKAGES = (
    "asterisk",
    "asterisk-core-sounds-en-gsm",
    "asterisk-core-sounds-ru-gsm",
    "sip-tester",
    "baresip",
    # The allocator Asterisk runs with (settings.asterisk_allocator).
    "libjemalloc2",
)
# Where Debian's libjemalloc2 puts the library, relative to a root (any architecture).
JEMALLOC_GLOB = "usr/lib/*/libjemalloc.so.2"
AMI_BANNER = b"Asterisk Call Manager"
# The unprivileged user and group the sandbox Asterisk runs as, added to the root with ids no
# account of the host has (the package's own `asterisk`, 101, is often the host's postgres:
# the same uid could signal or trace the database server).
RUN_USER = "hotline-asterisk"
RUN_IDS_FROM = 64000
# Folders under recordings/ that Asterisk writes (the rest it only reads).
ASTERISK_WRITES = ("voicemail", "calls", "utterances")
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}


def jemalloc_library(root: Path) -> str | None:
    """The path of libjemalloc as seen inside `root` (/ for the host), if it is installed."""
    found = sorted(root.glob(JEMALLOC_GLOB))
    return "/" + str(found[0].relative_to(root)) if found else None


def asterisk_environment(
    settings: Settings, base: Mapping[str, str], root: Path = Path("/")
) -> dict[str, str]:
    """The environment Asterisk runs in: `base` plus the allocator the settings choose
    (jemalloc preloaded when `root` has it; glibc's arenas bounded in any case)."""
    env = dict(base)
    if settings.asterisk_malloc_arena_max:
        env["MALLOC_ARENA_MAX"] = str(settings.asterisk_malloc_arena_max)
    library = jemalloc_library(root) if settings.asterisk_allocator == "jemalloc" else None
    if library is not None:
        env["LD_PRELOAD"] = library
    return env


def _warn_no_jemalloc(where: str) -> None:
    print(
        f"warning: jemalloc is not installed in {where}: Asterisk runs on glibc's malloc, whose "
        "memory creeps up over days (HOTLINE_ASTERISK_ALLOCATOR=glibc silences this)",
        file=sys.stderr,
    )


class AsteriskError(RuntimeError):
    """Asterisk could not be installed, started, stopped or reached."""


@dataclass(frozen=True)
class AsteriskStatus:
    running: bool
    pid: int | None
    detail: str


def debian_mirror(
    sources_dir: Path = Path("/etc/apt/sources.list.d"),
    sources_list: Path = Path("/etc/apt/sources.list"),
) -> str | None:
    """The Debian mirror the host's apt already uses (never hard-coded in the repo)."""
    candidates: list[str] = []
    for path in sorted(sources_dir.glob("*.sources")) if sources_dir.is_dir() else []:
        for stanza in re.split(r"\n\s*\n", path.read_text(errors="replace")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            if "deb" not in fields.get("types", "deb").split():
                continue
            suites = fields.get("suites", "").split()
            if suites and all("security" in s for s in suites):
                continue
            candidates.extend(fields.get("uris", "").split())
    if sources_list.is_file():
        for line in sources_list.read_text(errors="replace").splitlines():
            parts = line.split("#", 1)[0].split()
            if not parts or parts[0] != "deb":
                continue
            parts = [p for p in parts[1:] if not p.startswith("[")]
            # Drop a multi-word "[ ... ]" option block.
            while parts and parts[0].endswith("]"):
                parts = parts[1:]
            if len(parts) >= 2 and "security" not in parts[1]:
                candidates.append(parts[0])
    for uri in candidates:
        if uri.startswith(("http://", "https://", "file:/")):
            return uri.rstrip("/")
    return None


def _mountpoints() -> set[str]:
    points = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 4:
                points.add(fields[4].replace("\\040", " "))
    return points


def _is_mounted(path: Path) -> bool:
    return str(path.resolve()) in _mountpoints()


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


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


def _user_ids(root: Path, name: str) -> tuple[int, int] | None:
    """(uid, gid) of a user in a root's /etc/passwd, or None."""
    try:
        lines = (root / "etc" / "passwd").read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == name:
            with contextlib.suppress(ValueError):
                return int(fields[2]), int(fields[3])
    return None


def _ids_in(path: Path) -> set[int]:
    """The numeric ids (third field) of a passwd or group file."""
    ids = set()
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[2].isdigit():
                ids.add(int(fields[2]))
    return ids


def _ensure_run_user(root: Path, host_etc: Path = Path("/etc")) -> tuple[int, int]:
    """Add RUN_USER (user and group of one id) to the root unless it has it: the first id from
    RUN_IDS_FROM that no user or group of the host or the root has. Additive only."""
    found = _user_ids(root, RUN_USER)
    if found is not None:
        return found
    taken = set()
    for etc in (host_etc, root / "etc"):
        taken |= _ids_in(etc / "passwd") | _ids_in(etc / "group")
    new_id = next(i for i in range(RUN_IDS_FROM, 65534) if i not in taken)
    with (root / "etc" / "group").open("a") as group:
        group.write(f"{RUN_USER}:x:{new_id}:\n")
    with (root / "etc" / "passwd").open("a") as passwd:
        passwd.write(
            f"{RUN_USER}:x:{new_id}:{new_id}:Hotline Asterisk:/nonexistent:/usr/sbin/nologin\n"
        )
    return new_id, new_id


def _chown_tree(top: Path, uid: int, gid: int, *, unreadable_only: bool = False) -> None:
    """chown -R without following symlinks, skipping what is already right.

    `unreadable_only`: only what other users could not read (files without o+r, folders
    without o+rx), i.e. what our own umask 077 made; the rest Asterisk reads as anyone does.
    """

    def fix(path: Path, folder: bool) -> None:
        try:
            st = path.lstat()
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode) or (st.st_uid, st.st_gid) == (uid, gid):
            return
        if unreadable_only:
            need = 0o005 if folder else 0o004
            if st.st_mode & need == need:
                return
        with contextlib.suppress(OSError):
            os.chown(path, uid, gid, follow_symlinks=False)

    if not top.is_dir() or top.is_symlink():
        return
    fix(top, True)
    for dirpath, dirs, files in os.walk(top):
        for name in dirs:
            fix(Path(dirpath) / name, True)
        for name in files:
            fix(Path(dirpath) / name, False)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


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
        return _user_ids(self.root, RUN_USER)

    def _hand_over(self, ids: tuple[int, int]) -> None:
        """Give Asterisk's user what it works in, modes unchanged (0700 / 0600).

        All of asterisk/ (config, spool, logs, run dir, astdb) and the recordings folders it
        writes; elsewhere in recordings/ (prompts, music) only what it could not read
        otherwise (written under our umask 077). The folders that lead to the bind mounts
        inside the root become enterable by its group only.
        """
        uid, gid = ids
        _chown_tree(self.settings.asterisk_dir, uid, gid)
        recordings = self.settings.recordings_dir
        for name in ASTERISK_WRITES:
            # Made now if missing: one made later by our processes (root, 0700) would be
            # closed to Asterisk (RECORD FILE of an utterance, a voicemail).
            with contextlib.suppress(OSError):
                (recordings / name).mkdir(mode=0o700, parents=True, exist_ok=True)
            _chown_tree(recordings / name, uid, gid)
        _chown_tree(recordings, uid, gid, unreadable_only=True)
        srv = self.root / "srv" / "hotline"
        instance = srv / self.instance
        for folder, owner, mode in ((srv, 0, 0o711), (instance, 0, 0o750)):
            with contextlib.suppress(OSError):
                os.chown(folder, owner, gid)
                os.chmod(folder, mode)

    def _argv(self, *args: str) -> list[str]:
        if self.mode == "sandbox":
            return ["chroot", str(self.root), "asterisk", *args]
        return [self._binary, *args]

    # --- install --------------------------------------------------------------------------

    def installed(self) -> bool:
        if self.mode == "system":
            return shutil.which("asterisk") is not None
        return (self.root / "usr/sbin/asterisk").is_file()

    def ensure_installed(self, progress: Callable[[str], None] = print) -> None:
        """Build the sandbox root if it is missing; a system Asterisk needs nothing."""
        if self.mode == "system":
            if not self.installed():
                raise AsteriskError(
                    "asterisk_mode is 'system' but there is no asterisk binary on PATH"
                )
            return
        if not self.installed():
            self.root.parent.mkdir(parents=True, exist_ok=True)
            # Two processes (say `hotline up` and a test run) must not build at once.
            with open(self.root.with_name(self.root.name + ".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not self.installed():
                    self._build_root(progress)
        self._fix_root(self.root)
        if self.settings.asterisk_allocator == "jemalloc" and not jemalloc_library(self.root):
            # A root built before jemalloc was in PACKAGES: add it (additive, like the user).
            with open(self.root.with_name(self.root.name + ".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not jemalloc_library(self.root):
                    self._add_packages(["libjemalloc2"], progress)
        if _user_ids(self.root, RUN_USER) is None:
            with open(self.root.with_name(self.root.name + ".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                _ensure_run_user(self.root)

    def _add_packages(self, packages: list[str], progress: Callable[[str], None]) -> None:
        """apt-get install into the existing root; on failure Asterisk runs without them."""
        progress(f"adding {', '.join(packages)} to the sandbox root {self.root}")
        apt = ["chroot", str(self.root), "apt-get", "-o", "Acquire::Check-Valid-Until=false"]
        update = _run([*apt, "-qq", "update"], timeout=300)
        install = _run(
            [*apt, "install", "-y", "-qq", "--no-install-recommends", *packages], timeout=300
        )
        if update.returncode != 0 or install.returncode != 0:
            why = (install.stderr or update.stderr).strip().splitlines()[-1:] or ["no output"]
            _warn_no_jemalloc(f"the sandbox root ({why[0]})")

    def _build_root(self, progress: Callable[[str], None]) -> None:
        if os.geteuid() != 0:
            raise AsteriskError(f"building the sandbox root {self.root} needs root (debootstrap)")
        debootstrap = shutil.which("debootstrap")
        if not debootstrap:
            raise AsteriskError(
                "debootstrap is not installed, so the sandbox Asterisk root cannot be built: "
                "run the setup script (or `apt-get install debootstrap`)"
            )
        mirror = debian_mirror()
        if not mirror:
            raise AsteriskError(
                "no Debian mirror found in /etc/apt/sources.list.d/*.sources or "
                "/etc/apt/sources.list: cannot build the sandbox root"
            )
        if self.root.exists() and any(self.root.iterdir()):
            raise AsteriskError(
                f"{self.root} exists but has no usr/sbin/asterisk: remove it and retry"
            )
        tmp = self.root.with_name(self.root.name + ".tmp")
        if tmp.exists():
            progress(f"removing a half-built root {tmp}")
            self._remove_root(tmp)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.settings.log_dir / "debootstrap.log"
        suite = self.settings.debian_suite
        progress(
            f"building the sandbox Asterisk root (Debian {suite}, about a minute, ~570 MB) "
            f"in {self.root}; log: {log}"
        )
        argv = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            suite,
            str(tmp),
            mirror,
        ]
        phases = re.compile(
            r"^I: (Retrieving Release|Checking component|Retrieving Packages$|Resolving|"
            r"Found additional|Unpacking the base system|Installing core packages|"
            r"Configuring the base system|Base system installed)"
        )
        with log.open("w") as out:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, **_ENV},
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                if phases.match(line):
                    progress("  " + line.strip()[3:])
            code = proc.wait()
        if code != 0 or not (tmp / "usr/sbin/asterisk").is_file():
            raise AsteriskError(
                f"debootstrap failed (exit {code}); the half-built root {tmp} is never used. "
                f"Last lines of {log}:\n{_tail(log)}"
            )
        self._fix_root(tmp)
        check = _run(["chroot", str(tmp), "asterisk", "-V"])
        if check.returncode != 0:
            raise AsteriskError(f"the new root's asterisk does not run: {check.stderr.strip()}")
        self._unmount_under(tmp)
        tmp.rename(self.root)
        progress(f"sandbox root ready: {check.stdout.strip()}")

    @staticmethod
    def _fix_root(root: Path) -> None:
        """Small, idempotent fixes to the Debian root.

        asterisk-core-sounds-ru-gsm installs ru_RU_f_IvrvoiceRU/ but no `ru` link (English has
        one via alternatives), so a channel with language ru would fall back to English.
        """
        sounds = root / "usr/share/asterisk/sounds"
        ru = sounds / "ru"
        if (sounds / "ru_RU_f_IvrvoiceRU").is_dir() and not ru.exists() and not ru.is_symlink():
            ru.symlink_to("ru_RU_f_IvrvoiceRU")

    @staticmethod
    def _unmount_under(root: Path) -> None:
        prefix = str(root.resolve())
        for point in sorted(_mountpoints(), key=len, reverse=True):
            if point == prefix or point.startswith(prefix + "/"):
                _run(["umount", "-l", point])

    def _remove_root(self, root: Path) -> None:
        self._unmount_under(root)
        if any(p.startswith(str(root.resolve()) + "/") for p in _mountpoints()):
            raise AsteriskError(f"cannot unmount everything under {root}; not removing it")
        shutil.rmtree(root)

    # --- mounts ---------------------------------------------------------------------------

    def _mount(self) -> None:
        proc_dir = self.root / "proc"
        if not _is_mounted(proc_dir):
            res = _run(["mount", "-t", "proc", "proc", str(proc_dir)])
            if res.returncode != 0 and not _is_mounted(proc_dir):
                raise AsteriskError(f"cannot mount /proc in {self.root}: {res.stderr.strip()}")
        for source, point in self._mounts():
            source.mkdir(parents=True, exist_ok=True)
            point.mkdir(parents=True, exist_ok=True)
            if _is_mounted(point):
                continue
            res = _run(["mount", "--bind", str(source.resolve()), str(point)])
            if res.returncode != 0:
                raise AsteriskError(f"cannot bind-mount {source} on {point}: {res.stderr.strip()}")

    def _unmount(self) -> None:
        for _source, point in reversed(self._mounts()):
            if not _is_mounted(point):
                continue
            res = _run(["umount", str(point)])
            if res.returncode != 0 and _is_mounted(point):
                # Busy (e.g. a shell sits in it): detach now, it goes when released.
                _run(["umount", "-l", str(point)])
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
            self._hand_over(ids)
            user = ("-U", RUN_USER, "-G", RUN_USER)
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        argv = self._argv("-C", self.conf, *user, "-f", "-n")
        if self.mode == "sandbox":
            env = asterisk_environment(self.settings, _ENV, self.root)
        else:
            env = asterisk_environment(self.settings, os.environ)
            if self.settings.asterisk_allocator == "jemalloc" and "LD_PRELOAD" not in env:
                _warn_no_jemalloc("this host (apt-get install libjemalloc2)")
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
                    f"and {self.log_file}:\n{_tail(self.out_file)}"
                )
            if self._ami_answers():
                break
            time.sleep(0.3)
        else:
            self.stop()
            raise AsteriskError(
                f"asterisk did not answer on AMI {self.settings.ami_host}:{self.settings.ami_port} "
                f"within {timeout:.0f}s; see {self.out_file} and {self.log_file}:\n"
                f"{_tail(self.log_file)}"
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
            env=_ENV if self.mode == "sandbox" else None,
        )
        if res.returncode != 0 or res.stdout.startswith("Unable to connect"):
            raise AsteriskError(
                f"asterisk -rx {command!r} failed ({res.returncode}): "
                f"{(res.stdout + res.stderr).strip() or 'no output'}"
            )
        return res.stdout
