"""How every Hotline process writes its log lines: structlog, to stderr, tracebacks plain.

structlog's default renders an exception with rich, every frame's local variables included.
That costs tens to hundreds of milliseconds of CPU a traceback, on the event loop that serves
every caller's menu: with the database failing, one per caller's lookup, and the FastAGI server
fell silent (50 callers, none served in 30 s; BENCHMARKS.md). Locals also carry what a log
must not: callers' numbers, a database URL's password, tokens. A plain traceback names the
frames and lines, no values.
"""

from __future__ import annotations

import sys

import structlog


def configure_logging() -> None:
    """structlog's own defaults, but plain tracebacks and stderr (stdout is for `--json`)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            ),
        ],
        # sys.stderr looked up per logger, not once: a test runner may swap and close it.
        logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr),
    )
