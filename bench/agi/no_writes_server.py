"""The Hotline FastAGI server with a call-log writer that drops every write.

The same server as `hotline agi` (flows, lookups, the menu), but its writer (the child process
or the thread, agi_scripts/writer_process.py and call_writer.py) is replaced by one that keeps
nothing. Beside `hotline`, `hotline-thin` and `reference` in one ab.py run it splits a session's
CPU into the server's machinery, the flow engine, and the call-log writes (on both sides of
the writer's socket). A measuring tool only: a server that logs nothing is not a product.

    python bench/agi/no_writes_server.py      # listens where HOTLINE_AGI_PORT says
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import agi_scripts.server as server  # noqa: E402


class DroppingWriter:
    """The `Writer` interface (agi_scripts/writer_common.py), writing nothing."""

    database_ok = True
    backlog = 0
    behind = False

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def submit(self, op: str, linkedid: str, **args: Any) -> None:
        pass

    def keep_from_thread(self, op: str, linkedid: str, timeout: float = 5.0, **args: Any) -> bool:
        return True

    def call_id(self, linkedid: str) -> int | None:
        return None

    async def idle(self, timeout: float | None = None) -> bool:
        return True

    async def start(self) -> None:
        pass

    async def stop(self, timeout: float = 10.0) -> None:
        pass


if __name__ == "__main__":
    # serve() builds its writer by these names: both kinds become the dropping one.
    server.WriterProcess = DroppingWriter  # type: ignore[misc,assignment]
    server.CallWriter = DroppingWriter  # type: ignore[misc,assignment]
    server.main()
