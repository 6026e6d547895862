"""Engine, sessions and migrations. The only module that knows how to reach the database."""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from call_router import json_text

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# libpq's defaults wait for ever on a server that does not answer (a host down behind a
# firewall that drops packets: minutes of the kernel's retries), holding a thread and its
# pooled connection. These bound it; a parameter in the URL wins over its default here.
POSTGRES_CONNECT_ARGS: dict[str, int] = {
    "connect_timeout": 5,  # s, to open a connection
    "tcp_user_timeout": 15_000,  # ms that sent data may go unacknowledged
    "keepalives_idle": 30,  # s idle before the first keepalive probe
    "keepalives_interval": 10,  # s between probes
    "keepalives_count": 3,  # probes unanswered: the connection is dead
}


# Statements the database executed, per thread: a read that got an answer from the database
# (not from memory, not an error it swallowed) says the database is there
# (agi_scripts/database_guard.py).
_answered = threading.local()


def statements_answered() -> int:
    """Statements executed by any engine in this thread so far."""
    return int(getattr(_answered, "count", 0))


def _count_answer(*_args: object) -> None:
    _answered.count = getattr(_answered, "count", 0) + 1


def make_engine(url: str) -> Engine:
    engine = _make_engine(url)
    event.listen(engine, "after_cursor_execute", _count_answer)
    return engine


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=json_text.dumps)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL lets the dashboard read while the AGI server and router write.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # psycopg 3 lets the checkout look at the socket; another driver pings (a round trip).
    parsed = make_url(url)
    psycopg3 = parsed.get_driver_name() == "psycopg"
    connect_args = {k: v for k, v in POSTGRES_CONNECT_ARGS.items() if k not in parsed.query}
    engine = create_engine(
        url,
        pool_pre_ping=not psycopg3,
        pool_size=10,
        max_overflow=20,
        connect_args=connect_args,
        json_serializer=json_text.dumps,
    )
    if psycopg3:
        event.listen(engine, "checkout", _drop_if_closed_by_server)
    return engine


def _drop_if_closed_by_server(dbapi_conn, _record, _proxy):  # type: ignore[no-untyped-def]
    """A pooled connection the server has closed (a PostgreSQL restart, an idle timeout, a
    terminated backend) is replaced before it is used, so no request fails on it.

    Free of round trips, unlike pool_pre_ping (a SELECT per checkout, i.e. twice per dashboard
    request): an idle connection's socket has nothing to read unless the server said goodbye
    (its FATAL message, then EOF). poll(), not select(): no limit on descriptor numbers.
    """
    try:
        fd = dbapi_conn.pgconn.socket
    except Exception as exc:  # closed on our side: psycopg refuses to give the socket
        raise DisconnectionError() from exc
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        # SQLAlchemy discards it and connects afresh for this checkout.
        raise DisconnectionError()


class DatabaseUnavailable(Exception):
    """The database cannot be reached: the work must wait, it is not at fault."""


def unreachable(exc: BaseException) -> bool:
    """A lost or refused connection (server down, restarting, network), not a bad query."""
    if isinstance(exc, DatabaseUnavailable | OperationalError | InterfaceError):
        return True
    if isinstance(exc, DisconnectionError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def first_line(exc: BaseException) -> str:
    """A driver's error without the SQL and the link SQLAlchemy appends: fit for a log line."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


class Database:
    """Handed to every service at start-up; never a module-level global."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        upgrade(self.url)

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
