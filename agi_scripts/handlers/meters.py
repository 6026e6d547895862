"""Route `meters`: the meter-readings flow (ivr_flows/meters.yaml) straight away, for a
dialplan extension of its own (`AGI(agi://host:port/meters)`); the hotline menu reaches the
same flow by key 6 or by saying "meter readings"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agi_scripts.agi import AgiChannel
from agi_scripts.handlers.hotline import run_flow

if TYPE_CHECKING:
    from agi_scripts.call_context import CallContext

FLOW = "meters"


async def meters(agi: AgiChannel, ctx: CallContext) -> None:
    await run_flow(agi, ctx, FLOW)
