"""The sandbox's Debian sid root: built once with debootstrap (from the mirror the host's apt
uses), its small fixes, packages added later (jemalloc), and the unprivileged user Asterisk
runs as, added with ids no account of the host has. Shared by every instance (sandbox.py runs
Asterisk in it)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

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
# The unprivileged user and group the sandbox Asterisk runs as, added to the root with ids no
# account of the host has (the package's own `asterisk`, 101, is often the host's postgres:
# the same uid could signal or trace the database server).
RUN_USER = "hotline-asterisk"
RUN_IDS_FROM = 64000
ROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}


class AsteriskError(RuntimeError):
    """Asterisk could not be installed, started, stopped or reached."""


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


def warn_no_jemalloc(where: str) -> None:
    print(
        f"warning: jemalloc is not installed in {where}: Asterisk runs on glibc's malloc, whose "
        "memory creeps up over days (HOTLINE_ASTERISK_ALLOCATOR=glibc silences this)",
        file=sys.stderr,
    )


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


def mountpoints() -> set[str]:
    points = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 4:
                points.add(fields[4].replace("\\040", " "))
    return points


def is_mounted(path: Path) -> bool:
    return str(path.resolve()) in mountpoints()


def run_command(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def user_ids(root: Path, name: str) -> tuple[int, int] | None:
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


def ensure_run_user(root: Path, host_etc: Path = Path("/etc")) -> tuple[int, int]:
    """Add RUN_USER (user and group of one id) to the root unless it has it: the first id from
    RUN_IDS_FROM that no user or group of the host or the root has. Additive only."""
    found = user_ids(root, RUN_USER)
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


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def root_installed(root: Path) -> bool:
    return (root / "usr/sbin/asterisk").is_file()


def ensure_root(root: Path, settings: Settings, progress: Callable[[str], None] = print) -> None:
    """Build the sandbox root if it is missing, then its small fixes, jemalloc and the user
    Asterisk runs as (each additive, each under the root's lock)."""
    if not root_installed(root):
        root.parent.mkdir(parents=True, exist_ok=True)
        # Two processes (say `hotline up` and a test run) must not build at once.
        with open(root.with_name(root.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not root_installed(root):
                build_root(root, settings, progress)
    fix_root(root)
    if settings.asterisk_allocator == "jemalloc" and not jemalloc_library(root):
        # A root built before jemalloc was in PACKAGES: add it (additive, like the user).
        with open(root.with_name(root.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not jemalloc_library(root):
                add_packages(root, ["libjemalloc2"], progress)
    if user_ids(root, RUN_USER) is None:
        with open(root.with_name(root.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ensure_run_user(root)


def add_packages(root: Path, packages: list[str], progress: Callable[[str], None]) -> None:
    """apt-get install into the existing root; on failure Asterisk runs without them."""
    progress(f"adding {', '.join(packages)} to the sandbox root {root}")
    apt = ["chroot", str(root), "apt-get", "-o", "Acquire::Check-Valid-Until=false"]
    update = run_command([*apt, "-qq", "update"], timeout=300)
    install = run_command(
        [*apt, "install", "-y", "-qq", "--no-install-recommends", *packages], timeout=300
    )
    if update.returncode != 0 or install.returncode != 0:
        why = (install.stderr or update.stderr).strip().splitlines()[-1:] or ["no output"]
        warn_no_jemalloc(f"the sandbox root ({why[0]})")


def build_root(root: Path, settings: Settings, progress: Callable[[str], None]) -> None:
    if os.geteuid() != 0:
        raise AsteriskError(f"building the sandbox root {root} needs root (debootstrap)")
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
    if root.exists() and any(root.iterdir()):
        raise AsteriskError(f"{root} exists but has no usr/sbin/asterisk: remove it and retry")
    tmp = root.with_name(root.name + ".tmp")
    if tmp.exists():
        progress(f"removing a half-built root {tmp}")
        remove_root(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    log = settings.log_dir / "debootstrap.log"
    suite = settings.debian_suite
    progress(
        f"building the sandbox Asterisk root (Debian {suite}, about a minute, ~570 MB) "
        f"in {root}; log: {log}"
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
            env={**os.environ, **ROOT_ENV},
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
            f"Last lines of {log}:\n{tail(log)}"
        )
    fix_root(tmp)
    check = run_command(["chroot", str(tmp), "asterisk", "-V"])
    if check.returncode != 0:
        raise AsteriskError(f"the new root's asterisk does not run: {check.stderr.strip()}")
    unmount_under(tmp)
    tmp.rename(root)
    progress(f"sandbox root ready: {check.stdout.strip()}")


def fix_root(root: Path) -> None:
    """Small, idempotent fixes to the Debian root.

    asterisk-core-sounds-ru-gsm installs ru_RU_f_IvrvoiceRU/ but no `ru` link (English has
    one via alternatives), so a channel with language ru would fall back to English.
    """
    sounds = root / "usr/share/asterisk/sounds"
    ru = sounds / "ru"
    if (sounds / "ru_RU_f_IvrvoiceRU").is_dir() and not ru.exists() and not ru.is_symlink():
        ru.symlink_to("ru_RU_f_IvrvoiceRU")


def unmount_under(root: Path) -> None:
    prefix = str(root.resolve())
    for point in sorted(mountpoints(), key=len, reverse=True):
        if point == prefix or point.startswith(prefix + "/"):
            run_command(["umount", "-l", point])


def remove_root(root: Path) -> None:
    unmount_under(root)
    if any(p.startswith(str(root.resolve()) + "/") for p in mountpoints()):
        raise AsteriskError(f"cannot unmount everything under {root}; not removing it")
    shutil.rmtree(root)
