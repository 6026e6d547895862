"""The router's own view of its health, for `hotline status` and /healthz.

The router writes it to a small JSON file in the run directory whenever it changes, while
events are waiting, and at every AMI watchdog ping (5 s) - so it can be read without the
database or Redis, the very things it reports on. An `updated_at` older than ~15 s means the
router is stuck, down, or has lost Asterisk.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from call_router.settings import Settings

FILE_NAME = "router-health.json"


@dataclass(frozen=True)
class RouterHealth:
    # False from the first write that failed for want of a database until one succeeds again.
    database_reachable: bool
    # Events waiting for the database: on disk (the spool) and in all (disk plus memory).
    spool_depth: int
    backlog: int
    updated_at: datetime


def path(settings: Settings) -> Path:
    return settings.run_dir / FILE_NAME


def write(target: Path, health: RouterHealth) -> None:
    """Atomically: a reader never sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    data = {**asdict(health), "updated_at": health.updated_at.isoformat()}
    scratch = target.with_suffix(".tmp")
    scratch.write_text(json.dumps(data), encoding="utf-8")
    os.replace(scratch, target)


def read(settings: Settings) -> RouterHealth | None:
    """What the router last wrote; None if it never ran here (or the file is unreadable)."""
    try:
        data = json.loads(path(settings).read_text(encoding="utf-8"))
        return RouterHealth(
            database_reachable=bool(data["database_reachable"]),
            spool_depth=int(data["spool_depth"]),
            backlog=int(data["backlog"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
