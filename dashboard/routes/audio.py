"""In-browser playback: `/calls/{id}/audio/{kind}` serves a call's voicemail, recording or
recognised utterance converted (pydub + ffmpeg) to 16-bit PCM WAV, which every browser plays.

Where the files are:
- `recording`: MixMonitor of an answered queue call; the call's `recording` event names it
  relative to the recordings folder (`calls/<day>/<uniqueid>.wav`);
- `voicemail`: the flow's voicemail node records `voicemail/<name>.wav` and says so in the
  `voicemail` event; Asterisk's VoiceMail() app writes `voicemail/hotline/hotline/INBOX/msgNNNN`
  with a `.txt` beside it naming the caller's channel and the time, which links it to the call;
- `utterance`: what the speech menu heard (`calls.utterance_path`).

Every path comes from the database or a file Asterisk wrote, i.e. indirectly from callers: only
files inside settings.recordings_dir are ever opened. Conversions are cached under the state
folder, keyed by the source path, size and mtime, so a replaced file is converted again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse
from jinja2 import Environment, pass_context

from call_router import call_search
from call_router.models import Call, CallEvent
from call_router.retention import EVENT_MEDIA_DELETED
from call_router.settings import Settings
from dashboard.deps import SessionDep, SettingsDep
from dashboard.routes.schemas import RowId

router = APIRouter(include_in_schema=False)
log = structlog.get_logger(__name__)

KINDS = ("voicemail", "recording", "utterance")
MEDIA_TYPE = "audio/wav"
# Asterisk's VoiceMail() app: <recordings>/voicemail/<context>/<mailbox>/INBOX/msgNNNN.{wav,txt}
VOICEMAIL_INBOX = Path("voicemail") / "hotline" / "hotline" / "INBOX"
# A message's origtime may be a little before the call row's start (clocks, event order).
VOICEMAIL_SLACK = timedelta(seconds=10)
# A call that never got its end written (router down) still finds a message this long after.
VOICEMAIL_OPEN_END = timedelta(hours=1)
SOURCE_SUFFIXES = (".wav", ".WAV", ".gsm", ".wav49", ".ulaw", ".alaw", ".sln", ".g722")


@dataclass(frozen=True)
class AudioSource:
    """One playable thing of a call: `path` None when the call says it exists but the file
    cannot be found (deleted, never written, or outside the recordings folder)."""

    kind: str
    path: Path | None
    # Removed by the retention sweep (call_router/retention.py), not lost.
    deleted_by_retention: bool = False


# --- pure helpers ---------------------------------------------------------------------------


def inside(root: Path, candidate: str | Path) -> Path | None:
    """`candidate` (absolute, or relative to `root`) if it resolves inside `root`, else None.

    Resolving follows symlinks and `..`, so neither can lead out of the recordings folder.
    """
    text = str(candidate)
    if not text or "\x00" in text:
        return None
    root = root.resolve()
    path = Path(text)
    resolved = (path if path.is_absolute() else root / path).resolve()
    return resolved if resolved.is_relative_to(root) and resolved != root else None


def with_audio_suffix(path: Path) -> Path:
    """Asterisk names files without an extension (`msg0000`); pick the one on disk (wav first)."""
    if path.suffix in SOURCE_SUFFIXES:
        return path
    for suffix in SOURCE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            return candidate
    return path.with_name(path.name + ".wav")


def parse_message_info(text: str) -> dict[str, str]:
    """app_voicemail's msgNNNN.txt (`key=value` lines under `[message]`) as a dict."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith((";", "[")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        info[key.strip()] = value.strip()
    return info


def message_matches(
    info: dict[str, str], channel: str | None, started: datetime, ended: datetime | None
) -> bool:
    """The message was left by this call: same caller channel, recorded while the call was up.

    Channel names (`PJSIP/pstn-0000002a`) repeat only after an Asterisk restart, and the time
    window tells those apart.
    """
    if not channel or info.get("callerchan") != channel:
        return False
    try:
        origtime = datetime.fromtimestamp(int(info.get("origtime", "")), started.tzinfo)
    except (ValueError, OverflowError, OSError):
        return False
    until = (ended or started + VOICEMAIL_OPEN_END) + VOICEMAIL_SLACK
    return started - VOICEMAIL_SLACK <= origtime <= until


def event_file(events: Sequence[CallEvent], kind: str) -> str | None:
    """The newest `file` a `kind` event of the call names (relative to the recordings folder)."""
    for event in reversed(events):
        if event.kind == kind and isinstance(event.data, dict):
            file = event.data.get("file")
            if isinstance(file, str) and file:
                return file
    return None


def cache_name(source: Path) -> str:
    """Changes whenever the source file does (same path rewritten: new size or mtime)."""
    stat = source.stat()
    key = f"{source}\x00{stat.st_size}\x00{stat.st_mtime_ns}".encode()
    return hashlib.sha256(key).hexdigest()[:32] + ".wav"


# --- files ------------------------------------------------------------------------------------


def find_voicemail_message(
    recordings: Path, channel: str | None, started: datetime, ended: datetime | None
) -> Path | None:
    """The VoiceMail() message this call left, found through the `.txt` files beside them."""
    inbox = recordings / VOICEMAIL_INBOX
    if not channel or not inbox.is_dir():
        return None
    # Only files written while the call could have been up: no need to read the whole inbox.
    earliest = (started - VOICEMAIL_SLACK).timestamp()
    latest = ((ended or started + VOICEMAIL_OPEN_END) + VOICEMAIL_SLACK).timestamp()
    with os.scandir(inbox) as entries:
        candidates = sorted(entry.path for entry in entries if entry.name.endswith(".txt"))
    for name in candidates:
        txt = Path(name)
        try:
            if not earliest <= txt.stat().st_mtime <= latest:
                continue
            info = parse_message_info(txt.read_text(errors="replace"))
        except OSError:
            continue
        if message_matches(info, channel, started, ended):
            return with_audio_suffix(txt.with_suffix(""))
    return None


def call_sources(call: Call, recordings: Path) -> list[AudioSource]:
    """What the call has to play, in page order."""
    events = list(call.events)
    kinds = {event.kind for event in events}
    found: list[AudioSource] = []
    swept = {
        str(event.data.get("kind"))
        for event in events
        if event.kind == EVENT_MEDIA_DELETED and isinstance(event.data, dict)
    }

    def add(kind: str, candidate: str | Path | None) -> None:
        if kind in swept:
            found.append(AudioSource(kind, None, deleted_by_retention=True))
            return
        path = inside(recordings, candidate) if candidate else None
        if path is not None:
            path = with_audio_suffix(path)
        found.append(AudioSource(kind, path if path is not None and path.is_file() else None))

    if "voicemail" in kinds:
        named = event_file(events, "voicemail")
        add(
            "voicemail",
            named
            or find_voicemail_message(recordings, call.channel, call.started_at, call.ended_at),
        )
    if "recording" in kinds:
        add("recording", event_file(events, "recording"))
    if getattr(call, "utterance_path", None) or "utterance" in swept:
        add("utterance", call.utterance_path)
    return found


def converted(source: Path, cache_dir: Path) -> Path:
    """`source` as 16-bit PCM mono WAV, converted once and then served from the cache."""
    target = cache_dir / cache_name(source)
    if target.exists():
        return target
    from pydub import AudioSegment

    cache_dir.mkdir(parents=True, exist_ok=True)
    audio = AudioSegment.from_file(str(source)).set_channels(1).set_sample_width(2)
    # Written aside, then renamed: a second request converting at the same time, or a reader,
    # never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".part")
    os.close(fd)
    try:
        audio.export(tmp, format="wav")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("audio_converted", source=source.name, seconds=round(len(audio) / 1000, 1))
    return target


def audio_cache_dir(settings: Settings) -> Path:
    return settings.state_dir / "cache" / "audio"


# --- the route and the page's list ----------------------------------------------------------


@router.get("/calls/{call_id}/audio/{kind}")
def call_audio(
    call_id: RowId, kind: str, session: SessionDep, settings: SettingsDep
) -> FileResponse:
    if kind not in KINDS:
        raise HTTPException(404, detail="no such audio kind")
    call = call_search.call_with_events(session, call_id)
    if call is None:
        raise HTTPException(404, detail="call not found")
    source = next((s for s in call_sources(call, settings.recordings_dir) if s.kind == kind), None)
    if source is None or source.path is None:
        raise HTTPException(404, detail=f"this call has no {kind} file")
    try:
        playable = converted(source.path, audio_cache_dir(settings))
    except Exception as exc:  # ffmpeg refused the file: say so, don't 500
        log.warning("audio_conversion_failed", call_id=call_id, kind=kind, error=str(exc))
        raise HTTPException(422, detail=f"the {kind} file could not be converted") from exc
    # FileResponse answers Range requests (seeking in the player) and sets Content-Length.
    return FileResponse(
        playable,
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "private, max-age=3600"},
        filename=f"call-{call_id}-{kind}.wav",
        content_disposition_type="inline",
    )


def install(env: Environment) -> None:
    """`audio_sources(call)` for templates: the call's audio sources (the detail page's players)."""

    @pass_context
    def sources(ctx: Any, call: Call) -> Iterable[AudioSource]:
        request = ctx.get("request")
        state = getattr(getattr(request, "app", None), "state", None)
        settings: Settings | None = getattr(getattr(state, "dashboard", None), "settings", None)
        if settings is None:
            return []
        return call_sources(call, settings.recordings_dir)

    env.globals["audio_sources"] = sources
