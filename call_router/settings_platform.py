"""The `HOTLINE_*` fields of the platform the hotline runs on, one mixin per part.

The parts: where it keeps things, telephony (numbers, SIP, Asterisk), AMI and cluster nodes,
FastAGI and live audio, the dashboard server. Composed into the one Settings object by
call_router/settings.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

# Where the code and its data folders (ivr_flows/, recordings/, asterisk_conf/) are.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# A cluster node's name (HOTLINE_NODE): Asterisk's systemname and the `node` of call rows.
NODE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
NodeName = Annotated[str, Field(pattern=NODE_NAME_PATTERN)]


# (backend, driver) of the database URLs the call log takes: the drivers it installs.
SUPPORTED_DATABASES = frozenset({("postgresql", "psycopg"), ("sqlite", "pysqlite")})


def _xdg(var: str, fallback: str) -> Path:
    base = os.environ.get(var)
    return Path(base) if base else Path.home() / fallback


def default_dashboard_workers(cpus: int | None = None) -> int:
    """One dashboard worker per usable core (a container's cpuset counts), at most 4."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cpus or 1))


class StorageSettings(BaseModel):
    """Where the hotline keeps things: state and cache folders, the database, Redis."""

    # Where runtime state lives: rendered Asterisk config, pid files, logs, SQLite.
    state_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "hotline"
    )
    # The sandbox Asterisk root is large and reusable: keep it in the cache, outside the repo.
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache") / "hotline")
    asterisk_root: Path | None = None
    asterisk_mode: Literal["auto", "system", "sandbox"] = "auto"
    debian_suite: str = "sid"

    database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Key and channel prefix in Redis, so several hotlines (or test runs) can share one server.
    # Empty: "hotline-<installation id>", the id generated once in the state directory, so a
    # new installation never reads an earlier one's live state. Processes that share no state
    # directory (containers) set it explicitly.
    redis_prefix: str = ""

    @field_validator("database_url")
    @classmethod
    def _a_database_the_call_log_speaks(cls, value: str | None) -> str | None:
        """Checked here, so a typo is one clear line at start, not a traceback later. The
        drivers are the ones installed: psycopg 3 for PostgreSQL, Python's own sqlite3."""
        if value is None:
            return None
        try:
            url = make_url(value)
        except ArgumentError:
            # SQLAlchemy's own message quotes the URL (a password too, before 2.0.41).
            raise ValueError(
                "not a database URL (postgresql+psycopg://user:password@host/name or "
                "sqlite:///path)"
            ) from None
        try:
            # Without "+driver" SQLAlchemy's default for the backend (loading its dialect).
            backend_driver = (url.get_backend_name(), url.get_driver_name())
        except NoSuchModuleError:
            backend_driver = None
        if backend_driver not in SUPPORTED_DATABASES:
            raise ValueError(
                "the call log needs PostgreSQL (postgresql+psycopg://...) or SQLite "
                f"(sqlite:///...), not {url.drivername}"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _a_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
        return value

    # Every process's log lines (stderr): the least level written, and how. A busy box writes a
    # line per caller who hangs up in the menu at `info`; `warning` keeps only what needs a
    # look. `json`: one JSON object a line, for a log collector (Loki, Elasticsearch, journald).
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"


class TelephonySettings(BaseModel):
    """The hotline's numbers and locale, SIP and the carrier trunk, SIP bans, Asterisk."""

    hotline_number: str = "500100"
    # Optional direct number for meter readings (ivr_flows/meters.yaml), e.g. "500106".
    meters_number: str | None = None
    hotline_caller_id: str = "500100"
    default_language: Literal["ru", "en"] = "ru"
    country_code: str = "RU"
    # IANA zone of the hotline's working day ("today" on the dashboard); default: the machine's.
    timezone: str | None = None

    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    # The carrier trunk is identified by its source address only: IPs, CIDRs or host names,
    # comma-separated. Nothing else may use the trunk (pjsip ACL), and these are never banned.
    pstn_match: str = "127.0.0.1"
    pstn_host: str = "127.0.0.1"
    pstn_port: int = 5070
    # SIP brute-force protection (call_router/sip_bans.py): this many failed authentications
    # from one address within the window ban it for sip_ban_seconds. 0 failures: off.
    sip_ban_threshold: int = Field(default=10, ge=0, le=10_000)
    sip_ban_window_seconds: int = Field(default=300, ge=1, le=86_400)
    sip_ban_seconds: int = Field(default=3600, ge=1, le=30 * 86_400)
    rtp_start: int = 10000
    rtp_end: int = 10999
    # Asterisk's memory allocator. With glibc's malloc a long-running Asterisk's RSS creeps up
    # call after call (memory freed between peaks stays fragmented in its arenas; BENCHMARKS.md,
    # "Soak"); jemalloc (Debian's libjemalloc2, preloaded) gives freed pages back. "glibc":
    # Asterisk's own default, with at most asterisk_malloc_arena_max arenas (0: glibc's).
    asterisk_allocator: Literal["jemalloc", "glibc"] = "jemalloc"
    asterisk_malloc_arena_max: int = Field(default=2, ge=0, le=256)


class AmiSettings(BaseModel):
    """Cluster nodes, the AMI, and how the router writes what it hears there."""

    # This box's name in a cluster of Asterisk nodes (`hotline cluster`): Asterisk's systemname
    # (unique call ids across nodes) and the `node` of every call it serves. Unset: one box.
    node: str | None = Field(default=None, pattern=NODE_NAME_PATTERN)
    ami_host: str = "127.0.0.1"
    # Other Asterisk nodes' AMI addresses (same port and users), tried in order when ami_host
    # does not answer: one-shot actions (click-to-call, queue actions) go through a node that
    # is up. `hotline cluster` sets them for its dashboard.
    ami_fallback_hosts: list[str] = []
    # The cluster's nodes as the dashboard knows them: node name -> its AMI address. The
    # dashboard merges every node's live state (Redis prefix `<redis_prefix>-<name>`, see
    # live_state.node_prefix) and writes the name of the node whose AMI took a click-to-call
    # on its call row. `hotline cluster up` and the compose cluster profile set it for their
    # dashboard. Empty: one box (its own prefix only).
    node_ami_hosts: dict[NodeName, str] = {}
    ami_port: int = 5038
    ami_username: str = "hotline"
    # The router writes up to this many queued AMI events per transaction (1: one each).
    ami_batch_size: int = Field(default=200, ge=1, le=5000)
    # ... by this many writers in parallel, each owning a share of the calls (PostgreSQL).
    ami_writers: int = Field(default=4, ge=1, le=16)
    # While the database is unreachable the router keeps up to this many events in memory
    # (and never more than a few seconds' worth); the rest go to the spool file
    # (router_spool_path). All are written when it returns.
    router_backlog_memory: int = Field(default=1000, ge=1)
    # manager.conf sends the AMI user only the events the hotline reads (off: every event).
    ami_event_filter: bool = True


class AgiSettings(BaseModel):
    """The FastAGI pool and its workers, their call-log writer, the caller's live audio."""

    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # The FastAGI pool: "host:port" of every FastAGI server the dialplan may use, tried in
    # this order for each call until one accepts (empty: agi_host:agi_port alone). A server
    # that is down costs a caller one refused connection, not the menu.
    agi_pool: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")]] = []
    # How many of the pool's first servers this state dir runs itself (`hotline up`, the
    # supervisor): server 1 listens on agi_host:agi_port (the pool's first entry when this box
    # runs it), server k >= 2 on agi_pool[k-1], its AudioSocket on that host.
    agi_local_servers: int = Field(default=1, ge=1, le=16)
    # Which of them this process is (`hotline agi --server K`; 1: the single box's names).
    agi_server: int = Field(default=1, ge=1, le=16)
    # Calls one FastAGI process serves at once; the next ones are routed to the coordinator at
    # once (never left in silence). A held menu call costs ~10-20 KiB and no CPU while waiting.
    # (HOTLINE_AGI_MAX_SESSIONS counts per process: with N workers a box holds N times as many.)
    agi_max_sessions: int = Field(default=4000, ge=1, le=100_000)
    # FastAGI processes sharing agi_port (agi_scripts/workers.py): one uses one core. "auto":
    # one per CPU this process may run on. 1: a single process, no supervisor in front of it.
    agi_workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1
    # The FastAGI processes run on uvloop (less CPU per AGI command; agi_scripts/event_loop.py)
    # when it is installed; false: the stdlib asyncio loop.
    agi_uvloop: bool = True
    # The call-log writer (agi_scripts/call_writer.py): writes kept in memory before they go to
    # the spool file, and unwritten writes (memory + spool) past which new callers are routed
    # to the coordinator without the menu (the database has fallen that far behind).
    agi_writer_memory_limit: int = Field(default=20_000, ge=100, le=10_000_000)
    agi_writer_max_backlog: int = Field(default=1_000_000, ge=1000, le=100_000_000)
    # The writer's database work in a child process of each FastAGI process (no GIL shared with
    # the callers' event loop; agi_scripts/writer_process.py), or in a thread of its own.
    # "auto": the process with SQLite, whose work is then CPU of this box's FastAGI core
    # (~15 % less CPU per call), the thread with PostgreSQL, whose server does the work (the
    # thread costs less there): BENCHMARKS.md, "The writer's home by database".
    agi_writer_process: bool | Literal["auto"] = "auto"
    # The caller's live audio (Asterisk's AudioSocket app connects here; agi_scripts/listen.py).
    audiosocket_host: str = "127.0.0.1"
    # With N FastAGI workers, worker i listens on audiosocket_port + i (0: any free port).
    audiosocket_port: int = 4574
    # The address Asterisk connects back to (AudioSocket(uuid,HOST:PORT)); unset: the listen
    # host. Set it when the FastAGI box is not where Asterisk reaches audiosocket_host (a
    # 0.0.0.0 listener, several boxes behind one AGI address).
    audiosocket_advertise_host: str | None = Field(default=None, max_length=255)
    # stream: AudioSocket with barge-in; record: AGI RECORD FILE (no barge-in, whole-second
    # silence window). A failed stream falls back to record on its own.
    speech_mode: Literal["stream", "record"] = "stream"
    # Quiet after speech that ends the utterance, and the longest utterance we listen to.
    speech_silence_ms: int = Field(default=500, ge=100, le=5000)
    speech_max_seconds: float = Field(default=15.0, gt=0, le=120)


class DashboardSettings(BaseModel):
    """The dashboard server: address, workers, proxies, sign-in lifetimes."""

    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8000
    # uvicorn worker processes: one process is bound to one core (Python renders the pages), so
    # one per core, at most 4 (each keeps its own database pool). Safe on SQLite too: WAL, and the
    # AGI server and router already share the file. Per-process state is documented in main.py.
    dashboard_workers: int = Field(default_factory=lambda: default_dashboard_workers(), ge=1, le=32)
    # Served over https (directly or behind a TLS proxy): session cookies get the Secure flag.
    dashboard_https: bool = False
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto the dashboard believes
    # (uvicorn's forwarded_allow_ips: comma-separated addresses or networks, "*" for any).
    # Empty (the default): trust none; the client address is the TCP peer's. Set it to the
    # proxy's address only: a trusted proxy decides which address sign-in failures count on.
    forwarded_allow_ips: str = Field(default="", max_length=1000)
    # How long a dashboard sign-in lasts; "keep me signed in" (an unattended wallboard screen)
    # lasts session_remember_days instead.
    session_hours: int = Field(default=12, ge=1, le=24 * 7)
    session_remember_days: int = Field(default=30, ge=1, le=365)
