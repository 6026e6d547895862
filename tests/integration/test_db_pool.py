"""The PostgreSQL pool survives a server that closed its connections (a restart, an idle
timeout): a dead pooled connection is replaced at checkout, so no request fails on it, and a
live one is reused as is (call_router/db.py; no round trip per checkout)."""

from __future__ import annotations

from sqlalchemy import create_engine, event, text

from call_router.db import Database
from tests.integration.conftest import POSTGRES_ADMIN_URL


def pooled_backends(db: Database, count: int) -> list[int]:
    """Open `count` pooled connections at once, give them back; their server process ids."""
    connections = [db.engine.connect() for _ in range(count)]
    try:
        return [int(conn.scalar(text("SELECT pg_backend_pid()"))) for conn in connections]
    finally:
        for conn in connections:
            conn.close()


def test_connections_closed_by_the_server_never_fail_a_session(postgres_url: str) -> None:
    db = Database(postgres_url)
    connects: list[object] = []
    event.listen(db.engine, "connect", lambda conn, _record: connects.append(conn))
    try:
        pids = pooled_backends(db, 3)
        # A live pool is reused as it is: no reconnects.
        for _ in range(10):
            with db.session() as session:
                assert session.scalar(text("SELECT 1")) == 1
        assert len(connects) == 3

        # What a PostgreSQL restart does to every pooled connection (waits until they are gone).
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for pid in pids:
                assert conn.scalar(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid})
        admin.dispose()

        fresh = pooled_backends(db, 3)
        assert not set(fresh) & set(pids)
        for _ in range(5):
            with db.session() as session:
                assert session.scalar(text("SELECT 1")) == 1
    finally:
        db.dispose()
