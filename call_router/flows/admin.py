"""Checking the flow files and making the running FastAGI server reload them: what
`hotline flows check|reload` (hotline/cli_flows.py) and the supervisor's flows page
(dashboard/routes/flow_pages.py) both do. No CLI, no web: plain values in and out.

Which process is the running server (its pid) is the caller's to say: call_router/pid_files.py
keeps the pid files.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from call_router.flows.loader import FlowSet, load_flows
from call_router.pid_files import read_agi_workers
from call_router.settings import QUEUES, Settings

RELOAD_WAIT = 10.0


def flows_status_file(settings: Settings, worker: int = 0) -> Path:
    """Where the running FastAGI server says which flows it loaded (read by the CLI); each of
    `hotline agi --workers N` writes its own (worker 0 the single process's)."""
    return settings.run_dir / ("flows.json" if worker == 0 else f"flows.{worker}.json")


def check_flows(settings: Settings, folder: Path, texts_only: bool) -> FlowSet:
    """Every valid flow and every error (file: key path) of the files in `folder`."""
    return load_flows(
        folder,
        queues=QUEUES,
        timezone=settings.timezone,
        recordings=None if texts_only else settings.recordings_dir,
    )


@dataclass(frozen=True)
class ReloadOutcome:
    """What asking the running FastAGI server to reload its flows came to."""

    check: FlowSet  # the files as they are now (texts only, as the server loads them)
    running: bool  # a FastAGI server was there to ask
    confirmed: bool = False  # it wrote a fresh status within the wait
    status: dict[str, object] = field(default_factory=dict)

    @property
    def flows(self) -> list[str]:
        running = self.status.get("flows")
        return [str(f) for f in running] if isinstance(running, list) else []

    @property
    def refused(self) -> bool:
        """Broken files were refused (the server keeps their last good version)."""
        return bool(self.status.get("errors"))


def reload_flows(
    settings: Settings, server_pid: int | None, wait: float = RELOAD_WAIT
) -> ReloadOutcome:
    """Validate, then SIGHUP the running FastAGI server (`server_pid`, None when it is not
    running) and wait for its new status file (every worker's, under `--workers N`)."""
    result = check_flows(settings, settings.flows_dir, texts_only=True)
    if server_pid is None:
        return ReloadOutcome(result, running=False)
    targets = _reloaders(settings, server_pid)
    before = {path: read_status(path).get("generation") for path, _ in targets}
    os.kill(server_pid, signal.SIGHUP)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        statuses = [read_status(path) for path, _ in targets]
        if all(
            status.get("pid") == pid and status.get("generation") != before[path]
            for status, (path, pid) in zip(statuses, targets, strict=True)
        ):
            # Report a refusal if any worker refused (they read the same files).
            shown = next((s for s in statuses if s.get("errors")), statuses[0])
            return ReloadOutcome(result, running=True, confirmed=True, status=shown)
        time.sleep(0.1)
    return ReloadOutcome(result, running=True)


def _reloaders(settings: Settings, server_pid: int) -> list[tuple[Path, int]]:
    """(status file, pid) of each process that reloads on the server's SIGHUP: itself, or
    the ready workers of `hotline agi --workers N` (agi_scripts/workers.py), whose parent
    forwards the signal."""
    pool = read_agi_workers(settings)
    if pool is not None and pool.get("parent") == server_pid:
        ready = [
            (flows_status_file(settings, int(w["index"])), int(w["pid"]))
            for w in pool["workers"]
            if isinstance(w, dict) and w.get("pid") and w.get("ready")
        ]
        if ready:
            return ready
    return [(flows_status_file(settings), server_pid)]


def read_status(path: Path) -> dict[str, object]:
    """The status the FastAGI server writes after every load ({} when absent or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
