"""The Hotline FastAGI server's own machinery serving the reference's thin menu.

`AgiServer` (accept, environment read with its timeout, the overload check, one logger bind)
and `AgiChannel` (per-command deadlines, reply parsing) on uvloop, as `hotline agi` runs them,
but the route is the six commands of `reference_server.py` and nothing is written: no flow
engine, no call log. Beside `hotline` and `reference` in one ab.py run it splits a Hotline
session's CPU into the server's machinery and the menu (the flow engine and its writes).

    python bench/agi/thin_server.py PORT
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from reference_server import QUEUES  # noqa: E402

from agi_scripts.agi import AgiChannel  # noqa: E402
from agi_scripts.event_loop import run  # noqa: E402
from agi_scripts.server import AgiServer, RouteRegistry  # noqa: E402
from call_router.settings import get_settings  # noqa: E402


async def thin_menu(agi: AgiChannel, ctx: Any) -> None:
    """The reference's menu, command for command."""
    await agi.answer()
    await agi.get_variable("CHANNEL(linkedid)")
    await agi.command('STREAM FILE "/prompts/ru/greeting" "0123456789*"')
    reply = await agi.command('GET DATA "/prompts/ru/menu" 5000 1')
    queue = QUEUES.get(reply.result, "coordinator")
    await agi.command(f'SET VARIABLE HOTLINE_INTENT "{queue}"')
    await agi.command(f'SET VARIABLE HOTLINE_QUEUE "{queue}"')


class NoWriter:
    """The writer's interface as AgiServer uses it, writing nothing."""

    database_ok = True
    backlog = 0
    behind = False

    async def start(self) -> None:
        pass

    async def stop(self, timeout: float = 10.0) -> None:
        pass


async def main(port: int) -> None:
    app = RouteRegistry(get_settings(), call_log=None)  # type: ignore[arg-type]
    app.add_route("hotline", thin_menu)
    server = AgiServer(app, writer=NoWriter())  # type: ignore[arg-type]
    await server.start("127.0.0.1", port)
    await asyncio.Event().wait()  # until the bench terminates it


if __name__ == "__main__":
    run(main(int(sys.argv[1])), use_uvloop=get_settings().agi_uvloop)
