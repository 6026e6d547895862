"""`/calls/{id}/audio/{kind}`: real files converted by pydub + ffmpeg, served from the cache,
and never a file outside the recordings folder. SQLite and PostgreSQL (the `database` fixture)."""

from __future__ import annotations

import io
import math
import os
import shutil
import struct
import subprocess
import uuid
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from call_router import accounts
from call_router.db import Database
from call_router.models import Call, CallEvent
from call_router.settings import Settings
from dashboard.main import create_app
from dashboard.routes import audio
from tests.conftest import require

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
RATE = 8000


def tone_pcm(seconds: float, hz: int = 440) -> bytes:
    frames = int(RATE * seconds)
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / RATE))) for i in range(frames)
    )


def write_wav(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(tone_pcm(seconds))
    return path


def write_gsm(path: Path, seconds: float) -> Path:
    """A raw GSM 06.10 file, as Asterisk writes with format=gsm."""
    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed")
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", str(RATE), "-ac", "1", "-i", "-",
         "-c:a", "libgsm", "-f", "gsm", str(path)],
        input=tone_pcm(seconds), check=True, timeout=30,
    )  # fmt: skip
    return path


def wav_seconds(body: bytes) -> tuple[float, int]:
    with wave.open(io.BytesIO(body)) as played:
        assert played.getnchannels() == 1
        return played.getnframes() / played.getframerate(), played.getsampwidth()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", recordings_dir=tmp_path / "recordings")


@pytest.fixture
async def client(database: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    with database.session() as session:
        token, _ = accounts.create_token(session, "supervisor", name="audio-test", now=T0)
    app = create_app(settings, database, zone=ZoneInfo("UTC"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://dashboard.test",
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        yield http


def add_call(db: Database, events: list[tuple[str, dict[str, Any]]], **fields: Any) -> int:
    fields.setdefault("caller_number", "+74957770001")
    fields.setdefault("linkedid", uuid.uuid4().hex)
    fields.setdefault("started_at", T0)
    with db.session() as session:
        call = Call(**fields)
        session.add(call)
        session.flush()
        for n, (kind, data) in enumerate(events):
            session.add(
                CallEvent(
                    call_id=call.id,
                    at=T0 + timedelta(seconds=n),
                    kind=kind,
                    key=f"{kind}:{n}",
                    data=data,
                )
            )
        return call.id


async def test_a_gsm_recording_plays_as_pcm_wav_with_ranges_and_is_converted_once(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    relative = "calls/2026-11-23/1700000000.1.gsm"
    write_gsm(settings.recordings_dir / relative, 3.0)
    call_id = add_call(database, [("recording", {"file": relative, "queue": "heating"})])

    response = await client.get(f"/calls/{call_id}/audio/recording")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    seconds, width = wav_seconds(response.content)
    assert width == 2 and abs(seconds - 3.0) < 0.1

    cached = list(audio.audio_cache_dir(settings).glob("*.wav"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    # Seeking: the browser asks for a byte range and gets just that.
    part = await client.get(f"/calls/{call_id}/audio/recording", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.content == response.content[:100]
    # Served from the cache: the same file, not rewritten.
    assert list(audio.audio_cache_dir(settings).glob("*.wav")) == cached
    assert cached[0].stat().st_mtime_ns == stamp

    # The source replaced (same path, new content): converted again.
    write_gsm(settings.recordings_dir / relative, 1.0)
    os.utime(settings.recordings_dir / relative, ns=(stamp + 10**9, stamp + 10**9))
    again = await client.get(f"/calls/{call_id}/audio/recording")
    assert abs(wav_seconds(again.content)[0] - 1.0) < 0.1
    assert len(list(audio.audio_cache_dir(settings).glob("*.wav"))) == 2


async def test_voicemail_left_by_the_dialplan_is_found_by_its_channel_and_time(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    inbox = settings.recordings_dir / audio.VOICEMAIL_INBOX
    # Another caller's message on the same channel name before an Asterisk restart: not ours.
    write_wav(inbox / "msg0000.wav", 1.0)
    (inbox / "msg0000.txt").write_text(
        f"[message]\ncallerchan=PJSIP/pstn-00000007\norigtime={int(T0.timestamp()) - 86400}\n"
    )
    write_wav(inbox / "msg0001.wav", 2.0)
    (inbox / "msg0001.txt").write_text(
        ";\n; Message Information file\n;\n[message]\norigmailbox=hotline\n"
        f"callerchan=PJSIP/pstn-00000007\norigtime={int(T0.timestamp()) + 40}\nduration=2\n"
    )
    for name in ("msg0000.txt", "msg0001.txt"):
        origtime = int(audio.parse_message_info((inbox / name).read_text())["origtime"])
        os.utime(inbox / name, (origtime + 2, origtime + 2))
    call_id = add_call(
        database,
        [("voicemail_offered", {"mailbox": "hotline@hotline"}), ("voicemail", {})],
        channel="PJSIP/pstn-00000007",
        ended_at=T0 + timedelta(seconds=60),
        outcome="voicemail",
    )

    response = await client.get(f"/calls/{call_id}/audio/voicemail")
    assert response.status_code == 200, response.text
    assert abs(wav_seconds(response.content)[0] - 2.0) < 0.1

    page = await client.get(f"/calls/{call_id}", params={"lang": "en"})
    assert f'src="/calls/{call_id}/audio/voicemail"' in page.text
    assert "Voicemail" in page.text


async def test_paths_outside_the_recordings_folder_are_refused(
    client: httpx.AsyncClient, database: Database, settings: Settings, tmp_path: Path
) -> None:
    secret = write_wav(tmp_path / "outside" / "secret.wav", 1.0)
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    link = settings.recordings_dir / "utterances" / "link.wav"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    attempts = [
        add_call(database, [("recording", {"file": "../outside/secret.wav"})]),
        add_call(database, [("recording", {"file": str(secret)})]),
        add_call(database, [("voicemail", {"file": "voicemail/../../outside/secret.wav"})]),
        add_call(database, [], utterance_path=str(link)),
        add_call(database, [], utterance_path=str(settings.recordings_dir / ".." / "outside")),
    ]
    for call_id in attempts:
        for kind in audio.KINDS:
            response = await client.get(f"/calls/{call_id}/audio/{kind}")
            assert response.status_code == 404, (call_id, kind, response.text)
    assert not audio.audio_cache_dir(settings).exists(), "nothing outside was ever converted"
    page = await client.get(f"/calls/{attempts[0]}", params={"lang": "en"})
    assert "The file is missing on the server." in page.text
    assert "<audio" not in page.text


async def test_missing_file_unknown_kind_and_unknown_call_are_404(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    call_id = add_call(database, [("recording", {"file": "calls/2026-11-23/gone.wav"})])
    assert (await client.get(f"/calls/{call_id}/audio/recording")).status_code == 404
    assert (await client.get(f"/calls/{call_id}/audio/voicemail")).status_code == 404
    assert (await client.get(f"/calls/{call_id}/audio/passwd")).status_code == 404
    assert (await client.get("/calls/999999/audio/recording")).status_code == 404
    page = await client.get(f"/calls/{call_id}", params={"lang": "en"})
    assert page.status_code == 200
    assert 'id="audio-recording-missing"' in page.text


async def test_a_file_ffmpeg_cannot_read_is_a_clear_error(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    bad = settings.recordings_dir / "calls" / "2026-11-23" / "broken.wav"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"RIFF but not really a wave file")
    call_id = add_call(database, [("recording", {"file": "calls/2026-11-23/broken.wav"})])
    response = await client.get(f"/calls/{call_id}/audio/recording")
    assert response.status_code == 422
    assert "could not be converted" in response.text
