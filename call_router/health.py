"""Is each part the hotline depends on working? For `hotline status`, `hotline doctor` and
`/healthz`.

Each check answers with a `Check`: up or down, a short detail, and for a part that is down a
plain-words hint of what to run. Checks are quick (short timeouts) and never raise.

What only the router knows (its AMI link, how far it lags behind Asterisk, events it keeps
while the database is away) it writes every few seconds to `router-health.json` in the run
directory (`write_router_health`); the checks read it from there. A report older than
ROUTER_REPORT_STALE means the router is not running.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from call_router.pid_files import read_agi_workers
from call_router.settings import Settings

TIMEOUT = 2.0
ROUTER_HEALTH_FILE = "router-health.json"
# The router rewrites its report every HEALTH_INTERVAL seconds.
HEALTH_INTERVAL = 5.0
ROUTER_REPORT_STALE = 20.0
# The router behind Asterisk by more than this is reported as a problem.
LAG_LIMIT_SECONDS = 5.0
AMI_BANNER = b"Asterisk Call Manager"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RouterReport:
    """What the router says about itself (see ami_listener.AmiListener.health)."""

    updated_at: datetime
    ami_connected: bool
    asterisk_started_at: datetime | None
    # Seconds from an event leaving Asterisk to the router having written it.
    lag_seconds: float | None
    # Events received from Asterisk and not handed to a writer yet.
    pending_events: int
    # Events kept in the router's durable spool while the database is away (on disk), and
    # all events waiting for the database (disk plus memory; call_router/event_backlog.py).
    spool_depth: int | None
    # False from the first write that failed for want of a database until one succeeds again.
    database_reachable: bool = True
    backlog: int = 0
    # Events lost to an error (not an outage) since the router started: ami_event_failed.
    failed_events: int = 0
    # Until when the router had every event Asterisk sent (its link up then): now while it
    # is up, else when it was last up - carried over a router restart, so the next start
    # knows since when calls may have gone unlogged (listener_reconcile.py).
    heard_until: datetime | None = None


def router_health_path(settings: Settings) -> Path:
    return settings.run_dir / ROUTER_HEALTH_FILE


def read_router_report(settings: Settings) -> RouterReport | None:
    """What this installation's router last wrote; None if it never ran here."""
    return read_router_health(router_health_path(settings))


def write_router_health(path: Path, report: RouterReport) -> None:
    """Atomically (write, then rename): a reader never sees half a report."""
    values = asdict(report)
    for key in ("updated_at", "asterisk_started_at", "heard_until"):
        value = values[key]
        values[key] = value.isoformat() if value is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    # Per thread: the router writes from its loop and from a worker thread.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    temporary.write_text(json.dumps(values))
    temporary.replace(path)


def read_router_health(path: Path) -> RouterReport | None:
    try:
        values = json.loads(path.read_text())
        return RouterReport(
            updated_at=datetime.fromisoformat(values["updated_at"]),
            ami_connected=bool(values["ami_connected"]),
            asterisk_started_at=_time_or_none(values.get("asterisk_started_at")),
            lag_seconds=values.get("lag_seconds"),
            pending_events=int(values.get("pending_events") or 0),
            spool_depth=values.get("spool_depth"),
            database_reachable=bool(values.get("database_reachable", True)),
            backlog=int(values.get("backlog") or 0),
            failed_events=int(values.get("failed_events") or 0),
            heard_until=_time_or_none(values.get("heard_until")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _time_or_none(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# --- the checks ---------------------------------------------------------------------------------


def check_database(settings: Settings) -> Check:
    url = settings.db_url
    args = {"connect_timeout": int(TIMEOUT)} if url.startswith("postgresql") else {}
    engine = create_engine(url, connect_args=args)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = (str(getattr(exc, "orig", None) or exc).splitlines() or ["?"])[0]
        return Check(
            "database",
            False,
            f"cannot query the database: {reason}",
            "start PostgreSQL (or check HOTLINE_DATABASE_URL); calls keep flowing meanwhile, "
            "but the call log is not written",
        )
    finally:
        engine.dispose()
    return Check("database", True, engine.url.render_as_string(hide_password=True))


def check_redis(settings: Settings) -> Check:
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return Check(
            "redis",
            False,
            f"Redis does not answer at {_where(settings.redis_url)}: {exc}",
            "start redis-server (or check HOTLINE_REDIS_URL); calls are still logged, the "
            "wallboard shows live data as stale until Redis is back",
        )
    finally:
        client.close()
    return Check("redis", True, f"{_where(settings.redis_url)}, prefix {settings.redis_prefix}")


def check_asterisk(settings: Settings) -> Check:
    """Asterisk answers on its manager port with its banner."""
    where = f"{settings.ami_host}:{settings.ami_port}"
    try:
        with socket.create_connection((settings.ami_host, settings.ami_port), TIMEOUT) as sock:
            sock.settimeout(TIMEOUT)
            banner = sock.recv(64)
    except OSError as exc:
        return Check(
            "asterisk",
            False,
            f"nothing answers on the AMI port {where} ({exc.strerror or exc})",
            "start it: `hotline asterisk up` (or `hotline up` for everything); callers get no "
            "answer while Asterisk is down",
        )
    if not banner.startswith(AMI_BANNER):
        return Check(
            "asterisk",
            False,
            f"something that is not Asterisk answers on {where}",
            "another program holds the AMI port: stop it or change HOTLINE_AMI_PORT",
        )
    return Check("asterisk", True, f"AMI answers on {where}")


def check_fastagi(settings: Settings) -> Check:
    where = f"{settings.agi_host}:{settings.agi_port}"
    try:
        with socket.create_connection((settings.agi_host, settings.agi_port), TIMEOUT):
            pass
    except OSError as exc:
        return Check(
            "fastagi",
            False,
            f"the FastAGI server does not accept connections on {where} ({exc.strerror or exc})",
            "start it: `hotline up` (or `hotline agi`); meanwhile every caller skips the menu "
            "and waits for a coordinator",
        )
    return Check("fastagi", True, f"accepts connections on {where}{_agi_workers(settings)}")


def _agi_workers(settings: Settings) -> str:
    """`hotline agi --workers N`: how many are ready (their parent's status file)."""
    data = read_agi_workers(settings)
    if data is None:
        return ""
    workers = [w for w in data["workers"] if isinstance(w, dict)]
    ready = [w for w in workers if w.get("ready")]
    restarts = sum(int(w.get("restarts") or 0) for w in workers)
    pids = ", ".join(str(w.get("pid")) for w in ready)
    detail = f"; {len(ready)} of {len(workers)} workers ready (pids {pids})"
    return detail + (f", {restarts} restarted" if restarts else "")


def router_checks(report: RouterReport | None, now: datetime | None = None) -> list[Check]:
    """The AMI link, the router's lag behind Asterisk and its spool, from its own report."""
    now = now or datetime.now(UTC)
    start = "start it: `hotline up` (or `hotline router`)"
    if report is None or (now - report.updated_at).total_seconds() > ROUTER_REPORT_STALE:
        why = "no report" if report is None else f"last report {report.updated_at.isoformat()}"
        down = f"the router is not running ({why})"
        hint = f"{start}; until then calls are not completed in the log"
        return [
            Check(name, False, down, hint) for name in ("ami_link", "router_lag", "router_spool")
        ]
    checks = [
        Check("ami_link", True, "the router is connected to Asterisk")
        if report.ami_connected
        else Check(
            "ami_link",
            False,
            "the router is not connected to Asterisk's AMI",
            "check that Asterisk runs (`hotline asterisk up`); the router reconnects by itself",
        )
    ]
    lag = report.lag_seconds
    if lag is None:
        checks.append(Check("router_lag", True, "not measured yet"))
    elif lag > LAG_LIMIT_SECONDS:
        checks.append(
            Check(
                "router_lag",
                False,
                f"the router is {lag:.1f} s behind Asterisk "
                f"({report.pending_events} events waiting)",
                "the database is slow or away: check it (`hotline doctor`) and the router log",
            )
        )
    else:
        checks.append(
            Check("router_lag", True, f"{lag:.2f} s ({report.pending_events} events waiting)")
        )
    spool = report.spool_depth or 0
    if report.database_reachable:
        checks.append(
            Check("router_spool", True, f"{report.backlog} events waiting, {spool} on disk")
        )
    else:
        checks.append(
            Check(
                "router_spool",
                False,
                f"the database is unreachable: {report.backlog} events kept "
                f"({spool} on disk), written when it returns",
                "bring the database back (`hotline doctor`); no event is lost meanwhile",
            )
        )
    return checks


# Every check's name, in check_all's order (`hotline status --check NAME`).
CHECK_NAMES = ("asterisk", "ami_link", "router_lag", "router_spool", "database", "redis", "fastagi")


def check_all(settings: Settings) -> list[Check]:
    return [
        check_asterisk(settings),
        *router_checks(read_router_health(router_health_path(settings))),
        check_database(settings),
        check_redis(settings),
        check_fastagi(settings),
    ]


def _where(url: str) -> str:
    """host:port of a URL, without credentials."""
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    return rest.rsplit("@", 1)[-1]
