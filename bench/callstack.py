"""The real stack under SIPp calls, shared by bench/load and bench/soak.

``Stack`` is ``hotline up`` on its own ports with a temporary state dir and a fresh database
(PostgreSQL by default, dropped at the end) carrying bench-only triggers that stamp every
call-log write; one SIPp registers the bench operators and answers their queue calls; one SIPp
carrier places the calls (``start_callers``). The functions below read what happened: SIPp's
per-call log lines, the call rows of every caller, the AMI-event → row lag, the hotline's
processes (CPU, RSS, open files).
"""

from __future__ import annotations

import argparse
import array
import contextlib
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCENARIOS = BENCH / "load"  # the SIPp scenario templates (caller, operators)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CALLER_PREFIX = "+749590"  # + 5 digits = a Moscow number; never an operator login
MAX_CALLS = 99_999  # one caller number each
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


def stack_ports(base: int, rtp: tuple[int, int]) -> dict[str, str]:
    """A test or bench stack's ports (tests/conftest.py, Stack here): SIP base+60, AMI +38,
    FastAGI +73, AudioSocket +74, dashboard +80, the carrier +70, and the RTP range `rtp`."""
    return {
        "HOTLINE_SIP_PORT": str(base + 60),
        "HOTLINE_AMI_PORT": str(base + 38),
        "HOTLINE_AGI_PORT": str(base + 73),
        "HOTLINE_AUDIOSOCKET_PORT": str(base + 74),
        "HOTLINE_DASHBOARD_PORT": str(base + 80),
        "HOTLINE_PSTN_PORT": str(base + 70),
        "HOTLINE_RTP_START": str(rtp[0]),
        "HOTLINE_RTP_END": str(rtp[1]),
    }


def stack_env(
    state: Path, db_url: str, queue_timeout: int, b: int, name: str, rtp_end: int = 499
) -> dict[str, str]:
    return {
        **stack_ports(b, (b + 100, b + rtp_end)),
        "HOTLINE_QUEUE_TIMEOUT": str(queue_timeout),
        "HOTLINE_STATE_DIR": str(state),
        "HOTLINE_RECORDINGS_DIR": str(state / "recordings"),
        "HOTLINE_REDIS_PREFIX": f"hotline-bench-{name}-{os.getpid()}",
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


def create_database(kind: str, state: Path, name: str) -> tuple[str, str | None]:
    """The database URL, and the PostgreSQL database name to drop afterwards."""
    if kind == "sqlite":
        return f"sqlite:///{state / 'hotline.db'}", None
    from sqlalchemy import create_engine, text

    db_name = f"hotline_bench_{name}_{os.getpid()}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}"'))
        conn.execute(text(f'CREATE DATABASE "{db_name}"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{db_name}", db_name


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


@dataclass(frozen=True)
class ProcSample:
    """One process at one moment (a service's own process or one of its children)."""

    service: str
    label: str  # the service name, or "<service>/<child name>:<pid>" for a child
    pid: int
    cpu_s: float
    rss: int
    fds: int | None


class Sampler(threading.Thread):
    """Every `interval` s: CPU seconds, RSS and open files of the hotline's processes (each
    service's process and each of its children, e.g. the dashboard's uvicorn workers), and
    SIPp's open/created calls."""

    def __init__(self, pids: dict[str, int], stat_file: Path, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        import psutil  # type: ignore[import-untyped]

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.stat_file = stat_file
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def _measure(self) -> list[ProcSample]:
        out = []
        for name, proc in self.procs.items():
            family = [(name, proc)]
            with contextlib.suppress(Exception):
                family += [
                    (f"{name}/{child_role(child)}:{child.pid}", child)
                    for child in proc.children(recursive=True)
                ]
            for label, member in family:
                try:
                    with member.oneshot():
                        cpu = member.cpu_times()
                        fds = None
                        with contextlib.suppress(Exception):
                            fds = member.num_fds()
                        out.append(
                            ProcSample(
                                name,
                                label,
                                member.pid,
                                cpu.user + cpu.system,
                                member.memory_info().rss,
                                fds,
                            )
                        )
                except Exception:
                    if label == name:  # the service itself is gone: say so in the series
                        out.append(ProcSample(name, label, member.pid, math.nan, 0, None))
        return out

    def run(self) -> None:
        while not self._halt.is_set():
            stat = sipp_stat(self.stat_file)
            detail = self._measure()
            totals: dict[str, tuple[float, int]] = {}
            for p in detail:
                cpu, rss = totals.get(p.service, (0.0, 0))
                totals[p.service] = (cpu + p.cpu_s, rss + p.rss)
            self.samples.append(
                {
                    "t": time.time(),
                    "procs": totals,  # service → (CPU s, RSS) with its children
                    "detail": detail,
                    "open_calls": stat.get("CurrentCall"),
                    "created": stat.get("TotalCallCreated"),
                }
            )
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def child_role(child: Any) -> str:
    """A readable name for a service's child: uvicorn's workers and multiprocessing's resource
    tracker are all called "python"."""
    cmdline = " ".join(child.cmdline())
    if "resource_tracker" in cmdline:
        return "resource_tracker"
    if "spawn_main" in cmdline or "multiprocessing" in cmdline:
        return "worker"
    return str(child.name())


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


# --- small helpers ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) with linear interpolation between ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


def lag_summary(lags_s: Sequence[float]) -> dict[str, float | int | None]:
    """Count, p50/p95/p99/max in ms of lags given in seconds."""
    values = list(lags_s)
    return {
        "n": len(values),
        "p50": ms(percentile(values, 0.5)),
        "p95": ms(percentile(values, 0.95)),
        "p99": ms(percentile(values, 0.99)),
        "max": ms(max(values) if values else None),
    }


def end_lag_summary(end_lag: list[float]) -> dict[str, float | None]:
    """p50/p95/max in ms of the hangup → ended_at row lags (`write_lags`)."""
    return {
        "p50": ms(percentile(end_lag, 0.5)),
        "p95": ms(percentile(end_lag, 0.95)),
        "max": ms(max(end_lag) if end_lag else None),
    }


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


def render(template: str, out: Path, **values: str) -> None:
    text = (SCENARIOS / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    out.write_text(text)


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


# --- the stack ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallerPlan:
    """What the SIPp carrier does: `calls` calls at `rate`/s, at most `concurrent` at once."""

    calls: int
    rate: float
    concurrent: int
    patience: float  # seconds after the answer a caller stays at most (then BYE)
    dtmf_delay: float
    audio: float
    digit: str
    first: int = 1  # the first caller number's index (several plans on one stack: no overlap)
    tag: str = ""  # suffix of this plan's SIPp files (several plans on one stack)
    # SIPp -recv_timeout: a call that waits longer for an expected message fails (None: never).
    recv_timeout: float | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, **fields: Any) -> CallerPlan:
        """A plan from the benches' common caller options (--rate, --concurrent, --patience,
        --dtmf-delay, --audio, --digit); `fields` gives the rest or overrides them."""
        common = {
            name: getattr(args, name)
            for name in ("rate", "concurrent", "patience", "dtmf_delay", "audio", "digit")
            if hasattr(args, name)
        }
        return cls(**(common | fields))

    @property
    def numbers(self) -> list[str]:
        return [f"{CALLER_PREFIX}{i:05d}" for i in range(self.first, self.first + self.calls)]

    @property
    def budget_s(self) -> float:
        return self.calls / self.rate + self.patience + 120


class Stack:
    """`hotline up` on ports `port_base`..+600 of 127.0.0.1 with its own state dir and database,
    and the bench operators registered and logged in. Use as a context manager: everything is
    torn down on exit (also on failure or Ctrl-C), unless `keep`."""

    def __init__(
        self,
        name: str,
        *,
        db: str = "postgres",
        port_base: int,
        queue_timeout: int,
        keep: bool = False,
        trace: bool = False,
        rtp_end: int = 499,
        media_ports: tuple[int, int] = (520, 540),
    ) -> None:
        """Ports are offsets from `port_base`: Asterisk's RTP 100..`rtp_end`, SIPp's media ports
        (callers, operators) `media_ports`, which must lie outside Asterisk's RTP range."""
        self.name = name
        self.rtp_end = rtp_end
        self.media_ports = media_ports
        self.keep = keep
        self.trace_on = trace
        self.base = port_base
        self.state = Path(tempfile.mkdtemp(prefix=f"hotline-bench-{name}-"))
        self.db_url, self.db_name = create_database(db, self.state, name)
        os.environ.update(
            stack_env(self.state, self.db_url, queue_timeout, port_base, name, rtp_end)
        )
        self.op_proc: subprocess.Popen[bytes] | None = None
        self.call_proc: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None
        self.pids: dict[str, int] = {}
        self.operators: list[dict[str, Any]] = []
        self.registered = 0

    @classmethod
    def from_args(cls, name: str, args: argparse.Namespace, **options: Any) -> Stack:
        """A stack from the benches' common options (--db, --port-base, --keep, --trace);
        `options` gives the rest (queue_timeout at least) or overrides them."""
        common = {"db": args.db, "port_base": args.port_base, "keep": args.keep}
        return cls(name, **(common | {"trace": getattr(args, "trace", False)} | options))

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def trace(self, path: Path) -> list[str]:
        return ["-trace_msg", "-message_file", self.sipp.inside(path)] if self.trace_on else []

    def prepare(self, operators: int, queue: str) -> tuple[Any, Path]:
        """Settings, SIPp and its work folder, the database schema with the bench's triggers
        (the AMI event -> row lag) and `operators` operators of `queue` in the roster."""
        from call_router.settings import Settings
        from hotline.sipua.rootexec import find_program

        self.settings = settings = Settings()
        self.sipp = find_program(settings, "sipp")
        self.workdir = workdir = self.sipp.make_workdir(f"hotline-bench-{self.name}-")
        log(f"state {self.state}, database {self.db_url.split(':', 1)[0]}, sipp workdir {workdir}")
        hotline("db", "upgrade", timeout=120)
        install_triggers(self.db_url)
        self.operators = add_operators(settings, operators, queue)
        return settings, workdir

    def up(self, operators: int, queue: str, talk: float, operator_life_s: float) -> None:
        """Database schema + triggers, roster, `hotline up`, operators registered (REGISTER
        expiry = their whole life) and available members of `queue`."""
        settings, workdir = self.prepare(operators, queue)
        log(f"{len(self.operators)} operators in the roster; hotline up ...")
        hotline("up", timeout=900)

        from hotline import services
        from hotline.asterisk.sandbox import Asterisk

        self.pids = {"asterisk": Asterisk(settings)._read_pid() or 0}
        for name in ("agi", "router", "dashboard"):
            self.pids[name] = services.read_pid(settings, name) or 0
        if not all(self.pids.values()):
            raise RuntimeError(f"not every process runs: {self.pids}")

        self.register_operators(workdir, talk, operator_life_s, wait=60)
        logins = {o["sip_login"] for o in self.operators}
        members = ensure_members(settings, logins, queue)
        log(f"{members} operators are available members of queue {queue}")
        if members < len(self.operators):
            raise RuntimeError("not every operator is an available queue member")

    def register_operators(
        self, workdir: Path, talk: float, operator_life_s: float, *, wait: float, where: str = ""
    ) -> None:
        """One SIPp registers every operator (REGISTER expiry = their whole life), then answers
        their calls on the same port (-oocsf); waits up to `wait` s for every registration."""
        settings = self.settings
        ops_csv = workdir / "operators.csv"
        ops_csv.write_text(
            "SEQUENTIAL\n"
            + "".join(f"{o['sip_login']};{o['sip_password']};\n" for o in self.operators)
        )
        expires = max(3600, int(operator_life_s) + 60)
        render("operators_register.xml", workdir / "register.xml", EXPIRES=str(expires))
        render("operator_answer.xml", workdir / "answer.xml", TALK_MS=str(int(talk * 1000)))
        op_log = workdir / "operators_logs.log"
        self.op_proc = self.sipp.popen(
            f"{settings.sip_host}:{settings.sip_port}",
            "-sf", self.sipp.inside(workdir / "register.xml"),
            "-oocsf", self.sipp.inside(workdir / "answer.xml"),
            "-inf", self.sipp.inside(ops_csv),
            "-m", str(len(self.operators)), "-r", "50", "-l", str(len(self.operators) + 10),
            "-d", str(int(operator_life_s * 1000)),
            "-i", "127.0.0.1", "-p", str(self.base + 90),
            "-mi", "127.0.0.1", "-mp", str(self.base + self.media_ports[1]),
            "-trace_logs", "-log_file", self.sipp.inside(op_log),
            "-trace_err", "-error_file", self.sipp.inside(workdir / "operators_errors.log"),
            "-nostdin", "-aa", *self.trace(workdir / "operators_msg.log"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            self.registered = sum(1 for f in read_log_lines(op_log) if f and f[0] == "REGISTERED")
            if self.registered >= len(self.operators) or self.op_proc.poll() is not None:
                break
            time.sleep(0.5)
        log(f"{self.registered}/{len(self.operators)} operators registered{where}")
        if self.registered < len(self.operators):
            raise RuntimeError("operators did not all register (see operators_errors.log)")

    @property
    def caller_log(self) -> Path:
        return self.caller_file("logs.log")

    @property
    def caller_stats(self) -> Path:
        return self.caller_file("stats.csv")

    def caller_file(self, what: str, tag: str = "") -> Path:
        """A SIPp carrier's file: caller_logs.log, caller<tag>_stats.csv, ..."""
        assert self.workdir is not None
        return self.workdir / f"caller{tag}_{what}"

    def start_callers(
        self, plan: CallerPlan, sip_port: int | None = None, media_port: int | None = None
    ) -> subprocess.Popen[bytes]:
        """The SIPp carrier: one unique caller number per call, keypad digit after the
        greeting, then the caller stays until an operator hangs up or patience runs out.
        `sip_port` / `media_port` (default: the carrier's port, base + media_ports[0]) let
        several carriers place calls at once (bench/cluster's day)."""
        assert self.workdir is not None
        workdir, sipp, settings = self.workdir, self.sipp, self.settings
        media_s = caller_pcap(workdir / f"caller{plan.tag}.pcap", plan.digit, plan.audio)
        hold_ms = int((plan.patience - plan.dtmf_delay - media_s - 0.2) * 1000)
        scenario = workdir / f"caller{plan.tag}.xml"
        render(
            "caller.xml", scenario,
            PCAP=sipp.inside(workdir / f"caller{plan.tag}.pcap"),
            DELAY_MS=str(int(plan.dtmf_delay * 1000)),
            MEDIA_MS=str(int(media_s * 1000) + 200),
            HOLD_MS=str(max(1, hold_ms)),
        )  # fmt: skip
        numbers = workdir / f"callers{plan.tag}.csv"
        numbers.write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in plan.numbers))
        extra = [] if plan.recv_timeout is None else ["-recv_timeout", f"{int(plan.recv_timeout)}s"]
        tag = plan.tag
        self.call_proc = sipp.popen(
            f"{settings.sip_host}:{settings.sip_port}",
            "-sf", sipp.inside(scenario),
            "-inf", sipp.inside(numbers),
            "-key", "to_user", settings.hotline_number,
            "-r", str(round(plan.rate * 10)), "-rp", "10000",
            "-l", str(plan.concurrent), "-m", str(plan.calls),
            "-i", "127.0.0.1", "-p", str(sip_port or settings.pstn_port),
            "-mi", "127.0.0.1", "-mp", str(media_port or self.base + self.media_ports[0]),
            "-timeout", f"{int(plan.budget_s)}s", "-timeout_error", *extra,
            "-trace_logs", "-log_file", sipp.inside(self.caller_file("logs.log", tag)),
            "-trace_err", "-error_file", sipp.inside(self.caller_file("errors.log", tag)),
            "-trace_stat", "-stf", sipp.inside(self.caller_file("stats.csv", tag)), "-fd", "1",
            "-trace_screen", "-screen_file", sipp.inside(self.caller_file("screen.log", tag)),
            "-nostdin", "-aa", *self.trace(self.caller_file("msg.log", tag)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        return self.call_proc

    def wait_callers(self, plan: CallerPlan) -> int:
        """SIPp's exit code once every call has ended (-1: it overran its budget)."""
        assert self.call_proc is not None
        try:
            return self.call_proc.wait(timeout=plan.budget_s + 30)
        except subprocess.TimeoutExpired:
            stop_process(self.call_proc)
            return -1

    def close(self) -> None:
        stop_process(self.call_proc)
        stop_process(self.op_proc)
        with contextlib.suppress(Exception):
            log("hotline down")
            hotline("down", timeout=120, check=False)
        if self.workdir is not None:
            if self.keep:
                shutil.copytree(self.workdir, self.state / "sipp", dirs_exist_ok=True)
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self.keep and self.db_name:
            log(f"kept database {self.db_name} (drop it yourself)")
        else:
            with contextlib.suppress(Exception):
                drop_database(self.db_name)
        if self.keep:
            log(f"kept {self.state}")
        else:
            shutil.rmtree(self.state, ignore_errors=True)


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

    from call_router.agent_membership import login_of, parse_members
    from call_router.agents import AgentService
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


# --- what happened -----------------------------------------------------------------------------


def answered_numbers(caller_lines: list[list[str]]) -> list[str]:
    return [f[1] for f in caller_lines if f[0] == "ANSWERED"]


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
            if not row_faults(answered, rows)["unfinished"] and all(n in rows for n in answered):
                return rows
            if time.monotonic() > deadline:
                return rows
            time.sleep(1)
    finally:
        engine.dispose()


def outcome_counts(
    answered: Iterable[str], rows: dict[str, list[dict[str, Any]]]
) -> dict[str, int]:
    """outcome → how many call rows of the answered callers ended with it."""
    outcomes: dict[str, int] = {}
    for n in answered:
        for r in rows.get(n, []):
            outcomes[str(r["outcome"])] = outcomes.get(str(r["outcome"]), 0) + 1
    return outcomes


def row_faults(answered: set[str], rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Every caller Asterisk answered must have exactly one call row with ended_at and an
    outcome: the callers with none (lost), more than one (duplicated), or one still open."""
    return {
        "lost": sorted(n for n in answered if n not in rows),
        "duplicated": sorted(n for n in answered if len(rows.get(n, [])) > 1),
        "unfinished": sorted(
            n
            for n in answered
            if n in rows and not all(r["ended_at"] and r["outcome"] for r in rows[n])
        ),
    }


def write_lags(db_url: str) -> tuple[list[tuple[str, float, float]], list[float]]:
    """(kind, lag s, AMI event time as epoch s) of every call-event row, where the lag is the
    moment the bench trigger saw the row written minus the row's `at` (the AMI event's own
    Timestamp); and the lag of every call's ended_at (hangup → row)."""
    from sqlalchemy import create_engine, text

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
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            events = [(k, float(lag), float(at)) for k, lag, at in conn.execute(text(ev_sql))]
            ended = [float(v) for (v,) in conn.execute(text(end_sql))]
    finally:
        engine.dispose()
    return events, ended
