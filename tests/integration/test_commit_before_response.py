"""A route's transaction commits before its response leaves (dashboard/deps.py SessionDep).

FastAPI ends a yield dependency after the response is sent unless told otherwise: an
integrator who reads back right after "200 closed" could then see the entry still open, or be
told "done" about a commit that failed. Checked through a real uvicorn server, where the
order is observable (an in-process ASGI client waits for the whole app either way).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.orm import Session

from call_router.db import Database
from dashboard.deps import SessionDep, get_db

# Long enough that a response sent before the commit is seen first by the client.
COMMIT_DELAY = 0.5


class SlowCommitDatabase(Database):
    def __init__(self, url: str, order: list[str]) -> None:
        super().__init__(url)
        self.order = order

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with super().session() as session:
            yield session
            time.sleep(COMMIT_DELAY)
        self.order.append("committed")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_response_leaves_after_the_commit(tmp_path: Path) -> None:
    order: list[str] = []
    db = SlowCommitDatabase(f"sqlite:///{tmp_path / 'order.db'}", order)
    app = FastAPI()
    app.dependency_overrides[get_db] = lambda: db

    @app.post("/write")
    def write(session: SessionDep) -> dict[str, bool]:
        session.execute(text("SELECT 1"))
        return {"ok": True}

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        response = httpx.post(f"http://127.0.0.1:{port}/write", timeout=10)
        order.append("response")
        assert response.json() == {"ok": True}
        for _ in range(100):  # with the wrong scope the commit would still come, later
            if len(order) == 2:
                break
            time.sleep(0.05)
        assert order == ["committed", "response"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        db.dispose()
