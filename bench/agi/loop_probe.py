"""Where a FastAGI server's event-loop stalls go: a probe for the benchmark, not production.

Run a server through it (`run.py --probe` does, for the Hotline server and the references):

    HOTLINE_LOOP_PROBE=/tmp/probe.json python bench/agi/loop_probe.py            # hotline
    HOTLINE_LOOP_PROBE=/tmp/p.json python bench/agi/loop_probe.py bench/agi/reference_server.py PORT

A task on the server's loop (started with its first listening socket) wakes every `TICK` s and
looks at what happened since its last wake-up, with counts that do not depend on the machine's
load:

- `cpu`: the CPU time of the whole process (every thread) between two wake-ups. On a core of its
  own a server is late by about that much: this is the stall a free core would show
  (`cpu_stalls`: wake-ups with more than `STALL` s of it);
- split into `loop_ran` (the loop thread's CPU time) and `others` (the other threads: the
  call-log writer's, when it runs in a thread), and `gc` (the garbage collector's CPU time,
  from its callbacks, in whichever thread it ran); `children`: the CPU time of the server's
  child processes meanwhile (the writer process, agi_scripts/writer_process.py), not in `cpu`;
- `loop_blocked` (wall-clock stalls only): time the loop thread was neither on a CPU nor
  waiting for one, i.e. waiting for the GIL (or in a system call); `loop_runqueue`: runnable,
  but the core ran something else (our other thread, or another process: load).

`wall_stalls` are wake-ups more than `STALL` s late in wall-clock time (what the callers feel on
this machine, load included). The JSON has the totals, histograms and the longest stalls.
SIGUSR1 writes `<out>.<n>.json` for what came since the last one and starts afresh (run.py
sends it between phases); exit writes `<out>`.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import os
import runpy
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
# run.py --baseline-tree: the server's code from that tree, not this one.
sys.path.insert(0, os.environ.get("HOTLINE_BENCH_TREE") or str(ROOT))

TICK = 0.001
STALL = 0.005
KEEP = 100  # longest stalls kept in full
_BINS = ((0.050, ">=50ms"), (0.020, "20-50ms"), (0.010, "10-20ms"), (0.0, "5-10ms"))


def _schedstat(fd: int) -> tuple[int, int]:
    """(ns on a CPU, ns runnable waiting for one) of a thread."""
    raw = os.pread(fd, 128, 0).split()
    return int(raw[0]), int(raw[1])


def _histogram(values: list[float]) -> dict[str, int]:
    bins = {name: 0 for _, name in reversed(_BINS)}
    for value in values:
        bins[next(name for low, name in _BINS if value >= low)] += 1
    return bins


def _children() -> list[int]:
    found = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                found.extend(int(pid) for pid in f.read().split())
        except OSError:
            continue
    return found


class Probe:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.snapshots = 0
        self.main_fd = os.open(
            f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY
        )
        self.child_fds: list[int] = []
        self.gc_cpu = 0.0  # total CPU seconds of garbage collections so far
        self._gc_start: dict[int, float] = {}
        self.gc_count = [0, 0, 0]
        self.gc_max = 0.0
        self.reset()
        gc.callbacks.append(self._on_gc)
        atexit.register(lambda: self.dump(self.out))

    def reset(self) -> None:
        self.ticks = 0
        self.wall_stalls: list[dict[str, float]] = []
        self.cpu_stalls: list[dict[str, float]] = []
        self.started = time.perf_counter()
        self.cpu0 = time.process_time()
        self._refresh_children()
        self.children0 = self._children_ns()
        self.main0 = _schedstat(self.main_fd)
        self.gc0 = self.gc_cpu
        self.gc_count = [0, 0, 0]
        self.gc_max = 0.0

    def _refresh_children(self) -> None:
        for fd in self.child_fds:
            os.close(fd)
        self.child_fds = []
        for pid in _children():
            try:
                self.child_fds.append(os.open(f"/proc/{pid}/schedstat", os.O_RDONLY))
            except OSError:
                continue

    def _children_ns(self) -> int:
        total = 0
        for fd in self.child_fds:
            try:
                total += _schedstat(fd)[0]
            except (OSError, ValueError, IndexError):
                continue
        return total

    def snapshot(self) -> None:
        self.dump(self.out.with_suffix(f".{self.snapshots}.json"))
        self.snapshots += 1
        self.reset()

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        thread = threading.get_ident()
        if phase == "start":
            self._gc_start[thread] = time.thread_time()
            return
        spent = time.thread_time() - self._gc_start.pop(thread, time.thread_time())
        self.gc_cpu += spent
        self.gc_max = max(self.gc_max, spent)
        generation = int(info.get("generation", 0))
        if 0 <= generation <= 2:
            self.gc_count[generation] += 1

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        cpu, ran = time.process_time(), time.thread_time()
        waited = _schedstat(self.main_fd)[1]
        children = self._children_ns()
        gc_cpu = self.gc_cpu
        while True:
            await asyncio.sleep(TICK)
            now, cpu2, ran2 = loop.time(), time.process_time(), time.thread_time()
            waited2 = _schedstat(self.main_fd)[1]
            children2 = self._children_ns()
            self.ticks += 1
            if self.ticks % 1000 == 0:
                self._refresh_children()
                children2 = self._children_ns()
            wall = now - last
            spent = cpu2 - cpu
            if wall - TICK > STALL or spent > STALL:
                stall = {
                    "at": round(time.perf_counter() - self.started, 3),
                    "wall": wall,
                    "cpu": spent,
                    "loop_ran": ran2 - ran,
                    "children": max(0.0, (children2 - children) / 1e9),
                    "loop_runqueue": (waited2 - waited) / 1e9,
                    "gc": self.gc_cpu - gc_cpu,
                }
                stall["others"] = max(0.0, spent - stall["loop_ran"])
                stall["loop_blocked"] = max(0.0, wall - stall["loop_ran"] - stall["loop_runqueue"])
                if wall - TICK > STALL:
                    self.wall_stalls.append(stall)
                if spent > STALL:
                    self.cpu_stalls.append(stall)
            last, cpu, ran, waited, gc_cpu = now, cpu2, ran2, waited2, self.gc_cpu
            children = children2

    def dump(self, path: Path) -> None:
        ran, waited = _schedstat(self.main_fd)
        seconds = time.perf_counter() - self.started
        cpu = time.process_time() - self.cpu0
        loop_cpu = (ran - self.main0[0]) / 1e9

        def totals(stalls: list[dict[str, float]]) -> dict[str, float]:
            keys = ("wall", "cpu", "loop_ran", "others", "gc", "children", "loop_runqueue",
                    "loop_blocked")  # fmt: skip
            return {k: round(sum(s[k] for s in stalls), 4) for k in keys}

        def longest(stalls: list[dict[str, float]], key: str) -> list[dict[str, float]]:
            top = sorted(stalls, key=lambda s: s[key], reverse=True)[:KEEP]
            return [{k: round(v, 4) for k, v in s.items()} for s in top]

        report = {
            "seconds": round(seconds, 2),
            "ticks": self.ticks,
            "process_cpu_s": round(cpu, 3),
            "loop_thread_cpu_s": round(loop_cpu, 3),
            "other_threads_cpu_s": round(cpu - loop_cpu, 3),
            "loop_thread_runqueue_s": round((waited - self.main0[1]) / 1e9, 3),
            "children_cpu_s": round((self._children_ns() - self.children0) / 1e9, 3),
            "gc": {
                "cpu_s": round(self.gc_cpu - self.gc0, 4),
                "max_ms": round(self.gc_max * 1000, 2),
                "collections_by_generation": self.gc_count,
            },
            "cpu_stalls": len(self.cpu_stalls),
            "cpu_stall_histogram": _histogram([s["cpu"] for s in self.cpu_stalls]),
            "cpu_stall_totals_s": totals(self.cpu_stalls),
            "wall_stalls": len(self.wall_stalls),
            "wall_stall_histogram": _histogram([s["wall"] for s in self.wall_stalls]),
            "wall_stall_totals_s": totals(self.wall_stalls),
            "longest_cpu": longest(self.cpu_stalls, "cpu"),
            "longest_wall": longest(self.wall_stalls, "wall")[:20],
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1) + "\n")
        tmp.replace(path)


def install(out: Path) -> None:
    """Start the probe on the loop that opens the first listening socket (any server)."""
    start_server = asyncio.start_server
    started: list[asyncio.Task[None]] = []

    async def probed(*args: Any, **kwargs: Any) -> asyncio.Server:
        if not started:
            probe = Probe(out)
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGUSR1, probe.snapshot)
            started.append(loop.create_task(probe.run()))
        return await start_server(*args, **kwargs)

    asyncio.start_server = probed  # type: ignore[assignment]


def null_writer() -> None:
    """HOTLINE_LOOP_PROBE_NULL_WRITER=1: the call-log writer drops its bursts (no database
    work at all): the same server without the writer's CPU, for the A/B."""
    from agi_scripts.call_writer import CallWriter

    CallWriter._write_batch = lambda self, batch: len(batch)  # type: ignore[method-assign]


if __name__ == "__main__":
    install(Path(os.environ["HOTLINE_LOOP_PROBE"]))
    if os.environ.get("HOTLINE_LOOP_PROBE_NULL_WRITER") == "1":
        null_writer()
    if len(sys.argv) > 1:
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
    else:
        from agi_scripts.server import main

        main()
