"""Render the Asterisk configuration (asterisk_conf/*.conf.j2) from settings and the roster.

Everything that lands in a config file is checked here first, and the Jinja environment checks
every rendered value again (no newline, no `;`), so an operator name or a setting can never add
a config line: in Asterisk's config files a newline starts a new option and `;` a comment.
The checks are config_checks.py, the AMI users ami_users.py.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import os
import re
import struct
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from call_router.asterisk_paths import AsteriskPaths
from call_router.dial_plan import DialPlan, DialPlanError
from call_router.private_files import give_to_folder_owner
from call_router.settings import PROJECT_ROOT, Settings
from hotline.asterisk.ami_users import ami_users
from hotline.asterisk.config_checks import (
    AUDIO_SUFFIXES,
    DIAL_PATTERN_RE,
    NUMBER_RE,
    ConfigError,
    OperatorConf,
    banned_acl,
    bind_ip,
    carrier,
    check_rendered,
    checked_operators,
    checked_queues,
    config_path,
    extra_numbers,
    host_name,
    must_match,
    port_number,
)

TEMPLATES_DIR = PROJECT_ROOT / "asterisk_conf"
# The virtual-hold offer queues.conf plays every minute, named without a language folder: Asterisk
# takes it from recordings/prompts/<the caller's channel language>/.
CALLER_LANGUAGE_PROMPT = "queue_callback_offer"
LANGUAGE_RE = re.compile(r"[a-z]{2}")

# --- rendering -------------------------------------------------------------------------------


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        finalize=check_rendered,
    )


def voicemail_pin(settings: Settings) -> str:
    """An 8-digit mailbox PIN derived from the per-state-dir secret: no default credential."""
    digest = hmac.new(settings.ami_secret.encode(), b"hotline voicemail pin", hashlib.sha256)
    return f"{int(digest.hexdigest(), 16) % 10**8:08d}"


def template_context(
    settings: Settings,
    paths: AsteriskPaths,
    operators: Sequence[OperatorConf],
    moh_dir: str,
    banned: Sequence[str] = (),
    tenant_queues: Sequence[str] = (),
    dialled_numbers: Sequence[str] = (),
) -> dict[str, Any]:
    for field in ("etc", "spool", "log", "run", "lib", "recordings", "data", "modules"):
        config_path(getattr(paths, field), f"paths.{field}")
    if not settings.rtp_start < settings.rtp_end:
        raise ConfigError("rtp_start must be below rtp_end")
    if not 1 <= settings.queue_timeout <= 86400:
        raise ConfigError("queue_timeout must be 1..86400 seconds")
    ami_host = bind_ip(settings.ami_host, "ami_host")
    ami_permit = {"127.0.0.1"}
    if not ipaddress.ip_address(ami_host).is_unspecified:
        ami_permit.add(ami_host)
    queues = checked_queues(tenant_queues)
    roster = checked_operators(operators, settings, queues)
    return {
        "paths": paths,
        # Asterisk's systemname in a cluster: unique call ids (linkedids) across nodes.
        "node": settings.node,
        # What Kamailio adds to the carrier's requests in a cluster (extensions [from-edge]).
        "edge_secret": settings.secrets["edge_secret"] if settings.node else "",
        "queues": queues,
        "operators": roster,
        "hotline_number": must_match(NUMBER_RE, settings.hotline_number, "hotline_number"),
        "dialled_numbers": extra_numbers(dialled_numbers, settings),
        "meters_number": _meters_number(settings),
        **_dial_out(settings),
        "hotline_caller_id": must_match(NUMBER_RE, settings.hotline_caller_id, "hotline_caller_id"),
        "default_language": must_match(LANGUAGE_RE, settings.default_language, "language"),
        "sip_host": bind_ip(settings.sip_host, "sip_host"),
        "sip_port": port_number(settings.sip_port, "sip_port"),
        **carrier(settings),
        "banned_networks": banned_acl(banned, settings),
        "pstn_host": host_name(settings.pstn_host, "pstn_host"),
        "pstn_port": port_number(settings.pstn_port, "pstn_port"),
        "rtp_start": port_number(settings.rtp_start, "rtp_start"),
        "rtp_end": port_number(settings.rtp_end, "rtp_end"),
        "ami_host": ami_host,
        "ami_port": port_number(settings.ami_port, "ami_port"),
        "ami_permit": sorted(ami_permit),
        "ami_users": ami_users(settings),
        "agi_host": host_name(settings.agi_host, "agi_host"),
        "agi_port": port_number(settings.agi_port, "agi_port"),
        "agi_addresses": _agi_addresses(settings),
        "queue_timeout": settings.queue_timeout,
        **_queue_behaviour(settings, paths, queues),
        "voicemail_pin": voicemail_pin(settings),
        "moh_dir": config_path(moh_dir, "music on hold folder"),
    }


def _agi_addresses(settings: Settings) -> list[str]:
    """The FastAGI pool as the dialplan tries it ("host:port", each checked)."""
    checked = []
    for address in settings.agi_addresses:
        host, _, port = address.rpartition(":")
        checked_host = host_name(host, "agi_pool host")
        checked.append(f"{checked_host}:{port_number(int(port), 'agi_pool port')}")
    return checked


def _dial_out(settings: Settings) -> dict[str, list[str]]:
    """The dial-out plan as extension patterns ([callback-plan], [callback-denied])."""
    try:
        plan = DialPlan.from_settings(settings)
        allowed, denied = plan.asterisk_patterns(), plan.asterisk_denied_patterns()
    except DialPlanError as exc:
        raise ConfigError(str(exc)) from exc
    if not allowed:
        raise ConfigError("the dial-out plan allows no number at all: check dial_out_* settings")
    for pattern in allowed + denied:
        must_match(DIAL_PATTERN_RE, pattern, "dial-out pattern")
    return {"dial_out_allowed": allowed, "dial_out_denied": denied}


def _meters_number(settings: Settings) -> str | None:
    if not settings.meters_number:
        return None
    number = must_match(NUMBER_RE, settings.meters_number, "meters_number")
    if number == settings.hotline_number:
        raise ConfigError("meters_number must differ from hotline_number")
    return number


def _queue_behaviour(
    settings: Settings, paths: AsteriskPaths, queues: tuple[str, ...]
) -> dict[str, Any]:
    """Overflow timeouts, wrap-up, queue length, recording and the virtual-hold prompt."""
    for name in ("coordinator_timeout", "wrapup_seconds", "queue_maxlen"):
        value = getattr(settings, name)
        if not isinstance(value, int) or not 0 <= value <= 86400:
            raise ConfigError(f"{name} must be 0..86400, got {value!r}")
    if settings.coordinator_timeout < 1:
        raise ConfigError("coordinator_timeout must be at least 1 second")
    unknown = [q for q in settings.record_queues if q not in queues]
    if unknown:
        raise ConfigError(f"record_queues: unknown queue(s) {', '.join(unknown)}")
    return {
        # A specialist queue overflows to the coordinator after queue_timeout; the coordinator
        # (reached directly or by overflow) keeps the caller up to coordinator_timeout.
        "queue_timeouts": {
            q: settings.coordinator_timeout if q == "coordinator" else settings.queue_timeout
            for q in queues
        },
        "wrapup_seconds": settings.wrapup_seconds,
        "queue_maxlen": settings.queue_maxlen,
        "callback_offer_seconds": settings.callback_offer_seconds,
        "record_queues": frozenset(settings.record_queues),
        # queues.conf takes no variables, but Asterisk puts the channel's language into a
        # sound path without one, before its last part (main/file.c, "old layout" for
        # absolute paths): .../prompts/queue_callback_offer plays
        # .../prompts/<caller's language>/queue_callback_offer.
        "callback_offer_prompt": config_path(
            f"{paths.recordings}/prompts/{CALLER_LANGUAGE_PROMPT}", "prompt path"
        ),
    }


def render_templates(context: dict[str, Any]) -> dict[str, str]:
    """{file name: text} for every asterisk_conf/*.conf.j2."""
    env = _environment()
    names = sorted(p.name for p in TEMPLATES_DIR.glob("*.conf.j2"))
    if not names:
        raise ConfigError(f"no templates in {TEMPLATES_DIR}")
    return {name.removesuffix(".j2"): env.get_template(name).render(context) for name in names}


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Atomic: a reload never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    give_to_folder_owner(tmp)  # the sandbox Asterisk's user owns etc/ (it must read this)
    tmp.replace(path)


def write_hold_music(path: Path, seconds: float = 12.0) -> None:
    """A quiet, slow arpeggio (8 kHz 16-bit mono WAV) for when no real music is installed.

    Debian's asterisk-moh-opsound-* is not in the sandbox root, so without this the `default`
    class would have no files and callers would wait in silence (and think they were cut off).
    """
    rate = 8000
    notes = (261.63, 329.63, 392.00, 523.25, 392.00, 329.63)  # C major, up and down
    note_len = seconds / len(notes)
    frames = bytearray()
    for freq in notes:
        n = int(rate * note_len)
        for i in range(n):
            t = i / rate
            envelope = min(1.0, t / 0.05) * math.exp(-2.5 * t / note_len)
            sample = (
                0.12
                * envelope
                * (math.sin(2 * math.pi * freq * t) + 0.3 * math.sin(4 * math.pi * freq * t))
            )
            frames += struct.pack("<h", int(max(-1.0, min(1.0, sample)) * 32767))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    give_to_folder_owner(tmp)
    tmp.replace(path)


def _moh_dir(settings: Settings, paths: AsteriskPaths) -> str:
    """recordings/moh if someone put music there, else a generated hold tone."""
    custom = settings.recordings_dir / "moh"
    if custom.is_dir() and any(p.suffix.lower() in AUDIO_SUFFIXES for p in custom.iterdir()):
        return f"{paths.recordings}/moh"
    generated = settings.asterisk_dir / "lib" / "moh" / "hotline-hold.wav"
    if not generated.exists():
        write_hold_music(generated)
    return f"{paths.lib}/moh"


def _link_voicemail(settings: Settings, paths: AsteriskPaths) -> None:
    """Voicemail lives in recordings/voicemail (the layout the rest of the project reads).

    app_voicemail always writes under <astspooldir>/voicemail, so that folder is a symlink to
    the recordings folder *as Asterisk sees it* (inside the sandbox root it dangles on the host,
    which is fine: only Asterisk follows it; host code reads settings.recordings_dir/voicemail).
    """
    (settings.recordings_dir / "voicemail").mkdir(parents=True, exist_ok=True)
    link = settings.asterisk_dir / "spool" / "voicemail"
    target = f"{paths.recordings}/voicemail"
    if link.is_symlink():
        if os.readlink(link) == target:
            return
        link.unlink()
    elif link.exists():
        return  # a real folder from an older layout: keep its messages, leave it alone
    link.symlink_to(target)


def render_config(
    settings: Settings,
    paths: AsteriskPaths,
    operators: Sequence[OperatorConf],
    banned: Sequence[str] = (),
    tenant_queues: Sequence[str] = (),
    dialled_numbers: Sequence[str] = (),
) -> Path:
    """Write settings.asterisk_dir/etc/*.conf; create spool/log/run/lib; return asterisk.conf."""
    base = settings.asterisk_dir
    for sub in ("etc", "spool", "log", "log/cdr-csv", "run", "lib"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    context = template_context(
        settings,
        paths,
        operators,
        _moh_dir(settings, paths),
        banned,
        tenant_queues=tenant_queues,
        dialled_numbers=dialled_numbers,
    )
    rendered = render_templates(context)
    etc = base / "etc"
    for name, text in rendered.items():
        # Credentials only in the two files that need them, and only readable by us.
        secret = name in {"manager.conf", "pjsip.conf", "voicemail.conf"}
        _write(etc / name, text, 0o600 if secret else 0o644)
    for stale in etc.glob("*.conf"):
        if stale.name not in rendered:
            stale.unlink()
    _link_voicemail(settings, paths)
    return etc / "asterisk.conf"
