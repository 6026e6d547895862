"""`hotline agi --workers N`: N FastAGI processes on one port, so a box uses all its cores.

How: pre-fork with one shared listening socket (what gunicorn, uvicorn and nginx do by
default), not SO_REUSEPORT:

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
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

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


def worker_spool(spool: Path, index: int) -> Path:
    """Worker `index`'s call-log spool; worker 0 (and the single process) keeps `spool`."""
    if index == 0:
        return spool
    return spool.with_name(f"{spool.stem}.{index}{spool.suffix}")


def spools_on_disk(spool: Path) -> dict[int, Path]:
    """Every worker spool file present, by worker index (0: `spool` itself)."""
    found: dict[int, Path] = {}
    if spool.is_file():
        found[0] = spool
    pattern = re.compile(
        rf"^{re.escape(spool.stem)}\.([1-9][0-9]{{0,5}}){re.escape(spool.suffix)}$"
    )
    with contextlib.suppress(FileNotFoundError):
        for entry in spool.parent.iterdir():
            match = pattern.match(entry.name)
            if match and entry.is_file():
                found[int(match.group(1))] = entry
    return found


@dataclass(frozen=True)
class Adopted:
    orphan: Path
    into: Path
    writes: int


def adopt_spools(spool: Path, workers: int) -> list[Adopted]:
    """Move the spools of workers >= `workers` in front of worker (index % workers)'s spool.

    Call it before the workers start. A call's writes all come from the one worker that served
    it, so its order is kept; what an orphan holds is older than anything its new owner will
    spool, hence in front. A line cut short by a crash (no newline) was never acknowledged and
    is dropped. The target is replaced atomically before the orphan is removed: a crash in
    between replays some writes twice, which the writes' idempotent keys absorb. A spool still
    locked by a live process (a killed parent's worker still draining its calls) is left
    alone, with its target: the next start hands it over.
    """
    orphans = {i: p for i, p in spools_on_disk(spool).items() if i >= workers}
    by_target: dict[int, list[int]] = {}
    for index in sorted(orphans):
        by_target.setdefault(index % workers, []).append(index)
    adopted: list[Adopted] = []
    for target, indices in sorted(by_target.items()):
        into = worker_spool(spool, target)
        with contextlib.ExitStack() as held:
            locks = [try_lock_spool(p) for p in (into, *(orphans[i] for i in indices))]
            for fd in locks:
                if fd is not None:
                    held.callback(os.close, fd)
            if None in locks:
                continue  # in use: rewriting it under a live writer would lose its appends
            parts = [_whole_lines(orphans[i].read_bytes()) for i in indices]
            current = into.read_bytes() if into.is_file() else b""
            tmp = into.with_name(into.name + ".adopting")
            with tmp.open("wb") as out:
                for part in parts:
                    out.write(part)
                out.write(current)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, into)
            _fsync_dir(into.parent)
            for index, part in zip(indices, parts, strict=True):
                orphans[index].unlink()
                adopted.append(Adopted(orphans[index], into, part.count(b"\n")))
    return adopted


def _lock_path(spool: Path) -> Path:
    return spool.with_name(spool.name + ".lock")


def try_lock_spool(spool: Path) -> int | None:
    """An exclusive lock on the spool's lock file (its fd), or None while a process holds it.
    The lock goes with the process: a killed worker's is free at once."""
    spool.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(_lock_path(spool), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def hold_spool(spool: Path, wait: float = STOP_TIMEOUT, log: Any = None) -> int | None:
    """Lock the spool for this process's life: wait (up to `wait` s) while an earlier holder
    (a worker of a killed parent, still draining) writes to it. None: it never let go (we go
    on: serving callers comes first; the writes are idempotent)."""
    deadline = time.monotonic() + wait
    while (fd := try_lock_spool(spool)) is None:
        if time.monotonic() >= deadline:
            if log is not None:
                log.warning("agi_spool_in_use", spool=str(spool))
            return None
        time.sleep(0.2)
    return fd


def _whole_lines(data: bytes) -> bytes:
    end = data.rfind(b"\n")
    return data[: end + 1] if end >= 0 else b""


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def restart_pause(lived: float, quick_deaths: int) -> float:
    """Seconds before restarting a worker that lived `lived` s, the `quick_deaths`-th time in a
    row it died young: at once after a healthy run, then 0.5, 1, 2 ... up to 10 s."""
    if lived >= HEALTHY_AFTER or quick_deaths <= 0:
        return 0.0
    return float(min(RESTART_PAUSE_MAX, 0.5 * 2 ** (quick_deaths - 1)))


def status_file(settings: Settings) -> Path:
    return settings.agi_workers_file


# --- the parent ---------------------------------------------------------------------------


def bind_shared(host: str, port: int, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """The listening socket every worker accepts on."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    ready: bool = False
    ever_ready: bool = False
    started: float = 0.0
    restarts: int = 0
    quick_deaths: int = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None


WorkerCommand = Callable[[int, int, int], list[str]]


def worker_command(index: int, listen_fd: int, ready_fd: int) -> list[str]:
    # A pool server's workers (`hotline agi --server K`) say so too: its pid checks and its
    # stop find them by their command line.
    server = os.environ.get("HOTLINE_AGI_SERVER", "1")
    return [
        sys.executable, "-m", "hotline", "agi",
        *(["--server", server] if server != "1" else []),
        "--worker", str(index),
        "--listen-fd", str(listen_fd),
        "--ready-fd", str(ready_fd),
        "--parent", str(os.getpid()),
    ]  # fmt: skip


class WorkerPool:
    """Binds the port, runs N workers, restarts the ones that die, forwards signals."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        *,
        command: WorkerCommand = worker_command,
        bind_wait: float = STOP_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.count = count
        self.command = command
        self.workers = [Worker(i) for i in range(count)]
        self.log = structlog.get_logger("hotline.agi.workers")
        self.sock: socket.socket | None = None
        self.bind_wait = bind_wait
        self._stopping = asyncio.Event()
        self._all_ready = asyncio.Event()
        self._failure: str | None = None
        self._watchers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self.sock is not None
        return int(self.sock.getsockname()[1])

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Until SIGTERM/SIGINT (or cancellation); raises if a worker cannot start at all."""
        for adopted in adopt_spools(self.settings.agi_spool_file, self.count):
            self.log.warning(
                "agi_spool_adopted",
                spool=str(adopted.orphan),
                into=str(adopted.into),
                writes=adopted.writes,
            )
        self.sock = await self._bind()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        handlers = {
            signal.SIGTERM: self._stopping.set,
            signal.SIGINT: self._stopping.set,
            signal.SIGHUP: lambda: self.signal_all(signal.SIGHUP),
        }
        for sig, handler in handlers.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, handler)
                installed.append(sig)
        self.log.info(
            "agi_workers_starting",
            workers=self.count,
            host=self.settings.agi_host,
            port=self.port,
            audiosocket_ports=[
                audiosocket_port(self.settings.audiosocket_port, w.index) for w in self.workers
            ],
        )
        keepers = [
            asyncio.create_task(self._keep(w), name=f"agi-worker-{w.index}") for w in self.workers
        ]
        try:
            waiting = asyncio.create_task(self._all_ready.wait())
            stopping = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if self._all_ready.is_set() and not self._stopping.is_set():
                self.log.info("agi_workers_ready", workers=self.count, pids=self._pids())
                if ready is not None:
                    ready.set()
            await stopping
        finally:
            self._stopping.set()
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self._stop_all()
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
            self.sock.close()
            status_file(self.settings).unlink(missing_ok=True)
            self.log.info("agi_workers_stopped")
        if self._failure is not None:
            raise RuntimeError(self._failure)

    async def _bind(self) -> socket.socket:
        """The shared socket. The port may still be held for a while by the workers of a
        parent that was killed (they drain their calls after their SIGTERM): wait for them,
        up to `bind_wait` seconds, before reporting the port as taken."""
        deadline = time.monotonic() + self.bind_wait
        while True:
            try:
                return bind_shared(self.settings.agi_host, self.settings.agi_port)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    raise
                self.log.warning("agi_port_busy", port=self.settings.agi_port, error=str(exc))
                await asyncio.sleep(0.5)

    def signal_all(self, sig: signal.Signals) -> None:
        for worker in self.workers:
            if worker.alive and worker.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(sig)
        self.log.info("agi_workers_signalled", signal=sig.name, pids=self._pids())

    def _pids(self) -> list[int | None]:
        return [w.pid for w in self.workers]

    async def _keep(self, worker: Worker) -> None:
        """Run one worker for as long as the pool runs."""
        while not self._stopping.is_set():
            await self._start(worker)
            assert worker.process is not None
            returncode = await worker.process.wait()
            worker.ready = False
            self._write_status()
            if self._stopping.is_set():
                return
            lived = time.monotonic() - worker.started
            self.log.warning(
                "agi_worker_died",
                worker=worker.index,
                pid=worker.pid,
                returncode=returncode,
                lived_s=round(lived, 1),
            )
            if not worker.ever_ready:
                # It never served: a broken configuration or environment, not bad luck.
                self._failure = (
                    f"FastAGI worker {worker.index} exited ({returncode}) before it was ready; "
                    "see its log lines above"
                )
                self._stopping.set()
                return
            worker.quick_deaths = 0 if lived >= HEALTHY_AFTER else worker.quick_deaths + 1
            pause = restart_pause(lived, worker.quick_deaths)
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), pause)
            worker.restarts += 1

    async def _start(self, worker: Worker) -> None:
        assert self.sock is not None
        read_end, write_end = os.pipe()
        try:
            worker.process = await asyncio.create_subprocess_exec(
                *self.command(worker.index, self.sock.fileno(), write_end),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(self.sock.fileno(), write_end),
            )
        finally:
            os.close(write_end)  # the worker holds the only copy: its exit ends our read
        worker.started = time.monotonic()
        self.log.info(
            "agi_worker_started", worker=worker.index, pid=worker.pid, restarts=worker.restarts
        )
        self._write_status()
        watcher = asyncio.create_task(self._await_ready(worker, read_end, worker.process))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _await_ready(
        self, worker: Worker, read_end: int, process: asyncio.subprocess.Process
    ) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(read_end, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        try:
            line = await reader.readline()
        finally:
            transport.close()
        if line != READY_LINE or worker.process is not process or process.returncode is not None:
            return
        worker.ready = worker.ever_ready = True
        self.log.info("agi_worker_ready", worker=worker.index, pid=process.pid)
        self._write_status()
        if all(w.ever_ready for w in self.workers):
            self._all_ready.set()

    async def _stop_all(self) -> None:
        running = [
            w.process
            for w in self.workers
            if w.process is not None and w.process.returncode is None
        ]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if not running:
            return
        _, late = await asyncio.wait(
            [asyncio.create_task(p.wait()) for p in running], timeout=STOP_TIMEOUT
        )
        for process in running:
            if process.returncode is None:
                self.log.warning("agi_worker_killed", pid=process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        if late:
            await asyncio.wait(late, timeout=5)

    def _write_status(self) -> None:
        data = {
            "parent": os.getpid(),
            "port": self.port,
            "workers": [
                {
                    "index": w.index,
                    "pid": w.pid
                    if w.process is not None and w.process.returncode is None
                    else None,
                    "ready": w.ready,
                    "restarts": w.restarts,
                    "audiosocket_port": audiosocket_port(self.settings.audiosocket_port, w.index),
                }
                for w in self.workers
            ],
        }
        path = status_file(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)


async def serve_workers(
    settings: Settings, *, workers: int, ready: asyncio.Event | None = None
) -> None:
    """`hotline agi --workers N` (N > 1): the parent. run_foreground's `serve`."""
    await WorkerPool(settings, workers).run(ready)


# --- a worker -----------------------------------------------------------------------------


def run_worker(settings: Settings, index: int, listen_fd: int, ready_fd: int, parent: int) -> None:
    """One worker: serve() on the parent's socket with its own AudioSocket port and spool."""
    from agi_scripts.event_loop import run
    from agi_scripts.server import serve

    _die_with_parent(parent)
    _tag_logs(index)
    sock = socket.socket(fileno=listen_fd)
    own = settings.model_copy(
        update={"audiosocket_port": audiosocket_port(settings.audiosocket_port, index)}
    )
    spool = worker_spool(settings.agi_spool_file, index)
    hold_spool(spool, log=structlog.get_logger("hotline.agi"))  # released when we exit
    listeners = Listeners(agi=sock, spool=spool, worker=index)

    async def main() -> None:
        ready = asyncio.Event()

        async def announce() -> None:
            await ready.wait()
            os.write(ready_fd, READY_LINE)
            os.close(ready_fd)

        announcer = asyncio.create_task(announce())
        try:
            await serve(own, ready=ready, listeners=listeners)
        finally:
            announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await announcer

    run(main(), use_uvloop=settings.agi_uvloop)


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the parent dies (Linux): a worker never serves unsupervised."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)


def _tag_logs(index: int) -> None:
    """Every log line of this process names the worker (its pid is in the status file)."""

    def add_worker(
        _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event.setdefault("agi_worker", index)
        return event

    processors = list(structlog.get_config()["processors"])
    structlog.configure(processors=[add_worker, *processors])
