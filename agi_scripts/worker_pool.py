"""The parent of `hotline agi --workers N`: the shared port, its workers, signals, status file.

It binds the shared port, runs the workers, restarts the ones that die, forwards signals and
writes `run/agi-workers.json`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agi_scripts.worker_spools import adopt_spools
from agi_scripts.workers import (
    HEALTHY_AFTER,
    LISTEN_BACKLOG,
    READY_LINE,
    STOP_TIMEOUT,
    audiosocket_port,
    restart_pause,
    status_file,
)
from call_router.settings import Settings


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
