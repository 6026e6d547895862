"""Which process runs a hotline service: its pid file, trusted only while the pid's command
line is still ours (a stale file never makes us signal somebody else's process).

`hotline up` writes them (hotline/services.py); the dashboard and the CLI read them, e.g. to
ask the running FastAGI server to reload its flows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from call_router.settings import Settings

# Services agi2, agi3, ...: the pool's other FastAGI servers on this box.
_POOL_SERVER = re.compile(r"agi([2-9]|1[0-6])")


def pid_file(settings: Settings, name: str) -> Path:
    return settings.run_dir / f"{name}.pid"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def service_args(name: str) -> list[str]:
    """The `hotline` arguments that run a service: [name], except FastAGI server K of a pool
    (service agiK, K >= 2), which is `hotline agi --server K`."""
    match = _POOL_SERVER.fullmatch(name)
    return ["agi", "--server", match.group(1)] if match else [name]


def is_ours(pid: int, name: str) -> bool:
    """Is `pid` the `hotline <name>` service (and not a recycled pid)?"""
    args = cmdline(pid)
    if "hotline" not in args:
        return False
    server = args[args.index("--server") + 1] if "--server" in args[:-1] else "1"
    if name == "agi" and server != "1":
        return False  # another server of the pool
    wanted = service_args(name)
    return any(args[i : i + len(wanted)] == wanted for i in range(len(args)))


def read_pid(settings: Settings, name: str) -> int | None:
    try:
        pid = int(pid_file(settings, name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_ours(pid, name) else None


def read_agi_workers(settings: Settings) -> dict[str, Any] | None:
    """What the parent of `hotline agi --workers N` (agi_scripts/workers.py) last wrote about
    its workers: {"parent": pid, "workers": [{"index", "pid", "ready", "restarts"…}]}; None
    for a single process, or when no server runs."""
    try:
        data = json.loads(settings.agi_workers_file.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("workers"), list) else None
