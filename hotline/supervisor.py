"""`hotline supervise`: restarts a service of `hotline up` that died on its own.

`hotline up` starts it next to the services (its own pid file, `supervise.pid`); `hotline
down` stops it first. It watches the pid files: a service whose process is gone and that was
not stopped on purpose (`services.stop_service` leaves a "held" mark) is cleaned up (orphaned
uvicorn workers) and started again. A service that keeps dying soon after its start is
restarted with a growing delay and, after too many fast crashes in a row, left down with an
error in the log and in `hotline status`. Restarts are counted in `supervise.json`.

In production systemd (deploy/systemd/) or Compose (`restart: unless-stopped`) does this job;
this is the same for the processes `hotline up` runs. supervisord/circus would add a second
daemon with its own config and control socket next to the pid files `hotline up/down/status`
already keep, for a loop of a few dozen lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import structlog

from call_router.settings import Settings
from hotline import services

NAME = "supervise"
POLL_INTERVAL = 0.5
# How long a dead child may take to finish exiting before its status is read.
EXIT_WAIT = 2.0

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a service that died, and when to stop trying.

    A run shorter than `min_uptime` is a fast crash; consecutive fast crashes wait
    `first_delay`, twice that, ... up to `max_delay`, and after `max_fast_crashes` of them the
    service is given up. A service that ran longer is restarted at once.
    """

    min_uptime: float = 10.0
    first_delay: float = 1.0
    max_delay: float = 30.0
    max_fast_crashes: int = 6

    def after_exit(self, uptime: float, fast_crashes: int) -> tuple[int, float | None]:
        """(fast crashes in a row now, delay before the restart or None to give up)."""
        if uptime >= self.min_uptime:
            return 0, 0.0
        fast_crashes += 1
        if fast_crashes > self.max_fast_crashes:
            return fast_crashes, None
        return fast_crashes, min(self.first_delay * 2 ** (fast_crashes - 1), self.max_delay)


@dataclass
class ServiceRecord:
    """What `hotline status` shows of one supervised service (supervise.json)."""

    restarts: int = 0
    fast_crashes: int = 0
    last_exit: str | None = None
    last_restart: str | None = None
    gave_up: bool = False


@dataclass
class _Watch:
    record: ServiceRecord = field(default_factory=ServiceRecord)
    pid: int | None = None
    seen_at: float = 0.0
    # When the pending restart is due (monotonic), while the service is down.
    restart_at: float | None = None


def state_file(settings: Settings) -> Path:
    return settings.run_dir / f"{NAME}.json"


def read_records(settings: Settings) -> dict[str, ServiceRecord]:
    """The supervisor's last word on each service; empty if it never ran."""
    try:
        raw = json.loads(state_file(settings).read_text())
        return {name: ServiceRecord(**values) for name, values in raw.items()}
    except (OSError, ValueError, TypeError):
        return {}


def _write_records(settings: Settings, records: dict[str, ServiceRecord]) -> None:
    path = state_file(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({name: asdict(r) for name, r in records.items()}, indent=1))
    tmp.replace(path)


def _exit_description(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


class Supervisor:
    """Watches the services' pid files and restarts what died; `tick` does one round."""

    def __init__(
        self,
        settings: Settings,
        names: Iterable[str] = services.SERVICE_NAMES,
        *,
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._policy = policy or RestartPolicy()
        self._clock = clock
        self._watches = {name: _Watch() for name in names}
        previous = read_records(settings)
        for name, watch in self._watches.items():
            # Restart counts survive a restart of the supervisor itself.
            watch.record = previous.get(name, ServiceRecord())
            watch.record.gave_up = False
        # Exit statuses of our own children (the services we restarted), by pid.
        self._exits: dict[int, str] = {}

    def tick(self) -> None:
        self._reap()
        changed = False
        for name, watch in self._watches.items():
            changed = self._check(name, watch) or changed
        if changed:
            _write_records(self._settings, self.records())

    def records(self) -> dict[str, ServiceRecord]:
        return {name: watch.record for name, watch in self._watches.items()}

    def _reap(self) -> None:
        """Collect our dead children (no zombies), remembering how they ended."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._exits[pid] = _exit_description(status)

    def _check(self, name: str, watch: _Watch) -> bool:
        now = self._clock()
        pid = services.read_pid(self._settings, name)
        if pid is not None:
            if pid != watch.pid:
                # Started by `hotline up`, by us, or by hand: its uptime counts from its start.
                age = services.process_age(pid) or 0.0
                watch.pid, watch.seen_at, watch.restart_at = pid, now - age, None
                if watch.record.gave_up:
                    # Started again by hand (`hotline up`): supervised afresh.
                    watch.record.gave_up, watch.record.fast_crashes = False, 0
                    return True
            return False
        if watch.record.gave_up or services.is_held(self._settings, name):
            # Stopped on purpose (`hotline down`, stop_service): not ours to restart.
            watch.pid, watch.restart_at = None, None
            return False
        if watch.restart_at is None:
            return self._died(name, watch, now)
        if now >= watch.restart_at:
            self._restart(name, watch)
            return True
        return False

    def _exit_of(self, pid: int) -> str:
        """How a dead process ended, if it was our child; it may not be reaped yet."""
        # A SIGKILLed process shows no command line while it is still exiting: wait briefly.
        deadline = self._clock() + EXIT_WAIT
        while pid not in self._exits:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break  # not our child
            if done == pid:
                return _exit_description(status)
            if self._clock() >= deadline:
                break
            time.sleep(0.02)
        return self._exits.pop(pid, "died")

    def _died(self, name: str, watch: _Watch, now: float) -> bool:
        record = watch.record
        uptime = now - watch.seen_at if watch.pid is not None else 0.0
        # The pid file names it even if it died before we saw it run.
        pid = watch.pid or services.recorded_pid(self._settings, name)
        # How it ended is known only for our own children (not for what `hotline up` started).
        record.last_exit = self._exit_of(pid) if pid else "not running"
        record.fast_crashes, delay = self._policy.after_exit(uptime, record.fast_crashes)
        if delay is None:
            record.gave_up = True
            log.error(
                "service_given_up",
                service=name,
                fast_crashes=record.fast_crashes,
                last_exit=record.last_exit,
                log=str(services.log_file(self._settings, name)),
            )
            return True
        log.warning(
            "service_died",
            service=name,
            pid=pid,
            last_exit=record.last_exit,
            uptime=round(uptime, 1),
            restart_in=delay,
        )
        watch.pid, watch.restart_at = None, now + delay
        if delay == 0:
            self._restart(name, watch)
        return True

    def _restart(self, name: str, watch: _Watch) -> None:
        # Workers of a dead dashboard may still hold its port: end them first.
        services.clean_up(self._settings, name)
        pid = services.start_service(self._settings, name)
        record = watch.record
        record.restarts += 1
        record.last_restart = datetime.now(UTC).isoformat(timespec="seconds")
        watch.pid, watch.seen_at, watch.restart_at = pid, self._clock(), None
        log.warning("service_restarted", service=name, pid=pid, restarts=record.restarts)


def run(settings: Settings) -> None:
    """Supervise until SIGTERM/SIGINT."""
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    names = services.service_names(settings)
    supervisor = Supervisor(settings, names)
    ready = services.ready_file(settings, NAME)
    log.info("supervisor_started", services=list(names))
    try:
        supervisor.tick()
        ready.write_text(str(os.getpid()))
        while not stopping:
            time.sleep(POLL_INTERVAL)
            supervisor.tick()
    finally:
        with contextlib.suppress(OSError):
            ready.unlink()
        log.info("supervisor_stopped")
