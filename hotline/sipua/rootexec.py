"""Run a SIP user agent program (sipp, baresip) on the host or inside the sandbox root.

System mode: the program is on the host PATH (e.g. Ubuntu with the packages
installed) and runs directly. Chroot mode: it only exists inside
``Settings().sandbox_root`` and runs as ``chroot ROOT prog ...``; every file it
reads or writes must then live inside ROOT, so per-run work folders are created
under ``ROOT/tmp`` and paths are translated before they go on a command line.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from call_router.settings import Settings

_SEARCH_DIRS = ("usr/bin", "usr/sbin", "usr/local/bin", "bin", "sbin")


class ProgramNotFound(RuntimeError):
    """Neither the host nor the sandbox root has the program."""


@dataclass(frozen=True)
class RootExec:
    """How to start one program: directly (root is None) or chrooted into ``root``."""

    program: str
    executable: str
    root: Path | None

    @property
    def chrooted(self) -> bool:
        return self.root is not None

    def argv(self, *args: str) -> list[str]:
        if self.root is None:
            return [self.executable, *args]
        return ["chroot", str(self.root), self.executable, *args]

    def inside(self, host_path: Path) -> str:
        """The path the program sees for ``host_path`` (which must be inside the root)."""
        if self.root is None:
            return str(host_path)
        relative = host_path.resolve().relative_to(self.root.resolve())
        return "/" + str(relative)

    def host(self, program_path: str) -> Path:
        """The host path of a file the program names (e.g. a pcap shipped in the root)."""
        if self.root is None:
            return Path(program_path)
        return self.root / program_path.lstrip("/")

    def make_workdir(self, prefix: str = "hotline-sipua-") -> Path:
        """A fresh per-run folder the program can read and write; the caller removes it."""
        base = self.root / "tmp" if self.root is not None else None
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
            base.chmod(0o1777)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=base))

    def popen(self, *args: str, **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv(*args), **kwargs)  # type: ignore[call-overload]


def find_program(settings: Settings, program: str) -> RootExec:
    """Prefer the host's program (system mode) unless the settings force the sandbox."""
    if settings.asterisk_mode != "sandbox":
        on_path = shutil.which(program)
        if on_path:
            return RootExec(program, on_path, None)
    if settings.asterisk_mode != "system":
        root = settings.sandbox_root
        for folder in _SEARCH_DIRS:
            candidate = root / folder / program
            if candidate.is_file():
                return RootExec(program, "/" + f"{folder}/{program}", root)
    raise ProgramNotFound(
        f"{program} is neither on PATH nor in the sandbox root {settings.sandbox_root}"
        " (build the root first, or install the package)"
    )


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
