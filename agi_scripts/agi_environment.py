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

# res_agi writes the environment in one fixed order (setup_env in res_agi.c): first what Asterisk
# and the dialplan know (the route, channel, uniqueid), then the caller's own values (caller ID,
# name, dialled and redirecting numbers: text a caller or carrier may have smuggled a line break
# into, and with it a forged `agi_...:` line), then the context and the AGI's arguments. So the
# first copy of an early key is Asterisk's and the last copy of a late one is; among the caller's
# own values a duplicate cannot be told from the original, and none of them is believed.
_CALLER_VALUES = frozenset(
    {
        "agi_callerid",
        "agi_calleridname",
        "agi_callingpres",
        "agi_callingani2",
        "agi_callington",
        "agi_callingtns",
        "agi_dnid",
        "agi_rdnis",
    }
)
_AFTER_CALLER_VALUES = frozenset(
    {
        "agi_context",
        "agi_extension",
        "agi_priority",
        "agi_enhanced",
        "agi_accountcode",
        "agi_threadid",
    }
)


def _written_after_the_caller(key: str) -> bool:
    return key in _AFTER_CALLER_VALUES or key.startswith("agi_arg_")


class EnvironmentReadError(AgiError):
    """The peer did not send a complete AGI environment in time."""


@dataclass(frozen=True)
class AgiEnvironment:
    """The `agi_*` variables Asterisk sends first. Values are untrusted text."""

    values: dict[str, str] = field(default_factory=dict)
    # Keys sent more than once where Asterisk's copy cannot be told (dropped from `values`).
    forged: frozenset[str] = frozenset()

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
    """Parse the header block. Unknown keys are kept, garbage lines are dropped. A key sent
    twice keeps Asterisk's own copy (see _CALLER_VALUES): a caller name carrying a raw line
    break cannot change the route, the linkedid or recordings argument, or the dialled number."""
    values: dict[str, str] = {}
    forged: set[str] = set()
    for line in raw.decode("utf-8", errors="replace").split("\n"):
        key, sep, value = line.rstrip("\r").partition(":")
        key = key.strip()
        if not sep or not _ENV_KEY.fullmatch(key):
            continue
        if key not in values or _written_after_the_caller(key):
            values[key] = value.strip()
        elif key in _CALLER_VALUES:
            forged.add(key)
    for key in forged:
        del values[key]
    return AgiEnvironment(values, frozenset(forged))


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
