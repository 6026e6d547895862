"""Load benchmark: many concurrent calls through the real (sandbox) Asterisk.

One SIPp process is the carrier (endpoint ``pstn``): ``-r`` new calls/s, ``-l`` calls at once,
``-m`` calls in all, a unique caller number per call from an injection file, the caller's
audio + keypad digit as RFC 2833 in one RTP pcap. One more SIPp process registers every bench
operator (digest auth) and answers the queue calls (``-oocsf``), talks, hangs up.

The stack is ``hotline up`` on its own ports (base 25000, ``--port-base``) with a temporary
state dir and a fresh database (PostgreSQL by default, dropped at the end). Measured: new
calls/s sustained, calls in progress (SIPp's open calls: IVR + queue + talking), completion %,
AMI-event → database-row lag (a trigger, created by the bench in its own database only, stamps
``clock_timestamp()`` on every call-log write; the row's ``at`` is the AMI event's own
Timestamp), CPU and memory of asterisk + FastAGI + router per call, lost/duplicated call-log
rows. Everything is torn down at the end, also on failure or Ctrl-C.

    .venv/bin/python bench/load/run.py --rate 10 --calls 1200 --concurrent 200 --operators 100
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

PORT_BASE = 25000
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CALLER_PREFIX = "+749590"  # + 5 digits = a Moscow number; never an operator login
# Call-log events written from AMI events (the others come from the FastAGI server).
AMI_KINDS = (
    "queue_join",
    "queue_leave",
    "abandon",
    "ring",
    "ring_no_answer",
    "agent_connect",
    "agent_complete",
    "hangup",
    "voicemail_offered",
)


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def stack_env(state: Path, db_url: str, queue_timeout: int, b: int) -> dict[str, str]:
    return {
        "HOTLINE_SIP_PORT": str(b + 60),
        "HOTLINE_AMI_PORT": str(b + 38),
        "HOTLINE_AGI_PORT": str(b + 73),
        "HOTLINE_DASHBOARD_PORT": str(b + 80),
        "HOTLINE_PSTN_PORT": str(b + 70),
        "HOTLINE_RTP_START": str(b + 100),
        "HOTLINE_RTP_END": str(b + 499),
        "HOTLINE_QUEUE_TIMEOUT": str(queue_timeout),
        "HOTLINE_STATE_DIR": str(state),
        "HOTLINE_RECORDINGS_DIR": str(state / "recordings"),
        "HOTLINE_REDIS_PREFIX": f"hotline-bench-load-{os.getpid()}",
        "HOTLINE_DATABASE_URL": db_url,
        "HOTLINE_ASTERISK_MODE": os.environ.get("HOTLINE_ASTERISK_MODE", "auto"),
    }


def hotline(*args: str, timeout: float = 900, check: bool = True) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "hotline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=os.environ.copy(),
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"hotline {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


# --- database ---------------------------------------------------------------------------------

TRIGGERS_PG = """
CREATE TABLE bench_writes (
    kind text NOT NULL, row_id integer NOT NULL, call_id integer NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION bench_event_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO bench_writes(kind, row_id, call_id) VALUES ('event', NEW.id, NEW.call_id);
RETURN NEW; END $$;
CREATE FUNCTION bench_call_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO bench_writes(kind, row_id, call_id) VALUES ('call', NEW.id, NEW.id);
  ELSIF OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL THEN
    INSERT INTO bench_writes(kind, row_id, call_id) VALUES ('ended', NEW.id, NEW.id);
  END IF;
  RETURN NEW; END $$;
CREATE TRIGGER bench_event AFTER INSERT ON call_events
  FOR EACH ROW EXECUTE FUNCTION bench_event_written();
CREATE TRIGGER bench_call AFTER INSERT OR UPDATE ON calls
  FOR EACH ROW EXECUTE FUNCTION bench_call_written();
"""

TRIGGERS_SQLITE = """
CREATE TABLE bench_writes (kind TEXT, row_id INTEGER, call_id INTEGER, written_at TEXT
    DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')));
CREATE TRIGGER bench_event AFTER INSERT ON call_events BEGIN
  INSERT INTO bench_writes(kind, row_id, call_id) VALUES ('event', NEW.id, NEW.call_id); END;
CREATE TRIGGER bench_call_ins AFTER INSERT ON calls BEGIN
  INSERT INTO bench_writes(kind, row_id, call_id) VALUES ('call', NEW.id, NEW.id); END;
CREATE TRIGGER bench_call_end AFTER UPDATE OF ended_at ON calls
  WHEN OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL BEGIN
  INSERT INTO bench_writes(kind, row_id, call_id) VALUES ('ended', NEW.id, NEW.id); END;
"""


def create_database(kind: str, state: Path) -> tuple[str, str | None]:
    """The database URL, and the PostgreSQL database name to drop afterwards."""
    if kind == "sqlite":
        return f"sqlite:///{state / 'hotline.db'}", None
    from sqlalchemy import create_engine, text

    name = f"hotline_bench_load_{os.getpid()}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name


def drop_database(name: str | None) -> None:
    if not name:
        return
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def install_triggers(db_url: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(db_url)
    raw = engine.raw_connection()
    try:
        if db_url.startswith("sqlite"):
            raw.driver_connection.executescript(TRIGGERS_SQLITE)  # type: ignore[union-attr]
        else:
            raw.cursor().execute(TRIGGERS_PG)
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


# --- resource sampling -------------------------------------------------------------------------


class Sampler(threading.Thread):
    """Every `interval` s: CPU seconds and RSS of the hotline's processes, SIPp's open calls."""

    def __init__(self, pids: dict[str, int], stat_file: Path, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        import psutil  # type: ignore[import-untyped]

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.stat_file = stat_file
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def _cpu_rss(self) -> dict[str, tuple[float, int]]:
        out = {}
        for name, proc in self.procs.items():
            try:
                with proc.oneshot():
                    cpu = proc.cpu_times()
                    total = cpu.user + cpu.system
                    rss = proc.memory_info().rss
                    for child in proc.children(recursive=True):
                        with contextlib.suppress(Exception):
                            c = child.cpu_times()
                            total += c.user + c.system
                            rss += child.memory_info().rss
                out[name] = (total, rss)
            except Exception:
                out[name] = (math.nan, 0)
        return out

    def run(self) -> None:
        while not self._halt.is_set():
            stat = sipp_stat(self.stat_file)
            self.samples.append(
                {
                    "t": time.time(),
                    "procs": self._cpu_rss(),
                    "open_calls": stat.get("CurrentCall"),
                    "created": stat.get("TotalCallCreated"),
                }
            )
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def sipp_stat(stat_file: Path) -> dict[str, int]:
    """CurrentCall and TotalCallCreated from the last line of SIPp's -trace_stat file."""
    try:
        lines = stat_file.read_text(errors="replace").strip().splitlines()
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    header = lines[0].split(";")
    last = lines[-1].split(";")
    out = {}
    for name in ("CurrentCall", "TotalCallCreated"):
        with contextlib.suppress(ValueError, IndexError):
            out[name] = int(last[header.index(name)])
    return out


# --- SIPp ----------------------------------------------------------------------------------------


def caller_pcap(path: Path, digit: str, audio_seconds: float) -> float:
    """The caller's media: a short 'voice' (a 300 Hz tone), a pause, the key. Returns seconds."""
    from hotline.sipua.rtp_pcap import RtpStream, pcm16_to_ulaw, write_pcap

    n = int(8000 * audio_seconds)
    pcm = array.array("h", (int(6000 * math.sin(2 * math.pi * 300 * i / 8000)) for i in range(n)))
    if sys.byteorder != "little":
        pcm.byteswap()
    stream = RtpStream()
    if n:
        stream.add_ulaw(pcm16_to_ulaw(pcm.tobytes()))
        stream.add_pause(0.3)
    stream.add_dtmf(digit)
    write_pcap(path, stream.packets)
    return stream.duration


def render(template: str, out: Path, **values: str) -> None:
    text = (HERE / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    out.write_text(text)


def trace(sipp: Any, path: Path, on: bool) -> list[str]:
    return ["-trace_msg", "-message_file", sipp.inside(path)] if on else []


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 5) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def read_log_lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text(errors="replace").splitlines() if line.strip()]


# --- the run ------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rate", type=float, default=10, help="new calls per second (SIPp -r)")
    ap.add_argument("--calls", type=int, default=600, help="calls in all (SIPp -m)")
    ap.add_argument("--concurrent", type=int, default=200, help="max calls at once (SIPp -l)")
    ap.add_argument("--operators", type=int, default=100, help="bench operators answering")
    ap.add_argument("--talk", type=float, default=5, help="seconds an operator talks, then BYE")
    ap.add_argument(
        "--patience",
        type=float,
        default=15,
        help="seconds after the answer a caller stays at most (then BYE, abandoned in queue)",
    )
    ap.add_argument(
        "--dtmf-delay", type=float, default=1.5, help="seconds after answer before media"
    )
    ap.add_argument(
        "--audio", type=float, default=0.5, help="seconds of caller 'voice' before the key"
    )
    ap.add_argument("--digit", default="2", help="menu key the callers press (2 = electricity)")
    ap.add_argument("--queue", default="electricity", help="queue the operators serve")
    ap.add_argument(
        "--wrapup", type=int, help="operator after-call seconds (HOTLINE_WRAPUP_SECONDS)"
    )
    ap.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    ap.add_argument(
        "--port-base", type=int, default=PORT_BASE, help="stack ports base..base+600 (127.0.0.1)"
    )
    ap.add_argument(
        "--batch", type=int, default=200, help="router: AMI events per transaction (1: one each)"
    )
    ap.add_argument(
        "--writers", type=int, default=4, help="router: parallel writer lanes (PostgreSQL)"
    )
    ap.add_argument(
        "--no-event-filter",
        action="store_true",
        help="router's AMI user gets every event (no manager.conf eventfilter), as before",
    )
    ap.add_argument("--settle", type=float, default=90, help="max seconds to wait for the call log")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--trace", action="store_true", help="SIPp -trace_msg (with --keep: debugging)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary state dir (logs)")
    args = ap.parse_args()
    if not 1 <= args.calls <= 99_999:
        ap.error("--calls: 1 to 99999 (one caller number each)")

    started_wall = datetime.now(UTC)
    state = Path(tempfile.mkdtemp(prefix="hotline-bench-load-"))
    db_url, db_name = create_database(args.db, state)
    base = args.port_base
    os.environ.update(stack_env(state, db_url, queue_timeout=int(args.patience) + 60, b=base))
    # The router's write path: --batch 1 --no-event-filter is the pre-batching router.
    os.environ["HOTLINE_AMI_BATCH_SIZE"] = str(args.batch)
    os.environ["HOTLINE_AMI_EVENT_FILTER"] = "false" if args.no_event_filter else "true"
    os.environ["HOTLINE_AMI_WRITERS"] = str(args.writers)
    if args.wrapup is not None:
        os.environ["HOTLINE_WRAPUP_SECONDS"] = str(args.wrapup)

    from call_router.settings import Settings

    settings = Settings()
    op_proc: subprocess.Popen[bytes] | None = None
    call_proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    results: dict[str, Any] = {}
    try:
        from hotline.sipua.rootexec import find_program

        sipp = find_program(settings, "sipp")
        workdir = sipp.make_workdir("hotline-bench-load-")
        log(f"state {state}, database {args.db}, sipp workdir {workdir}")

        hotline("db", "upgrade", timeout=120)
        install_triggers(db_url)
        operators = add_operators(settings, args.operators, args.queue)
        log(f"{len(operators)} operators in the roster; hotline up ...")
        hotline("up", timeout=900)

        from hotline import services
        from hotline.asterisk.sandbox import Asterisk

        asterisk = Asterisk(settings)
        pids = {"asterisk": asterisk._read_pid() or 0}
        for name in ("agi", "router", "dashboard"):
            pids[name] = services.read_pid(settings, name) or 0
        if not all(pids.values()):
            raise RuntimeError(f"not every process runs: {pids}")

        # Operators: one SIPp registers them all, then answers on the same port (-oocsf).
        ops_csv = workdir / "operators.csv"
        ops_csv.write_text(
            "SEQUENTIAL\n" + "".join(f"{o['sip_login']};{o['sip_password']};\n" for o in operators)
        )
        render("operators_register.xml", workdir / "register.xml")
        render("operator_answer.xml", workdir / "answer.xml", TALK_MS=str(int(args.talk * 1000)))
        op_log = workdir / "operators_logs.log"
        op_life_ms = int((args.calls / args.rate + args.patience + args.settle + 600) * 1000)
        op_proc = sipp.popen(
            f"{settings.sip_host}:{settings.sip_port}",
            "-sf", sipp.inside(workdir / "register.xml"),
            "-oocsf", sipp.inside(workdir / "answer.xml"),
            "-inf", sipp.inside(ops_csv),
            "-m", str(len(operators)), "-r", "50", "-l", str(len(operators) + 10),
            "-d", str(op_life_ms),
            "-i", "127.0.0.1", "-p", str(base + 90),
            "-mi", "127.0.0.1", "-mp", str(base + 540),
            "-trace_logs", "-log_file", sipp.inside(op_log),
            "-trace_err", "-error_file", sipp.inside(workdir / "operators_errors.log"),
            "-nostdin", "-aa", *trace(sipp, workdir / "operators_msg.log", args.trace),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        registered = 0
        while time.monotonic() < deadline:
            registered = sum(1 for f in read_log_lines(op_log) if f and f[0] == "REGISTERED")
            if registered >= len(operators) or op_proc.poll() is not None:
                break
            time.sleep(0.5)
        log(f"{registered}/{len(operators)} operators registered")
        if registered < len(operators):
            raise RuntimeError("operators did not all register (see operators_errors.log)")
        members = ensure_members(settings, {o["sip_login"] for o in operators}, args.queue)
        log(f"{members} operators are available members of queue {args.queue}")
        if members < len(operators):
            raise RuntimeError("not every operator is an available queue member")

        # Callers.
        media_s = caller_pcap(workdir / "caller.pcap", args.digit, args.audio)
        render(
            "caller.xml", workdir / "caller.xml",
            PCAP=sipp.inside(workdir / "caller.pcap"),
            DELAY_MS=str(int(args.dtmf_delay * 1000)),
            MEDIA_MS=str(int(media_s * 1000) + 200),
            HOLD_MS=str(max(1, int((args.patience - args.dtmf_delay - media_s - 0.2) * 1000))),
        )  # fmt: skip
        numbers = [f"{CALLER_PREFIX}{i:05d}" for i in range(1, args.calls + 1)]
        (workdir / "callers.csv").write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in numbers))
        call_log_file = workdir / "caller_logs.log"
        stat_file = workdir / "caller_stats.csv"
        sampler = Sampler(pids, stat_file)
        sampler.start()
        time.sleep(3)  # idle baseline
        budget = args.calls / args.rate + args.patience + 120
        log(f"placing {args.calls} calls at {args.rate}/s (limit {args.concurrent} at once) ...")
        t0 = time.time()
        call_proc = sipp.popen(
            f"{settings.sip_host}:{settings.sip_port}",
            "-sf", sipp.inside(workdir / "caller.xml"),
            "-inf", sipp.inside(workdir / "callers.csv"),
            "-key", "to_user", settings.hotline_number,
            "-r", str(round(args.rate * 10)), "-rp", "10000",
            "-l", str(args.concurrent), "-m", str(args.calls),
            "-i", "127.0.0.1", "-p", str(settings.pstn_port),
            "-mi", "127.0.0.1", "-mp", str(base + 520),
            "-timeout", f"{int(budget)}s", "-timeout_error",
            "-trace_logs", "-log_file", sipp.inside(call_log_file),
            "-trace_err", "-error_file", sipp.inside(workdir / "caller_errors.log"),
            "-trace_stat", "-stf", sipp.inside(stat_file), "-fd", "1",
            "-trace_screen", "-screen_file", sipp.inside(workdir / "caller_screen.log"),
            "-nostdin", "-aa", *trace(sipp, workdir / "caller_msg.log", args.trace),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            call_exit = call_proc.wait(timeout=budget + 30)
        except subprocess.TimeoutExpired:
            call_exit = -1
            stop_process(call_proc)
        t1 = time.time()
        log(f"callers done: sipp exit {call_exit} after {t1 - t0:.1f}s")

        # The call log catches up: every answered call must get its row with ended_at + outcome.
        caller_lines = read_log_lines(call_log_file)
        answered = [f[1] for f in caller_lines if f[0] == "ANSWERED"]
        rows = wait_for_rows(db_url, set(answered), args.settle)
        t_settled = time.time()
        time.sleep(2)
        sampler.stop()
        results = analyse(args, db_url, caller_lines, numbers, rows, sampler, t0, t1, t_settled)
        results["sipp_exit"] = call_exit
        results["operators_registered"] = registered
        results["machine"] = machine()
        results["started"] = started_wall.isoformat(timespec="seconds")
        results["command"] = " ".join(["bench/load/run.py", *sys.argv[1:]])
        print_results(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
        ok = results["lost_rows"] == 0 and results["duplicate_rows"] == 0
        return 0 if ok else 1
    finally:
        stop_process(call_proc)
        stop_process(op_proc)
        with contextlib.suppress(Exception):
            log("hotline down")
            hotline("down", timeout=120, check=False)
        if workdir is not None:
            if args.keep:
                shutil.copytree(workdir, state / "sipp", dirs_exist_ok=True)
            shutil.rmtree(workdir, ignore_errors=True)
        if args.keep and db_name:
            log(f"kept database {db_name} (drop it yourself)")
        else:
            with contextlib.suppress(Exception):
                drop_database(db_name)
        if args.keep:
            log(f"kept {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)


def add_operators(settings: Any, count: int, queue: str) -> list[dict[str, Any]]:
    """The same call `hotline operators add` makes, in one transaction (Asterisk is not up yet)."""
    from call_router.db import Database
    from call_router.operators import add_operator, operator_dict, parse_skills

    db = Database(settings.db_url)
    try:
        with db.session() as session:
            ops = [
                operator_dict(add_operator(session, f"Bench Operator {i}", parse_skills(queue)))
                for i in range(1, count + 1)
            ]
    finally:
        db.dispose()
    return ops


def ensure_members(settings: Any, logins: set[str], queue: str, timeout: float = 30) -> int:
    """Operators log in to their queues (dynamic members): apply the roster's desired state the
    way `hotline`'s CLI/router do (AgentService.sync over AMI), then count the members of
    `queue` that Asterisk sees as available (registered, not paused)."""
    import asyncio

    from call_router.agents import AgentService, login_of, parse_members
    from call_router.ami_client import AmiClient
    from call_router.db import Database

    async def run() -> int:
        db = Database(settings.db_url)
        try:
            deadline = time.monotonic() + timeout
            count = 0
            while time.monotonic() < deadline:
                async with AmiClient(settings) as ami:
                    await AgentService(db).sync(ami)
                    replies = await ami.send({"Action": "QueueStatus", "Queue": queue}, many=True)
                members = [
                    m for m in parse_members(replies)
                    if m.queue == queue and login_of(m.interface) in logins
                    and not m.paused and m.status in (0, 1)
                ]  # fmt: skip
                count = len(members)
                if count >= len(logins):
                    break
                await asyncio.sleep(1)
            return count
        finally:
            db.dispose()

    return asyncio.run(run())


def wait_for_rows(
    db_url: str, answered: set[str], settle: float
) -> dict[str, list[dict[str, Any]]]:
    """caller number → its call rows, once every answered call has ended (or `settle` passed)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    deadline = time.monotonic() + settle
    rows: dict[str, list[dict[str, Any]]] = {}
    try:
        while True:
            with engine.connect() as conn:
                result = conn.execute(
                    text(
                        "SELECT id, caller_number, caller_number_raw, ended_at, outcome, queue,"
                        " answered_at, operator FROM calls WHERE caller_number LIKE :p"
                        " OR caller_number_raw LIKE :p"
                    ),
                    {"p": CALLER_PREFIX + "%"},
                )
                rows = {}
                for r in result.mappings():
                    number = r["caller_number_raw"] or r["caller_number"]
                    if not number.startswith(CALLER_PREFIX):
                        number = r["caller_number"]
                    rows.setdefault(number, []).append(dict(r))
            done = all(
                number in rows and all(r["ended_at"] and r["outcome"] for r in rows[number])
                for number in answered
            )
            if done or time.monotonic() > deadline:
                return rows
            time.sleep(1)
    finally:
        engine.dispose()


def analyse(
    args: argparse.Namespace,
    db_url: str,
    caller_lines: list[list[str]],
    numbers: list[str],
    rows: dict[str, list[dict[str, Any]]],
    sampler: Sampler,
    t0: float,
    t1: float,
    t_settled: float,
) -> dict[str, Any]:
    from sqlalchemy import create_engine, text

    answered = [f[1] for f in caller_lines if f[0] == "ANSWERED"]
    rejected = [f[1] for f in caller_lines if f[0] == "REJECTED"]
    ended_ok = {f[1] for f in caller_lines if f[0] in ("LOCAL_BYE", "REMOTE_BYE")}
    remote = sum(1 for f in caller_lines if f[0] == "REMOTE_BYE")
    answered_set = set(answered)
    lost = sorted(n for n in answered_set if n not in rows)
    dup = sorted(n for n in answered_set if len(rows.get(n, [])) > 1)
    unfinished = sorted(
        n
        for n in answered_set
        if n in rows and not all(r["ended_at"] and r["outcome"] for r in rows[n])
    )
    outcomes: dict[str, int] = {}
    for n in answered_set:
        for r in rows.get(n, []):
            outcomes[str(r["outcome"])] = outcomes.get(str(r["outcome"]), 0) + 1

    # AMI event time (the row's `at`) → the moment the trigger saw the row written.
    engine = create_engine(db_url)
    lag_by_kind: dict[str, list[float]] = {}
    end_lag: list[float] = []
    timeline: dict[int, list[float]] = {}
    with engine.connect() as conn:
        if db_url.startswith("sqlite"):
            ev_sql = (
                "SELECT e.kind, (julianday(w.written_at) - julianday(e.at)) * 86400.0,"
                " (julianday(e.at) - 2440587.5) * 86400.0"
                " FROM bench_writes w JOIN call_events e ON e.id = w.row_id WHERE w.kind = 'event'"
            )
            end_sql = (
                "SELECT (julianday(w.written_at) - julianday(c.ended_at)) * 86400.0"
                " FROM bench_writes w JOIN calls c ON c.id = w.row_id WHERE w.kind = 'ended'"
            )
        else:
            ev_sql = (
                "SELECT e.kind, EXTRACT(EPOCH FROM (w.written_at AT TIME ZONE 'UTC') - e.at),"
                " EXTRACT(EPOCH FROM e.at AT TIME ZONE 'UTC')"
                " FROM bench_writes w JOIN call_events e ON e.id = w.row_id WHERE w.kind = 'event'"
            )
            end_sql = (
                "SELECT EXTRACT(EPOCH FROM (w.written_at AT TIME ZONE 'UTC') - c.ended_at)"
                " FROM bench_writes w JOIN calls c ON c.id = w.row_id WHERE w.kind = 'ended'"
            )
        for kind, lag, at in conn.execute(text(ev_sql)):
            lag_by_kind.setdefault(kind, []).append(float(lag))
            if kind in AMI_KINDS:
                timeline.setdefault(int((float(at) - t0) // 15) * 15, []).append(float(lag))
        end_lag = [float(v) for (v,) in conn.execute(text(end_sql))]
    engine.dispose()
    ami_lags = [v for k, vs in lag_by_kind.items() if k in AMI_KINDS for v in vs]

    # Calls in progress (SIPp's open calls) and the rate SIPp actually reached.
    open_series = [s["open_calls"] for s in sampler.samples if s["open_calls"] is not None]
    steady = [
        s["open_calls"]
        for s in sampler.samples
        if s["open_calls"] is not None
        and t0 + args.patience + 5 <= s["t"] <= t0 + args.calls / args.rate
    ]
    duration = t1 - t0
    t_all_created = next((s["t"] for s in sampler.samples if (s["created"] or 0) >= args.calls), t1)
    placed = len(answered) + len(rejected)

    # CPU seconds and RSS per process, call phase only.
    first = next((s for s in sampler.samples if s["t"] >= t0), sampler.samples[0])
    base = sampler.samples[0]
    last = min(sampler.samples, key=lambda s: abs(s["t"] - t_settled))
    cpu: dict[str, Any] = {}
    total_cpu = 0.0
    for name in base["procs"]:
        used = last["procs"][name][0] - first["procs"][name][0]
        total_cpu += used
        peak_rss = max(s["procs"][name][1] for s in sampler.samples)
        cpu[name] = {
            "cpu_s": round(used, 2),
            "cpu_pct_of_one_core": round(100 * used / max(1e-9, last["t"] - first["t"]), 1),
            "rss_idle_mb": round(base["procs"][name][1] / 2**20, 1),
            "rss_peak_mb": round(peak_rss / 2**20, 1),
        }
    peak_open = max(open_series) if open_series else 0
    rss_growth = sum(
        max(s["procs"][n][1] for s in sampler.samples) - base["procs"][n][1] for n in base["procs"]
    )

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {
        "params": {
            k: getattr(args, k)
            for k in (
                "rate",
                "calls",
                "concurrent",
                "operators",
                "talk",
                "patience",
                "wrapup",
                "db",
                "batch",
                "writers",
                "no_event_filter",
            )
        },
        "placed": placed,
        "answered_by_ivr": len(answered),
        "rejected": len(rejected),
        "not_answered": len(set(numbers) - answered_set),
        "completed": len(ended_ok),
        "completion_pct": round(100 * len(ended_ok) / max(1, args.calls), 2),
        "ended_by_asterisk": remote,
        "duration_s": round(duration, 1),
        "new_calls_per_s": round(placed / max(1e-9, t_all_created - t0), 2),
        "in_progress_peak": peak_open,
        "in_progress_steady_median": percentile([float(v) for v in steady], 0.5),
        "outcomes": outcomes,
        "lost_rows": len(lost),
        "duplicate_rows": len(dup),
        "unfinished_rows": len(unfinished),
        "lost_examples": lost[:5],
        "ami_lag_ms": {
            "n": len(ami_lags),
            "p50": ms(percentile(ami_lags, 0.5)),
            "p95": ms(percentile(ami_lags, 0.95)),
            "p99": ms(percentile(ami_lags, 0.99)),
            "max": ms(max(ami_lags) if ami_lags else None),
        },
        "ami_lag_p95_ms_by_kind": {
            k: ms(percentile(v, 0.95)) for k, v in sorted(lag_by_kind.items()) if k in AMI_KINDS
        },
        # Per 15 s of AMI event time from the first call: events written, their p95 lag (ms).
        "ami_lag_timeline": [
            {"from_s": k, "events": len(v), "p95_ms": ms(percentile(v, 0.95))}
            for k, v in sorted(timeline.items())
        ],
        "hangup_to_ended_at_row_ms": {
            "p50": ms(percentile(end_lag, 0.5)),
            "p95": ms(percentile(end_lag, 0.95)),
            "max": ms(max(end_lag) if end_lag else None),
        },
        "processes": cpu,
        "cpu_ms_per_call": round(1000 * total_cpu / max(1, placed), 1),
        "cpu_pct_of_one_core_total": round(sum(v["cpu_pct_of_one_core"] for v in cpu.values()), 1),
        "rss_growth_kb_per_call_in_progress": round(rss_growth / 1024 / max(1, peak_open), 1),
    }


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "loadavg_at_end": os.getloadavg(),
    }


def print_results(r: dict[str, Any]) -> None:
    print(json.dumps(r, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
