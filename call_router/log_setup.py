"""How every Hotline process writes its log lines: structlog, to stderr, tracebacks plain.

structlog's default renders an exception with rich, every frame's local variables included.
That costs tens to hundreds of milliseconds of CPU a traceback, on the event loop that serves
every caller's menu: with the database failing, one per caller's lookup, and the FastAGI server
fell silent (50 callers, none served in 30 s; BENCHMARKS.md). Locals also carry what a log
must not: callers' numbers, a database URL's password, tokens. A plain traceback names the
frames and lines, no values.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from call_router.settings import Settings


def configure_logging(settings: Settings | None = None) -> None:
    """structlog's own defaults, but plain tracebacks and stderr (stdout is for `--json`); a
    service at the level and in the format of its settings (`HOTLINE_LOG_LEVEL`,
    `HOTLINE_LOG_FORMAT`)."""
    level, json_lines = _wanted(settings)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.StackInfoRenderer(),
        structlog.dev.set_exc_info,
    ]
    if json_lines:
        processors += [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # the traceback as text: frames, no values
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors += [
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    structlog.configure(
        processors=processors,
        # Below the level a call costs next to nothing (no event dict, no rendering).
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # sys.stderr looked up per logger, not once: a test runner may swap and close it.
        logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr),
    )


def _wanted(settings: Settings | None) -> tuple[int, bool]:
    if settings is None:
        # A command run by hand, before it reads the settings: a person reads its lines.
        return logging.INFO, False
    return logging.getLevelNamesMapping()[settings.log_level.upper()], settings.log_format == "json"
