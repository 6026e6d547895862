"""`hotline agi --workers N`: the design, its limits and pure rules, what a worker inherits.

N FastAGI processes on one port, so a box uses all its cores. How: pre-fork with one shared
listening socket (what gunicorn, uvicorn and nginx do by default), not SO_REUSEPORT:

- The parent binds agi_host:agi_port once and hands the socket to every worker (an inherited
  file descriptor); all workers accept from the same kernel queue, and whichever is free first
  takes the next caller. With SO_REUSEPORT each worker has its own queue, picked by a hash of
  the caller's address: a busy worker still gets its 1/N share of new callers, and the
  connections queued on a worker that dies are reset. Here a dead worker costs only the calls it
  was running (the dialplan's fail-safe routes them to the coordinator); callers not yet
  accepted wait in the shared queue for the others.
- One bind: a port in use is reported once, at start; a restarted worker never has to bind
  again; nothing else running as the same user can join the port (SO_REUSEPORT would let it).

The caller's audio must reach the process that runs the call's menu: worker i listens for
AudioSocket on audiosocket_port + i and names that address, with HOTLINE_AUDIOSOCKET_ADVERTISE_HOST
as the host, in the `EXEC AudioSocket` it sends on the call's own AGI. Several boxes behind one
AGI address work the same way: each advertises its own host.

Per worker, never shared: the call-log spool (worker 0 keeps the single-process file name),
the session cap (HOTLINE_AGI_MAX_SESSIONS counts per worker), the flows, speech models and
database pool. Before any worker starts, spools left by workers that no longer exist (N shrank,
or a single process replaced by workers or back) are moved in front of a current worker's
spool, which replays them as a killed worker's own spool is replayed at its restart.

The parent supervises: a worker that exits unexpectedly is started again (with a growing pause
while it keeps dying at once); one that dies before it was ever ready stops the whole server
(a broken configuration must show, not loop). SIGHUP (`hotline flows reload`) reaches every
worker; SIGTERM/SIGINT stop them all (each drains its calls) before the parent exits, and a
worker whose parent dies gets SIGTERM. `run/agi-workers.json` says who is serving
(`hotline status`, `hotline health`).

The rest lives in: agi_scripts/worker_pool.py (the parent: binds, starts, restarts, signals,
status file), agi_scripts/worker_process.py (one worker: serve() on the inherited socket) and
agi_scripts/worker_spools.py (per-worker call-log spools, their locks and adoption).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from call_router.settings import Settings

MAX_WORKERS = 256
# The kernel's queue of callers waiting to be accepted (AgiServer's too): a burst of callers
# must not see SYN drops.
LISTEN_BACKLOG = 1024
# A worker that lived this long before dying was healthy: restart it at once.
HEALTHY_AFTER = 30.0
RESTART_PAUSE_MAX = 10.0
# Workers drain their calls (server.SHUTDOWN_GRACE) and their writer before this; then SIGKILL.
STOP_TIMEOUT = 20.0
READY_LINE = b"ready\n"


@dataclass(frozen=True)
class Listeners:
    """What a worker gets from its parent: the shared AGI socket, its own spool, its index.
    The default (all None) is the single process: it binds and names everything itself."""

    agi: socket.socket | None = None
    spool: Path | None = None
    worker: int | None = None


# --- pure rules ---------------------------------------------------------------------------


def available_cpus() -> int:
    """CPUs this process may run on (a container's or taskset's limit, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(value: int | str, cpus: int | None = None) -> int:
    """HOTLINE_AGI_WORKERS / --workers: a number, or "auto" (one per CPU)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return max(1, min(MAX_WORKERS, cpus if cpus is not None else available_cpus()))
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"workers must be a number or 'auto', not {value!r}") from None
    if not 1 <= count <= MAX_WORKERS:
        raise ValueError(f"workers must be between 1 and {MAX_WORKERS}, not {count}")
    return count


def audiosocket_port(base: int, index: int) -> int:
    """Worker `index`'s AudioSocket port: base + index (0: any free port, for tests)."""
    if base == 0:
        return 0
    port = base + index
    if port > 65535:
        raise ValueError(f"AudioSocket port {base} + worker {index} is past 65535")
    return port


def restart_pause(lived: float, quick_deaths: int) -> float:
    """Seconds before restarting a worker that lived `lived` s, the `quick_deaths`-th time in a
    row it died young: at once after a healthy run, then 0.5, 1, 2 ... up to 10 s."""
    if lived >= HEALTHY_AFTER or quick_deaths <= 0:
        return 0.0
    return float(min(RESTART_PAUSE_MAX, 0.5 * 2 ** (quick_deaths - 1)))


def status_file(settings: Settings) -> Path:
    return settings.agi_workers_file
