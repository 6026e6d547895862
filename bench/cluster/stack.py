"""`hotline cluster up --nodes N` under SIPp calls: bench/callstack.py's Stack, clustered.

The same temporary state dir, fresh PostgreSQL database and SIPp operators/carrier as
bench/load, but the stack is Kamailio plus N Asterisk nodes (127.0.0.2, 127.0.0.3, ...) instead
of one box. The operators' SIPp registers through Kamailio (it pins each operator to a home node
by a hash of their address); the carrier's SIPp calls Kamailio's address, which spreads the
calls round-robin. Every process of every node is named for the CPU meter: asterisk/node1,
agi/node1, router/node1, ..., kamailio, dashboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.callstack import (
    Stack,
    hotline,
    log,
    stop_process,
)


class ClusterStack(Stack):
    def __init__(self, name: str, nodes: int, **options: Any) -> None:
        super().__init__(name, **options)
        self.nodes = nodes
        self.extra_callers: list[subprocess.Popen[bytes]] = []
        self.node_settings: dict[str, Any] = {}

    def up(self, operators: int, queue: str, talk: float, operator_life_s: float) -> None:
        from hotline import services
        from hotline.asterisk.sandbox import Asterisk
        from hotline.cluster import kamailio
        from hotline.cluster.topology import plan

        settings, workdir = self.prepare(operators, queue)
        log(f"{len(self.operators)} operators; hotline cluster up --nodes {self.nodes} ...")
        t = time.monotonic()
        hotline("cluster", "up", "--nodes", str(self.nodes), timeout=900)
        log(f"cluster up in {time.monotonic() - t:.0f} s")
        self.pids = {}
        for spec in plan(settings, self.nodes):
            node = spec.settings()
            self.node_settings[spec.name] = node
            self.pids[f"asterisk/{spec.name}"] = Asterisk(node).pid() or 0
            for svc in ("agi", "router"):
                self.pids[f"{svc}/{spec.name}"] = services.read_pid(node, svc) or 0
        self.pids["kamailio"] = kamailio.running_pid(settings) or 0
        self.pids["dashboard"] = services.read_pid(settings, "dashboard") or 0
        if not all(self.pids.values()):
            raise RuntimeError(f"not every process runs: {self.pids}")
        self.wait_in_rotation()

        # Operators register through Kamailio (it pins each to a home node).
        self.register_operators(workdir, talk, operator_life_s, wait=90, where=" through Kamailio")
        self.members = self.wait_members({o["sip_login"] for o in self.operators}, queue)
        log(f"available queue members per node: {self.members}")

    def wait_in_rotation(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(up := self.in_rotation()) == self.nodes and all(up.values()):
                return
            time.sleep(0.2)
        raise RuntimeError(f"not every node in Kamailio's rotation: {self.in_rotation()}")

    def in_rotation(self) -> dict[str, bool]:
        from hotline.cluster import kamailio

        with contextlib.suppress(Exception):
            return {d.node: d.up for d in kamailio.destinations(self.settings)}
        return {}

    def wait_members(self, logins: set[str], queue: str, timeout: float = 60) -> dict[str, int]:
        """Apply the roster's queue logins on every node (AgentService.sync over each node's
        AMI), then count, per node, the operators Asterisk sees as available there (each is
        registered on one home node only)."""
        from call_router.agent_membership import login_of, parse_members
        from call_router.agents import AgentService
        from call_router.ami_client import AmiClient
        from call_router.db import Database

        async def count(node: Any, db: Database) -> int:
            async with AmiClient(node) as ami:
                await AgentService(db).sync(ami)
                replies = await ami.send({"Action": "QueueStatus", "Queue": queue}, many=True)
            return sum(
                1
                for m in parse_members(replies)
                if m.queue == queue
                and login_of(m.interface) in logins
                and not m.paused
                and m.status == 1
            )

        async def run() -> dict[str, int]:
            db = Database(self.settings.db_url)
            try:
                found: dict[str, int] = {}
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    found = {n: await count(s, db) for n, s in self.node_settings.items()}
                    if sum(found.values()) >= len(logins):
                        break
                    await asyncio.sleep(1)
                return found
            finally:
                db.dispose()

        return asyncio.run(run())

    def add_carrier(self, proc: subprocess.Popen[bytes]) -> None:
        """A carrier SIPp that runs beside others (the day's hours overlap)."""
        self.extra_callers.append(proc)

    def close(self) -> None:
        for proc in self.extra_callers:
            stop_process(proc)
        with contextlib.suppress(Exception):
            log("hotline cluster down")
            hotline("cluster", "down", timeout=300, check=False)
        super().close()


class LogTail(threading.Thread):
    """When each line of a SIPp carrier's -trace_logs file appeared (every 0.1 s): SIPp writes
    no time on its lines, and failover needs when each caller was answered or refused."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.seen: list[tuple[float, list[str]]] = []
        self._offset = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.poll()
            self._halt.wait(0.1)
        self.poll()

    def poll(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1
        self._offset += end
        now = time.time()
        for line in data[:end].decode(errors="replace").splitlines():
            if line.strip():
                self.seen.append((now, line.split()))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


class RotationWatch(threading.Thread):
    """Kamailio's view of the nodes every 0.1 s (JSON-RPC dispatcher.list): when a node left."""

    def __init__(self, stack: ClusterStack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.samples: list[tuple[float, dict[str, bool]]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.time(), self.stack.in_rotation()))
            self._halt.wait(0.1)

    def first_out(self, node: str, after: float) -> float | None:
        return next(
            (t for t, up in self.samples if t >= after and up.get(node) is False),
            None,
        )

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
