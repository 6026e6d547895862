"""How a node should reach several FastAGI servers: the measurement behind the choice.

    .venv/bin/python bench/agi/pool.py [--sessions 2000] [--save bench/agi/results/pool.json]

Two copies of the bare reference server (`reference_server.py`) on 127.0.0.2 and 127.0.1.2
(the cluster's addresses of a node's servers 1 and 2), and, when Debian's `haproxy` is
installed, HAProxy in TCP mode in front of both (health checks every 500 ms, `option
redispatch`, 100 ms connect timeout). What Asterisk's res_agi does per call is played by a
client: connect, send the environment, wait for the server's first command (ANSWER). Measured:

1. **setup**: connect → first command, p50/p99 over `--sessions` sequential sessions, for
   the direct connection, through HAProxy, and the dialplan's fallback with server 1 down (a
   refused connection to server 1, then server 2: what every call pays while one is dead).
2. **kill**: server 1 is SIGKILLed while `--sessions` sessions run back to back (4 at a time):
   sessions that got no first command, through HAProxy and with the dialplan's fallback.
3. **mid-session**: a session whose server is killed after its first command: what the
   client (Asterisk) sees. Every design loses that session; the dialplan routes the caller on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVERS = ("127.0.0.2", "127.0.1.2")
PROXY = "127.0.0.1"
ENV = b"agi_network: yes\nagi_network_script: hotline\nagi_arg_1: bench-1\n\n"

HAPROXY_CFG = """
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 100ms
    timeout client 1h
    timeout server 1h
    retries 2
    option redispatch
frontend agi
    bind {proxy}:{port}
    default_backend pool
backend pool
    balance first
    default-server inter 500ms fall 1 rise 2 on-marked-down shutdown-sessions
    server s1 {s1}:{port} check
    server s2 {s2}:{port} check
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(host: str, port: int) -> subprocess.Popen[bytes]:
    code = (
        "import asyncio, sys; sys.path.insert(0, sys.argv[1]); import reference_server as r\n"
        "async def main():\n"
        "    s = await asyncio.start_server(r.serve_call, sys.argv[2], int(sys.argv[3]))\n"
        "    async with s: await s.serve_forever()\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(HERE), host, str(port)])
    wait_listening(host, port)
    return proc


def wait_listening(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {host}:{port}")


async def first_command(host: str, port: int) -> float | None:
    """Seconds from connect to the server's first command; None if there was none."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(ENV)
        line = await asyncio.wait_for(reader.readline(), 2.0)
        return time.perf_counter() - started if line.startswith(b"ANSWER") else None
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()


async def with_fallback(port: int) -> float | None:
    """The dialplan's pool: server 1, and server 2 when server 1 ran nothing (refused the
    connection, or closed it before its first command)."""
    started = time.perf_counter()
    for host in SERVERS:
        if await first_command(host, port) is not None:
            return time.perf_counter() - started
    return None


def summary(samples: list[float | None]) -> dict[str, Any]:
    ok = sorted(s * 1000 for s in samples if s is not None)
    q = statistics.quantiles(ok, n=100) if len(ok) > 1 else ok * 99
    return {
        "sessions": len(samples),
        "failed": len(samples) - len(ok),
        "p50_ms": round(q[49], 3) if ok else None,
        "p99_ms": round(q[98], 3) if ok else None,
    }


async def sequential(target: Any, count: int) -> list[float | None]:
    return [await target() for _ in range(count)]


async def refused(host: str, port: int) -> float | None:
    """Seconds a refused connection costs (what the dialplan pays for a dead server)."""
    started = time.perf_counter()
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return time.perf_counter() - started
    writer.close()
    return None


async def under_kill(target: Any, count: int, victim: subprocess.Popen[bytes]) -> dict[str, Any]:
    """`count` sessions, 4 at a time; server 1 is SIGKILLed after the first quarter."""
    results: list[float | None] = []
    queue = iter(range(count))

    async def runner() -> None:
        for i in queue:
            if i == count // 4:
                victim.send_signal(signal.SIGKILL)
            results.append(await target())

    await asyncio.gather(*(runner() for _ in range(4)))
    victim.wait()
    return summary(results)


async def mid_session(host: str, port: int, victim: subprocess.Popen[bytes]) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(ENV)
    await reader.readline()  # ANSWER: the session runs
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    writer.write(b"200 result=0\n")
    with contextlib.suppress(OSError):
        await writer.drain()
    try:
        line = await asyncio.wait_for(reader.readline(), 2.0)
    except (OSError, TimeoutError) as exc:
        return f"error: {type(exc).__name__}"
    finally:
        writer.close()
    return "EOF: the session ends (lost)" if not line else f"line {line!r}"


async def run(sessions: int) -> dict[str, Any]:
    port = free_port()
    servers = [start_server(host, port) for host in SERVERS]
    haproxy = shutil.which("haproxy")
    proxy: subprocess.Popen[bytes] | None = None
    workdir = Path(tempfile.mkdtemp(prefix="agi-pool-"))
    report: dict[str, Any] = {"setup": {}, "kill": {}, "mid_session": {}}
    try:
        if haproxy:
            cfg = workdir / "haproxy.cfg"
            cfg.write_text(HAPROXY_CFG.format(proxy=PROXY, port=port, s1=SERVERS[0], s2=SERVERS[1]))
            proxy = subprocess.Popen([haproxy, "-f", str(cfg), "-db"])
            wait_listening(PROXY, port)
            await asyncio.sleep(1.5)  # both servers checked up
        # Interleaved, so the machine's load of the moment weighs on each path alike.
        targets = {"direct": lambda: first_command(SERVERS[0], port)}
        if proxy:
            targets["haproxy"] = lambda: first_command(PROXY, port)
        samples: dict[str, list[float | None]] = {name: [] for name in targets}
        for _ in range(sessions):
            for name, target in targets.items():
                samples[name].append(await target())
        report["setup"].update({name: summary(values) for name, values in samples.items()})

        # Server 1 killed under load, dialplan fallback.
        report["kill"]["dialplan_fallback"] = await under_kill(
            lambda: with_fallback(port), sessions, servers[0]
        )
        report["setup"]["dialplan_fallback_server1_down"] = summary(
            await sequential(lambda: with_fallback(port), sessions)
        )
        report["setup"]["refused_connect"] = summary(
            await sequential(lambda: refused(SERVERS[0], port), sessions)
        )
        servers[0] = start_server(SERVERS[0], port)
        if proxy:
            await asyncio.sleep(1.5)  # server 1 back in HAProxy's rotation
            report["kill"]["haproxy"] = await under_kill(
                lambda: first_command(PROXY, port), sessions, servers[0]
            )
            servers[0] = start_server(SERVERS[0], port)
            await asyncio.sleep(1.5)
        report["mid_session"]["direct"] = await mid_session(SERVERS[0], port, servers[0])
        servers[0] = start_server(SERVERS[0], port)
        if proxy:
            await asyncio.sleep(1.5)
            report["mid_session"]["haproxy"] = await mid_session(PROXY, port, servers[0])
    finally:
        for proc in [*servers, *([proxy] if proxy else [])]:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    report["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "haproxy": subprocess.run([haproxy, "-v"], capture_output=True, text=True).stdout.split(
            "\n"
        )[0]
        if haproxy
        else None,
        "load_1m": os.getloadavg()[0],
        "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--save", type=Path)
    args = parser.parse_args()
    report = asyncio.run(run(args.sessions))
    text = json.dumps(report, indent=1)
    print(text)
    if args.save:
        args.save.write_text(text + "\n")


if __name__ == "__main__":
    main()
