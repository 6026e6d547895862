"""What a route needs besides the channel (CallContext): its own module, so the flow engine
and the handlers name it without importing the server that runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agi_scripts.agi import AgiEnvironment
from call_router.call_log import CallLog
from call_router.settings import Settings

if TYPE_CHECKING:
    from agi_scripts.audiosocket import AudioSocketServer
    from agi_scripts.flows.services import FlowServices
    from agi_scripts.writer_common import Writer


@dataclass
class CallContext:
    """What a route needs besides the channel; handed in, never global.

    The route fills in `linkedid` (and rebinds `log`) once it knows it, so the server's
    error log names the call the same way the call log does.
    """

    env: AgiEnvironment
    settings: Settings
    call_log: CallLog
    log: Any  # structlog BoundLogger, bound to this call
    # Call-log writes go here, never straight to the database: the caller never waits for it.
    writer: Writer
    linkedid: str | None = None
    # The caller's live audio (agi_scripts/listen.py); None: listening falls back to RECORD FILE.
    audiosocket: AudioSocketServer | None = None
    # The voice-menu flows (registry, clock, speech input, lookups); None: no flows loaded.
    flows: FlowServices | None = None
