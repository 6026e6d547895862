"""Retention: residents' audio and Asterisk's rotated logs are kept only as long as settings say.

A daily sweep (the router's background loop; `hotline retention sweep` runs one now) deletes
files older than their kind's limit, by modification time:
- voicemail   recordings/voicemail/**      settings.retention_voicemail_days (default 90)
- recordings  recordings/calls/**          settings.retention_recordings_days (default 90)
- utterances  recordings/utterances/**     settings.retention_utterances_days (default 30)
- logs        Asterisk's rotated logs (full.*, messages.*, queue_log.*) and CDRs
              (cdr-csv/Master.csv.*)       settings.retention_logs_days (default 30);
              logger.conf names rotated files by time, and the sweep asks Asterisk to rotate;
              Master.csv (every caller's number and times) is rotated here, the same way
              (cdr_csv opens it for each record, so a renamed file is simply started anew).
              The newest rotated copy of each log is kept whatever its age: the router's
              reconcile (call_router/reconcile.py) reads it after a reconnect.
0 days keeps a kind forever. A deleted file's call gets a `media_deleted` timeline event (its
`utterance_path` is cleared), so pages say "deleted by retention" instead of a broken player.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from call_router.ami_client import AmiSender
from call_router.db import Database
from call_router.models import Call, CallEvent
from call_router.settings import Settings

# Timeline kind written when retention deleted a call's file: data {kind, file, reason}.
EVENT_MEDIA_DELETED = "media_deleted"
MEDIA_KINDS = {"voicemail": "voicemail", "recordings": "calls", "utterances": "utterances"}
# The timeline / audio-source kind of each media kind (dashboard/routes/audio.py).
SOURCE_KIND = {"voicemail": "voicemail", "recordings": "recording", "utterances": "utterance"}
# Rotated Asterisk logs: the live files (full, messages, queue_log) are never touched.
ROTATED_LOG = re.compile(r"^(full|messages|queue_log|Master\.csv)\.(.+)$")
# cdr_csv's file, under the log folder.
CDR_CSV = Path("cdr-csv") / "Master.csv"
# A VoiceMail() message: msgNNNN.<format> with msgNNNN.txt naming the caller's channel.
_APP_MESSAGE = re.compile(r"^msg[0-9]{4}$")
# How far from a file's time its call may have started (a day for the events naming it).
_MESSAGE_SLACK = timedelta(hours=2)

log = structlog.get_logger(__name__)


@dataclass
class SweepReport:
    """Files removed per kind, and how many calls were marked."""

    removed: dict[str, int] = field(default_factory=dict)
    calls_marked: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"removed": self.removed, "calls_marked": self.calls_marked, "errors": self.errors}


def limits(settings: Settings) -> dict[str, int]:
    return {
        "voicemail": settings.retention_voicemail_days,
        "recordings": settings.retention_recordings_days,
        "utterances": settings.retention_utterances_days,
        "logs": settings.retention_logs_days,
    }


def sweep(settings: Settings, db: Database, now: datetime) -> SweepReport:
    """One pass: delete what is past its limit, mark the calls that pointed at it."""
    report = SweepReport()
    for kind, days in limits(settings).items():
        report.removed[kind] = 0
        if days <= 0:
            continue
        cutoff = (now - timedelta(days=days)).timestamp()
        if kind == "logs":
            folder = settings.asterisk_dir / "log"
            keep = _newest_rotated(folder)
            old = [
                p for p in _old_files(folder, cutoff) if ROTATED_LOG.match(p.name) and p not in keep
            ]
            report.removed[kind] = _remove(old, report)
            continue
        root = settings.recordings_dir
        for group in _media_groups(root / MEDIA_KINDS[kind], cutoff):
            with db.session() as session:
                if _mark(session, kind, root, group, now):
                    report.calls_marked += 1
            report.removed[kind] += _remove(group, report)
    log.info("retention_sweep", removed=report.removed, calls_marked=report.calls_marked)
    return report


def _newest_rotated(folder: Path) -> set[Path]:
    """The newest rotated copy of each log (per folder and name): reconcile may need it."""
    newest: dict[tuple[Path, str], tuple[float, Path]] = {}
    for path in _old_files(folder, float("inf")):
        match = ROTATED_LOG.match(path.name)
        if not match:
            continue
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        key = (path.parent, match.group(1))
        if key not in newest or mtime > newest[key][0]:
            newest[key] = (mtime, path)
    return {path for _mtime, path in newest.values()}


def rotate_cdr_csv(settings: Settings, now: datetime) -> Path | None:
    """Rename cdr-csv/Master.csv to Master.csv.<epoch seconds> (as logger.conf's timestamp
    strategy names the others); Asterisk starts a new one with the next call. None when
    there is nothing to rotate."""
    live = settings.asterisk_dir / "log" / CDR_CSV
    try:
        if live.stat().st_size == 0:
            return None
    except OSError:
        return None
    stamp = int(now.timestamp())
    target = live.with_name(f"{live.name}.{stamp}")
    while target.exists():
        stamp += 1
        target = live.with_name(f"{live.name}.{stamp}")
    try:
        live.rename(target)
    except OSError as exc:
        log.warning("cdr_csv_rotate_failed", error=exc.strerror)
        return None
    return target


def _old_files(folder: Path, cutoff: float) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            try:
                if path.is_symlink() or path.stat().st_mtime >= cutoff:
                    continue
            except OSError:
                continue
            yield path


def _media_groups(folder: Path, cutoff: float) -> list[list[Path]]:
    """Old files, grouped by message: a VoiceMail() msgNNNN goes with all its formats and
    its .txt (decided by the .txt's age, or the audio's when there is none)."""
    groups: dict[Path, list[Path]] = {}
    for path in _old_files(folder, cutoff):
        stem = path.with_suffix("")
        key = stem if _APP_MESSAGE.match(stem.name) else path
        groups.setdefault(key, []).append(path)
    result = []
    for key, paths in groups.items():
        if _APP_MESSAGE.match(key.name):
            # Every file of the message, old or new (formats are written together).
            paths = sorted(p for p in key.parent.glob(key.name + ".*") if p.is_file())
        result.append(paths)
    return result


def _remove(paths: list[Path], report: SweepReport) -> int:
    removed = 0
    for path in paths:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            report.errors.append(f"{path}: {exc.strerror}")
    return removed


def _mark(session: Session, kind: str, root: Path, group: list[Path], now: datetime) -> bool:
    """Mark the call a deleted file belonged to; True when one was found."""
    audio = next((p for p in group if p.suffix != ".txt"), group[0])
    rel = audio.relative_to(root).as_posix()
    call = _owner(session, kind, root, group, rel)
    if call is None:
        return False
    if kind == "utterances" and call.utterance_path is not None:
        call.utterance_path = None
    key = f"{EVENT_MEDIA_DELETED}:{SOURCE_KIND[kind]}"
    exists = session.scalar(
        select(CallEvent.id).where(CallEvent.call_id == call.id, CallEvent.key == key)
    )
    if exists is None:
        try:
            with session.begin_nested():
                session.add(
                    CallEvent(
                        call_id=call.id,
                        at=now,
                        kind=EVENT_MEDIA_DELETED,
                        key=key,
                        data={"kind": SOURCE_KIND[kind], "file": rel, "reason": "retention"},
                    )
                )
        except IntegrityError:  # a concurrent sweep marked it
            pass
    return True


def _owner(session: Session, kind: str, root: Path, group: list[Path], rel: str) -> Call | None:
    if kind == "utterances":
        return session.scalars(select(Call).where(Call.utterance_path == rel)).first()
    event_kind = SOURCE_KIND[kind]
    # The event naming the file was written while it was being recorded: look near its mtime.
    try:
        written = datetime.fromtimestamp(group[0].stat().st_mtime, UTC)
    except OSError:
        return None
    near = select(CallEvent).where(
        CallEvent.kind == event_kind,
        CallEvent.at >= written - _MESSAGE_SLACK * 12,
        CallEvent.at <= written + _MESSAGE_SLACK * 12,
    )
    for event in session.scalars(near):
        file = (event.data or {}).get("file") if isinstance(event.data, dict) else None
        if (
            isinstance(file, str)
            and file
            and Path(file).with_suffix("") == Path(rel).with_suffix("")
        ):
            return session.get(Call, event.call_id)
    txt = next((p for p in group if p.suffix == ".txt"), None)
    if kind != "voicemail" or txt is None:
        return None
    return _voicemail_app_owner(session, txt)


def _voicemail_app_owner(session: Session, txt: Path) -> Call | None:
    """VoiceMail()'s .txt names the caller's channel and the time (origtime, epoch)."""
    info: dict[str, str] = {}
    try:
        for line in txt.read_text(errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                info[key.strip()] = value.strip()
    except OSError:
        return None
    channel, origtime = info.get("callerchan"), info.get("origtime", "")
    if not channel or not origtime.isdigit():
        return None
    at = datetime.fromtimestamp(int(origtime)).astimezone()
    return session.scalars(
        select(Call)
        .where(
            Call.channel == channel,
            Call.started_at <= at + _MESSAGE_SLACK,
            Call.started_at >= at - _MESSAGE_SLACK,
        )
        .order_by(Call.started_at.desc())
    ).first()


# --- running it -------------------------------------------------------------------------------

SWEEP_INTERVAL_SECONDS = 24 * 3600
# Asterisk's logs are rotated at most this often by the router (a rotated file's mtime is the
# last line written before its rotation).
ROTATE_EVERY = timedelta(hours=23)


async def rotate_asterisk_logs(ami: AmiSender) -> bool:
    """Ask Asterisk to rotate full/messages/queue_log (logger.conf: by timestamp) through the
    process's AMI link (the router's `hotline-originate` link: its "reporting" class is what
    LoggerRotate needs); False when Asterisk is not reachable (the sweep still removes what is
    already rotated)."""
    from call_router.ami_client import AmiActionFailed, AmiUnavailable, check

    try:
        check("LoggerRotate", await ami.send({"Action": "LoggerRotate"}))
    except (AmiUnavailable, AmiActionFailed, OSError, TimeoutError) as exc:
        log.warning("asterisk_log_rotate_failed", error=str(exc) or type(exc).__name__)
        return False
    return True


def rotation_due(settings: Settings, now: datetime) -> bool:
    """No rotated `full` log from the last day: a router restart does not rotate again."""
    folder = settings.asterisk_dir / "log"
    try:
        newest = max(
            (p.stat().st_mtime for p in folder.glob("full.*") if p.is_file()), default=None
        )
    except OSError:
        return True
    return newest is None or now.timestamp() - newest >= ROTATE_EVERY.total_seconds()


async def sweep_now(
    settings: Settings,
    db: Database,
    now: datetime,
    *,
    ami: AmiSender,
    rotate: bool | None = None,
) -> SweepReport:
    """Rotate Asterisk's logs (through `ami`) and the CDR file (when due, or `rotate`), then
    sweep (off the event loop: it walks folders)."""
    import asyncio

    if rotate if rotate is not None else rotation_due(settings, now):
        await rotate_asterisk_logs(ami)
        rotate_cdr_csv(settings, now)
    return await asyncio.to_thread(sweep, settings, db, now)


async def run_periodically(settings: Settings, db: Database, ami: AmiSender) -> None:
    """The router's daily job; `ami` is the router's one action link (router_service.py)."""
    from call_router.models import utcnow
    from call_router.periodic import run_every

    await run_every(
        SWEEP_INTERVAL_SECONDS,
        lambda: sweep_now(settings, db, utcnow(), ami=ami),
        name="retention_sweep",
    )
