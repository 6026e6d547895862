"""Which process runs a hotline service: its pid file, trusted only while the pid's command
line is still ours (a stale file never makes us signal somebody else's process).

`hotline up` writes them (hotline/services.py); the dashboard and the CLI read them, e.g. to
ask the running FastAGI server to reload its flows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from call_router.settings import Settings


def pid_file(settings: Settings, name: str) -> Path:
    return settings.run_dir / f"{name}.pid"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_ours(pid: int, name: str) -> bool:
    """Is `pid` the `hotline <name>` service (and not a recycled pid)?"""
    args = cmdline(pid)
    return "hotline" in args and name in args


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
