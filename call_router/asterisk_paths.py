"""Where things are as Asterisk sees them: host paths in system mode, paths inside the chroot
in sandbox mode (hotline/asterisk/sandbox.py runs it). Plain values from settings, so the
FastAGI server (prompt and recording paths it hands to Asterisk) needs no process control.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from call_router.settings import Settings

DEFAULT_DATA_DIR = "/usr/share/asterisk"
MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/asterisk/modules",
    "/usr/lib/aarch64-linux-gnu/asterisk/modules",
    "/usr/lib/asterisk/modules",
    "/usr/lib64/asterisk/modules",
)
AsteriskMode = Literal["system", "sandbox"]


@dataclass(frozen=True)
class AsteriskPaths:
    """Folders as Asterisk itself sees them (inside the root in sandbox mode)."""

    etc: str
    spool: str
    log: str
    run: str
    lib: str
    recordings: str
    # Read-only parts of the install (sounds, modules): the same for every instance.
    data: str = DEFAULT_DATA_DIR
    modules: str = MODULE_DIRS[0]


def instance_id(settings: Settings) -> str:
    """A short, stable name for this state dir's instance."""
    return hashlib.sha256(str(settings.state_dir.resolve()).encode()).hexdigest()[:10]


def asterisk_mode(settings: Settings) -> AsteriskMode:
    """ "system": the host's own asterisk binary; "sandbox": Asterisk 22 in the chroot."""
    if settings.asterisk_mode == "system" or (
        settings.asterisk_mode == "auto" and shutil.which("asterisk")
    ):
        return "system"
    return "sandbox"


def inside_root(settings: Settings) -> str:
    """This instance's folder inside the sandbox root (its bind mounts live there)."""
    return f"/srv/hotline/{instance_id(settings)}"


def host_path(settings: Settings, mode: AsteriskMode, inside_path: str) -> Path:
    """The host path of a path as seen from inside the root (sandbox mode)."""
    if mode == "sandbox":
        return settings.sandbox_root / inside_path.lstrip("/")
    return Path(inside_path)


def asterisk_paths(settings: Settings, mode: AsteriskMode | None = None) -> AsteriskPaths:
    mode = mode or asterisk_mode(settings)
    if mode == "sandbox":
        base = f"{inside_root(settings)}/asterisk"
        recordings = f"{inside_root(settings)}/recordings"
    else:
        base = str(settings.asterisk_dir.resolve())
        recordings = str(settings.recordings_dir.resolve())
    modules = next(
        (d for d in MODULE_DIRS if host_path(settings, mode, d).is_dir()), MODULE_DIRS[0]
    )
    return AsteriskPaths(
        etc=f"{base}/etc",
        spool=f"{base}/spool",
        log=f"{base}/log",
        run=f"{base}/run",
        lib=f"{base}/lib",
        recordings=recordings,
        data=DEFAULT_DATA_DIR,
        modules=modules,
    )


def asterisk_view(settings: Settings, paths: AsteriskPaths, host: Path) -> str:
    """Where a host path under asterisk_dir or recordings_dir appears to Asterisk."""
    resolved = Path(host).resolve()
    for source, inside in (
        (settings.asterisk_dir.resolve(), paths.etc.rsplit("/", 1)[0]),
        (settings.recordings_dir.resolve(), paths.recordings),
    ):
        if resolved == source or source in resolved.parents:
            rel = resolved.relative_to(source)
            return inside if str(rel) == "." else f"{inside}/{rel}"
    raise ValueError(
        f"{host} is outside {settings.asterisk_dir} and "
        f"{settings.recordings_dir}: Asterisk cannot see it"
    )
