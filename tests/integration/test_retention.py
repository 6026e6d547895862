"""Retention (call_router/retention.py) on real files and the real databases: files past their
kind's limit are deleted, newer ones kept, and the calls they belonged to say "deleted by
retention" instead of offering a broken player."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from call_router import retention
from call_router.db import Database
from call_router.models import Call, CallEvent
from call_router.settings import Settings
from dashboard.routes.audio import call_sources

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _file(path: Path, days_old: float, text: str = "RIFF") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = (NOW - timedelta(days=days_old)).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def _call(db: Database, linkedid: str, *, days_old: float, **fields: object) -> int:
    with db.session() as session:
        call = Call(linkedid=linkedid, started_at=NOW - timedelta(days=days_old), **fields)
        session.add(call)
        session.flush()
        return call.id


def _event(db: Database, call_id: int, kind: str, file: str, days_old: float) -> None:
    at = NOW - timedelta(days=days_old)
    with db.session() as session:
        session.add(
            CallEvent(call_id=call_id, at=at, kind=kind, key=f"{kind}:{file}", data={"file": file})
        )


def test_the_sweep_deletes_old_files_keeps_new_ones_and_marks_their_calls(
    database: Database, tmp_path: Path
) -> None:
    settings = Settings(state_dir=tmp_path / "state", recordings_dir=tmp_path / "recordings")
    rec = settings.recordings_dir
    # Utterances: 30 days.
    old_utt = _file(rec / "utterances/old-1.wav", days_old=31)
    new_utt = _file(rec / "utterances/new-1.wav", days_old=29)
    utt_call = _call(database, "u-old", days_old=31, utterance_path="utterances/old-1.wav")
    kept_utt_call = _call(database, "u-new", days_old=29, utterance_path="utterances/new-1.wav")
    # Call recordings: 90 days.
    old_rec = _file(rec / "calls/2026-02-01/1.wav", days_old=91)
    new_rec = _file(rec / "calls/2026-03-15/2.wav", days_old=60)
    rec_call = _call(database, "r-old", days_old=91)
    _event(database, rec_call, "recording", "calls/2026-02-01/1.wav", days_old=91)
    other_call = _call(database, "r-other", days_old=91)
    _event(database, other_call, "recording", "calls/2026-02-01/9.wav", days_old=91)
    # Voicemail left by VoiceMail(): msgNNNN.wav + .txt naming the caller's channel.
    inbox = rec / "voicemail/hotline/hotline/INBOX"
    origtime = int((NOW - timedelta(days=100)).timestamp())
    vm_txt = _file(
        inbox / "msg0000.txt",
        days_old=100,
        text=f"[message]\ncallerchan=PJSIP/pstn-00000007\norigtime={origtime}\n",
    )
    vm_wav = _file(inbox / "msg0000.wav", days_old=100)
    vm_new = _file(inbox / "msg0001.wav", days_old=5)
    vm_call = _call(database, "v-old", days_old=100, channel="PJSIP/pstn-00000007")
    _event(database, vm_call, "voicemail", "", days_old=100)
    # Asterisk's logs: only rotated ones go, the live file stays however old.
    logs = settings.asterisk_dir / "log"
    old_log = _file(logs / "full.2026-02-01-00:00:00", days_old=40)
    new_log = _file(logs / "full.2026-05-30-00:00:00", days_old=2)
    live_log = _file(logs / "full", days_old=40)
    prompt = _file(rec / "prompts/ru/greeting.wav", days_old=400)

    report = retention.sweep(settings, database, NOW)

    for gone in (old_utt, old_rec, vm_txt, vm_wav, old_log):
        assert not gone.exists(), gone
    for kept in (new_utt, new_rec, vm_new, new_log, live_log, prompt):
        assert kept.exists(), kept
    assert report.removed == {"voicemail": 2, "recordings": 1, "utterances": 1, "logs": 1}
    assert report.calls_marked == 3 and report.errors == []
    with database.session() as session:
        marked = {
            (e.call_id, e.data["kind"])
            for e in session.scalars(select(CallEvent).where(CallEvent.kind == "media_deleted"))
        }
        assert marked == {(utt_call, "utterance"), (rec_call, "recording"), (vm_call, "voicemail")}
        utt = session.get(Call, utt_call)
        assert utt is not None and utt.utterance_path is None
        kept_call = session.get(Call, kept_utt_call)
        assert kept_call is not None and kept_call.utterance_path == "utterances/new-1.wav"
        # The call pages: "deleted by retention", not a player and not "missing".
        for call_id, kind in ((utt_call, "utterance"), (rec_call, "recording")):
            call = session.get(Call, call_id)
            assert call is not None
            sources = call_sources(call, rec)
            assert [(s.kind, s.path, s.deleted_by_retention) for s in sources] == [
                (kind, None, True)
            ]

    # A second sweep finds nothing more and marks nothing twice.
    again = retention.sweep(settings, database, NOW)
    assert sum(again.removed.values()) == 0 and again.calls_marked == 0


def test_zero_days_keeps_a_kind_forever(database: Database, tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path / "state",
        recordings_dir=tmp_path / "recordings",
        retention_utterances_days=0,
    )
    ancient = _file(settings.recordings_dir / "utterances/a-1.wav", days_old=3000)
    report = retention.sweep(settings, database, NOW)
    assert ancient.exists() and report.removed["utterances"] == 0


def test_the_cdr_file_is_rotated_and_swept_keeping_what_reconcile_reads(
    database: Database, tmp_path: Path
) -> None:
    """cdr-csv/Master.csv holds every caller's number and times: rotated by the sweep like
    Asterisk's logs, old copies deleted, the newest copy of each log kept whatever its age
    (call_router/reconcile.py reads it after a reconnect)."""
    settings = Settings(state_dir=tmp_path / "state", recordings_dir=tmp_path / "recordings")
    logs = settings.asterisk_dir / "log"
    live = _file(logs / "cdr-csv" / "Master.csv", days_old=0, text="a CDR line\n")

    rotated = retention.rotate_cdr_csv(settings, NOW)

    assert rotated == logs / "cdr-csv" / f"Master.csv.{int(NOW.timestamp())}"
    assert rotated.read_text() == "a CDR line\n" and not live.exists()
    assert retention.rotate_cdr_csv(settings, NOW) is None  # nothing new: nothing to rotate
    # Old copies, and the newest of each log older than the limit (only one is kept).
    older_cdr = _file(logs / "cdr-csv" / "Master.csv.1700000000", days_old=60)
    newest_old_cdr = _file(logs / "cdr-csv" / "Master.csv.1710000000", days_old=45)
    os.utime(rotated, (NOW.timestamp() - 40 * 86400,) * 2)  # and the fresh one is old too
    older_queue_log = _file(logs / "queue_log.1700000000", days_old=50)
    newest_queue_log = _file(logs / "queue_log.1710000000", days_old=35)
    live_queue_log = _file(logs / "queue_log", days_old=35)

    report = retention.sweep(settings, database, NOW)

    for gone in (older_cdr, newest_old_cdr, older_queue_log):
        assert not gone.exists(), gone
    for kept in (rotated, newest_queue_log, live_queue_log):
        assert kept.exists(), kept
    assert report.removed["logs"] == 3 and report.errors == []
