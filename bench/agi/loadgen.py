"""A FastAGI load generator that plays Asterisk 22's res_agi over TCP.

Each session sends a realistic `agi_*` environment, then answers every command line the way
res_agi does (`200 result=...`), presses keys after a think time at each GET DATA, and, for a
share of sessions, hangs up mid-menu (the unsolicited `HANGUP` line of AGISIGHUP, then
`200 result=-1`, then 511 to anything but GET VARIABLE/VERBOSE, as on a dead channel).

Measured per session: whether the server ended it (closed the socket) with a queue set (or
after our hang-up), and every "server think": the time from our reply (or the environment)
to the server's next command line.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field

RECORDINGS = "/var/lib/hotline/recordings"
_ids = itertools.count(1)


def environment(linkedid: str, script: str, number: str) -> bytes:
    env = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1:4573/{script}",
        "agi_channel": f"PJSIP/pstn-{linkedid[-8:]}",
        "agi_language": "ru",
        "agi_type": "PJSIP",
        "agi_uniqueid": linkedid,
        "agi_version": "22.0.0",
        "agi_callerid": number,
        "agi_calleridname": "Bench Caller",
        "agi_callingpres": "0",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        "agi_dnid": "500100",
        "agi_rdnis": "unknown",
        "agi_context": "hotline-ivr",
        "agi_extension": "s",
        "agi_priority": "5",
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "140000000000",
        # The shipped dialplan's AGI arguments: ${CHANNEL(linkedid)}, ${HOTLINE_RECORDINGS}.
        "agi_arg_1": linkedid,
        "agi_arg_2": RECORDINGS,
    }
    return "".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


@dataclass
class Stats:
    started: int = 0
    completed: int = 0  # the server ended the session with a queue set, or after our hang-up
    hangups: int = 0  # sessions in which the caller hung up mid-menu
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    think_ms: list[float] = field(default_factory=list)
    # The same without each session's first command (our environment -> its first command:
    # a new connection waits in the kernel's accept queue while the server is saturated).
    between_ms: list[float] = field(default_factory=list)
    session_ms: list[float] = field(default_factory=list)
    first_reply_ms: list[float] = field(default_factory=list)  # connect → first command/close
    queues: dict[str, int] = field(default_factory=dict)
    prompts: int = 0  # GET DATA commands sent by the server (keypad prompts)
    failsafe: int = 0  # handed back to the dialplan's fail-safe (coordinator) by the server
    in_progress: int = 0
    peak_in_progress: int = 0

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


@dataclass
class Caller:
    """How the simulated callers behave."""

    keys: tuple[str, ...] = ("1",)  # GET DATA answers in turn; the last repeats
    think: tuple[float, float] = (0.0, 0.0)  # seconds before a key, uniform in the range
    hangup_share: float = 0.0  # sessions that hang up at their first GET DATA
    script: str = "hotline"
    command_timeout: float = 30.0  # a server silent this long mid-session is an error


def _answer(cmd: str, linkedid: str, dead: bool) -> str:
    if dead and not cmd.startswith(("GET VARIABLE", "VERBOSE")):
        return "511 Command Not Permitted on a dead channel or intercepted channel"
    verb = cmd.split(" ", 2)
    head = " ".join(verb[:2])
    if cmd == "ANSWER":
        return "200 result=0"
    if head == "GET VARIABLE" or head == "GET FULL":
        name = cmd.split(" ", 2)[2] if len(verb) > 2 else ""
        value = {
            "CHANNEL(linkedid)": linkedid,
            "CHANNEL(language)": "ru",
            "HOTLINE_RECORDINGS": RECORDINGS,
        }.get(name)
        return "200 result=0" if value is None or dead else f"200 result=1 ({value})"
    if head == "SET VARIABLE":
        return "200 result=1"
    if head in ("STREAM FILE", "CONTROL STREAM"):
        return "200 result=0 endpos=8000"
    if head in ("SAY DIGITS", "SAY NUMBER", "SAY DATETIME", "SAY ALPHA"):
        return "200 result=0"
    if head == "RECORD FILE":
        return "200 result=0 endpos=0"
    if head == "CHANNEL STATUS":
        return "200 result=6"
    if cmd.startswith(("VERBOSE", "EXEC", "SET ", "NOOP", "HANGUP")):
        return "200 result=1" if cmd.startswith(("VERBOSE", "HANGUP")) else "200 result=0"
    return "510 Invalid or unknown command"


# Replies that depend on nothing but the command line (most of them), remembered: the
# generator's own CPU per command is what bounds the reference's numbers.
_REPLIES: dict[bytes, bytes] = {}
_CACHEABLE = (b"ANSWER", b"STREAM FILE", b"SET VARIABLE", b"VERBOSE", b"HANGUP")


def _reply_to(line: bytes, linkedid: str, dead: bool) -> bytes:
    if not dead:
        cached = _REPLIES.get(line)
        if cached is not None:
            return cached
    cmd = line.decode("utf-8", "replace").rstrip("\r\n")
    reply = _answer(cmd, linkedid, dead).encode() + b"\n"
    if not dead and line.startswith(_CACHEABLE) and len(_REPLIES) < 10_000:
        _REPLIES[line] = reply
    return reply


async def session(port: int, caller: Caller, stats: Stats, rng: random.Random) -> None:
    n = next(_ids)
    linkedid = f"{int(time.time())}.{n}"
    number = f"+7495{n % 10_000_000:07d}"
    hang_up = rng.random() < caller.hangup_share
    stats.started += 1
    stats.in_progress += 1
    stats.peak_in_progress = max(stats.peak_in_progress, stats.in_progress)
    t0 = time.perf_counter()
    writer: asyncio.StreamWriter | None = None
    think: list[float] = []  # seconds, into stats.think_ms when the session ends
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(environment(linkedid, caller.script, number))
        sent = time.perf_counter()
        keys = list(caller.keys)
        queue = ""
        dead = first = failsafe = False
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), caller.command_timeout)
            except TimeoutError:
                stats.error("server_silent")
                return
            now = time.perf_counter()
            if not first:
                first = True
                stats.first_reply_ms.append((now - t0) * 1000)
            if not line:
                break  # the server ended the session
            think.append(now - sent)
            if line.startswith(b"VERBOSE") and b"fail-safe" in line:
                failsafe = True
            if line.startswith(b"SET VARIABLE HOTLINE_QUEUE "):
                queue = line.decode().rstrip("\r\n").split(" ", 3)[3].strip('"')
            elif line.startswith(b"EXEC MSet ") and b"HOTLINE_QUEUE=" in line:
                # Several variables in one command (MSet): HOTLINE_QUEUE=<queue>[,...]"
                value = line.split(b"HOTLINE_QUEUE=", 1)[1].split(b",", 1)[0]
                queue = value.rstrip(b'"\r\n').decode()
            prompt = line.startswith(b"GET DATA")
            stats.prompts += prompt
            if prompt and not dead:
                lo, hi = caller.think
                if hi > 0:
                    await asyncio.sleep(rng.uniform(lo, hi))
                if hang_up:
                    dead = True
                    reply = b"HANGUP\n200 result=-1\n"
                else:
                    key = keys.pop(0) if len(keys) > 1 else keys[0]
                    reply = f"200 result={key}\n".encode()
            else:
                reply = _reply_to(line, linkedid, dead)
            writer.write(reply)
            sent = time.perf_counter()
        if hang_up:
            stats.hangups += 1
            stats.completed += 1
        elif queue:
            stats.completed += 1
            stats.queues[queue] = stats.queues.get(queue, 0) + 1
        elif failsafe:
            stats.completed += 1
            stats.failsafe += 1
        else:
            stats.error("no_queue")
        stats.session_ms.append((time.perf_counter() - t0) * 1000)
    except (ConnectionError, OSError) as exc:
        stats.error(type(exc).__name__)
    finally:
        stats.think_ms.extend(t * 1000 for t in think)
        stats.between_ms.extend(t * 1000 for t in think[1:])
        stats.in_progress -= 1
        if writer is not None:
            writer.close()


async def closed_loop(
    port: int,
    caller: Caller,
    concurrency: int,
    seconds: float,
    seed: int = 1,
    period: float = 0.0,
) -> tuple[Stats, float]:
    """`concurrency` callers, each starting a new session as soon as the last ends, or (with
    `period`) at most one every `period` seconds, the callers' starts spread over it: together
    they offer `concurrency / period` sessions/s."""
    stats = Stats()
    rng = random.Random(seed)
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(n: int) -> None:
        due = start + period * n / concurrency
        while time.perf_counter() < deadline:
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            due += period
            await session(port, caller, stats, rng)

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return stats, time.perf_counter() - start


async def held(
    port: int, caller: Caller, sessions: int, ramp_per_s: float, seed: int = 2
) -> tuple[Stats, float]:
    """`sessions` callers arriving at `ramp_per_s`, all in the menu at once while they think."""
    stats = Stats()
    rng = random.Random(seed)
    start = time.perf_counter()
    tasks = []
    for i in range(sessions):
        due = start + i / ramp_per_s
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(session(port, caller, stats, rng)))
    await asyncio.gather(*tasks)
    return stats, time.perf_counter() - start


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2)
