"""The AGI environment, the `agi_*` header Asterisk sends first: read in bounded time, parsed.

The environment is `agi_key: value` lines ended by a blank line. A peer that stops half-way,
never ends or floods is refused within ENV_TIMEOUT: a half-sent header never freezes the server
(panoramisk's reader loops forever on one; tests/unit/test_fuzz_agi.py).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from agi_scripts.agi_protocol import AgiError

ENV_TIMEOUT = 5.0
# Asterisk's environment is ~1 KiB; a peer that sends far more is not Asterisk.
ENV_MAX_BYTES = 16 * 1024
_ENV_KEY = re.compile(r"agi_[a-z0-9_]+")


class EnvironmentReadError(AgiError):
    """The peer did not send a complete AGI environment in time."""


@dataclass(frozen=True)
class AgiEnvironment:
    """The `agi_*` variables Asterisk sends first. Values are untrusted text."""

    values: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def network_script(self) -> str:
        """The route: `hotline` of agi://host:port/hotline, without a query string or slashes."""
        script = self.get("agi_network_script")
        if not script:
            # Older or odd peers only send agi_request=agi://host:port/<script>.
            request = self.get("agi_request")
            script = request.split("://", 1)[-1].partition("/")[2] if "://" in request else ""
        return script.split("?", 1)[0].strip("/")

    @property
    def uniqueid(self) -> str:
        return self.get("agi_uniqueid")

    @property
    def channel(self) -> str:
        return self.get("agi_channel")

    @property
    def caller_number(self) -> str | None:
        return _known(self.get("agi_callerid"))

    @property
    def caller_name(self) -> str | None:
        return _known(self.get("agi_calleridname"))

    @property
    def dialed_number(self) -> str | None:
        return _known(self.get("agi_dnid")) or _known(self.get("agi_extension"))

    @property
    def language(self) -> str:
        return self.get("agi_language")


def _known(value: str) -> str | None:
    # Asterisk writes "unknown" for an absent caller ID.
    return None if value in ("", "unknown") else value


def parse_environment(raw: bytes) -> AgiEnvironment:
    """Parse the header block. Unknown keys are kept, garbage lines are dropped."""
    values: dict[str, str] = {}
    for line in raw.decode("utf-8", errors="replace").split("\n"):
        key, sep, value = line.rstrip("\r").partition(":")
        key = key.strip()
        # First occurrence wins: a caller name carrying a raw line break could otherwise
        # inject a later `agi_network_script:` line and override the real one.
        if sep and _ENV_KEY.fullmatch(key):
            values.setdefault(key, value.strip())
    return AgiEnvironment(values)


async def read_environment(
    reader: asyncio.StreamReader,
    timeout: float = ENV_TIMEOUT,
    max_bytes: int = ENV_MAX_BYTES,
) -> AgiEnvironment:
    """Read until the blank line; a peer that stops early, never ends or floods is refused."""
    try:
        async with asyncio.timeout(timeout):
            raw = await reader.readuntil(b"\n\n")
    except TimeoutError as exc:
        raise EnvironmentReadError(f"no complete AGI environment within {timeout}s") from exc
    except asyncio.IncompleteReadError as exc:
        raise EnvironmentReadError(
            f"connection closed after {len(exc.partial)} bytes of AGI environment"
        ) from exc
    except asyncio.LimitOverrunError as exc:
        raise EnvironmentReadError("AGI environment larger than the reader limit") from exc
    if len(raw) > max_bytes:
        raise EnvironmentReadError(f"AGI environment of {len(raw)} bytes exceeds {max_bytes}")
    return parse_environment(raw)
