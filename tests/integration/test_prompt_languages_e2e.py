"""Every prompt on the caller's path in the caller's language, on the real Asterisk (issue 16).

- The prompt files the running hotline has: every prompt any path of the flows plays (in ru and
  en, tests/unit/test_prompt_languages.py walks them), and every prompt the dialplan and
  queues.conf play, exists in recordings/prompts/<lang>/ and, where we generated it, was spoken
  from that language's text with that language's voice.
- Asterisk's own sounds the callers hear (queue position and hold time, the voicemail greeting,
  digits for numbers and times, the dialplan's Playback of stock sounds) exist in both
  languages: a missing Russian file would be played in English without a word of warning.
- Through calls: an English and a Russian caller wait in the same queue at the same time; each
  hears the "press 1 to be called back" offer of their own language. The two offers are
  replaced by tones for the test (1250 Hz en, 1750 Hz ru), so what each phone recorded tells
  which file Asterisk played. Before the fix both heard the Russian one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from call_router.flows.language_walk import walk
from call_router.flows.loader import FlowRegistry
from call_router.flows.prompts import MANIFEST_FILE, PromptText, prompt_catalogue
from call_router.settings import QUEUES, Settings
from hotline.sipua.softphone import Softphone
from tests.audio import write_tone
from tests.conftest import add_operator, environment, run_hotline, wait_for
from tests.integration.test_agents_e2e import agents
from tests.integration.test_call_control_e2e import waiting

pytestmark = pytest.mark.asterisk

LANGUAGES = ("ru", "en")
# Prompts the dialplan (extensions.conf.j2) and queues.conf (the periodic offer) play.
DIALPLAN_PROMPTS = ("callback_offer", "callback_confirmed", "queue_callback_offer")
# Asterisk's own sounds on a caller's path: app_queue's position and hold-time announcements
# (announce-position, announce-holdtime), VoiceMail's greeting (option u), the virtual-hold
# refusal for a hidden number, and digits (positions, meter read-back, SAY DATETIME).
STOCK_SOUNDS = (
    "queue-youarenext",
    "queue-thereare",
    "queue-callswaiting",
    "queue-holdtime",
    "queue-minutes",
    "queue-seconds",
    "queue-thankyou",
    "queue-less-than",
    "vm-theperson",
    "vm-isunavail",
    "vm-intro",
    "beep",
    "unidentified-no-callback",
    *(f"digits/{n}" for n in range(10)),
)
SOUND_SUFFIXES = (".gsm", ".wav", ".ulaw", ".alaw", ".sln", ".g722")
TONES = {"en": 1250.0, "ru": 1750.0}


def _inside(root: Path, path: str, depth: int = 0) -> Path:
    """`path` as a process chrooted to `root` sees it (absolute symlinks stay in the root)."""
    assert depth < 20, f"symlink loop at {path}"
    current = root
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        candidate = current / part
        if candidate.is_symlink():
            target = os.readlink(candidate)
            rest = "/".join(parts[i + 1 :])
            base = target if target.startswith("/") else f"{_relative(root, current)}/{target}"
            return _inside(root, f"{base}/{rest}", depth + 1)
        current = candidate
    return current


def _relative(root: Path, folder: Path) -> str:
    return "/" + str(folder.relative_to(root)) if folder != root else ""


def _sounds_dir(stack: Settings) -> tuple[Path, str]:
    root = stack.sandbox_root
    if (root / "usr/share/asterisk/sounds").exists():
        return root, "/usr/share/asterisk/sounds"
    return Path("/"), "/usr/share/asterisk/sounds"


def has_stock_sound(stack: Settings, language: str, name: str) -> bool:
    """Asterisk's own sound `name` ("digits/5") is in `language`'s folder: without it Asterisk
    plays the English one, and its log still says it played `name` in `language`."""
    root, sounds = _sounds_dir(stack)
    folder = _inside(root, f"{sounds}/{language}")
    return any((folder / f"{name}{suffix}").is_file() for suffix in SOUND_SUFFIXES)


def test_asterisks_own_sounds_exist_in_both_languages(stack: Settings) -> None:
    missing = [
        f"{language}/{name}"
        for language in LANGUAGES
        for name in STOCK_SOUNDS
        if not has_stock_sound(stack, language, name)
    ]
    assert missing == []


def test_every_prompt_on_every_path_is_built_in_its_language(stack: Settings) -> None:
    registry = FlowRegistry(stack.flows_dir, queues=QUEUES)
    assert registry.last_errors == []
    catalogue = prompt_catalogue(stack.flows_dir)
    played = {
        (p.language, p.prompt)
        for name, flow in registry.current.flows.items()
        for language in flow.languages
        for p in walk(registry.current.flows, name, language)
    }
    played |= {(language, name) for name in DIALPLAN_PROMPTS for language in LANGUAGES}
    prompts = stack.recordings_dir / "prompts"
    manifest = json.loads((prompts / MANIFEST_FILE).read_text(encoding="utf-8"))
    problems = []
    for language, name in sorted(played):
        files = [p for p in (prompts / language).glob(f"{name}.*") if p.suffix in SOUND_SUFFIXES]
        if not files:
            problems.append(f"{language}/{name}: no file")
            continue
        generated = manifest.get(f"{language}/{name}")
        if generated is None:
            continue  # a studio recording: a person put it in its language's folder
        text = PromptText(
            language, name, catalogue.voices[language], catalogue.texts[name][language]
        )
        if generated["text_sha256"] != text.digest:
            problems.append(f"{language}/{name}: not spoken from its {language!r} text")
    assert problems == []


# --- through calls: who hears which offer while waiting ------------------------------------------


OFFER_SECONDS = 15


def _queues_reloaded() -> None:
    run_hotline("asterisk", "render")
    run_hotline("asterisk", "cli", "queue reload parameters")


@pytest.fixture
def tone_offers(stack: Settings, tmp_path: Path) -> Iterator[None]:
    """The waiting-offer prompt of each language replaced by its tone, restored afterwards
    (and the queues' settings too: the test shortens the offer's interval)."""
    saved = tmp_path / "saved"
    saved.mkdir()
    prompts = stack.recordings_dir / "prompts"
    for language, frequency in TONES.items():
        original = prompts / language / "queue_callback_offer.wav"
        shutil.copy2(original, saved / f"{language}.wav")
        write_tone(original, 3.0, frequency, amplitude=0.5 * 32767)
    try:
        yield
    finally:
        _queues_reloaded()
        for language in TONES:
            shutil.copy2(saved / f"{language}.wav", prompts / language / "queue_callback_offer.wav")


def _pcm(recording: Path) -> tuple[int, list[int]]:
    """(rate, mono samples) of a 16-bit wav, also one still being written (its header's sizes
    are not filled in until the phone stops)."""
    data = recording.read_bytes() if recording.exists() else b""
    rate, channels, offset = 8000, 1, 12
    while offset + 8 <= len(data):
        kind, size = (
            data[offset : offset + 4],
            struct.unpack("<I", data[offset + 4 : offset + 8])[0],
        )
        body = offset + 8
        if kind == b"fmt ":
            channels, rate = struct.unpack("<HI", data[body + 2 : body + 8])
        elif kind == b"data":
            raw = data[body:]
            raw = raw[: len(raw) // 2 * 2]
            return rate, list(struct.unpack(f"<{len(raw) // 2}h", raw))[::channels]
        offset = body + size + (size & 1)
    return rate, []


def tone_seconds(recording: Path, frequency: float, last: float | None = None) -> float:
    """Seconds of `recording` (of its `last` seconds) that are (almost) a pure tone of
    `frequency` (Goertzel over 100 ms frames)."""
    rate, samples = _pcm(recording)
    if last is not None:
        samples = samples[-int(rate * last) :]
    frame = rate // 10  # 100 ms
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    found = 0
    for start in range(0, len(samples) - frame, frame):
        chunk = samples[start : start + frame]
        energy = sum(s * s for s in chunk)
        if energy < frame * 100**2:
            continue  # silence
        s1 = s2 = 0.0
        for sample in chunk:
            s1, s2 = sample + coefficient * s1 - s2, s1
        power = s1 * s1 + s2 * s2 - coefficient * s1 * s2
        if power / (energy * frame / 2) > 0.6:
            found += 1
    return found / 10


def test_each_caller_waiting_hears_the_callback_offer_in_their_language(
    stack: Settings, api: httpx.Client, tone_offers: None, tmp_path: Path
) -> None:
    heating = add_operator("Gena Heating", "heating")
    agents("pause", heating["sip_login"], "--reason", "training")  # callers wait, nobody rings
    english = add_operator("English Resident", "plumbing")
    russian = add_operator("Russian Resident", "plumbing")
    for resident in (english, russian):
        agents("logout", resident["sip_login"])  # residents' phones: in no queue
    # The offer every OFFER_SECONDS (a specialist queue overflows after the test stack's 60 s,
    # the default interval): after `operators add`, which renders the queues again.
    with environment({"HOTLINE_CALLBACK_OFFER_SECONDS": str(OFFER_SECONDS)}):
        _queues_reloaded()
    heard = {lang: tmp_path / f"{lang}.wav" for lang in LANGUAGES}
    with (
        Softphone(stack, heating["sip_login"], heating["sip_password"]),
        Softphone(
            stack, english["sip_login"], english["sip_password"], record_to=heard["en"]
        ) as en_phone,
        Softphone(
            stack, russian["sip_login"], russian["sip_password"], record_to=heard["ru"]
        ) as ru_phone,
    ):
        for phone in (en_phone, ru_phone):
            phone._send({"command": "dial", "params": stack.hotline_number})
        for phone in (en_phone, ru_phone):
            assert phone.wait_for_event("CALL_ESTABLISHED", timeout=20), phone.log[-2000:]
        time.sleep(1.0)  # the greeting is playing
        en_phone._send({"command": "sndcode", "params": "9"})  # English, please
        time.sleep(3.0)  # the English menu is playing
        for phone in (en_phone, ru_phone):
            phone._send({"command": "sndcode", "params": "3"})  # heating
        for resident in (english, russian):
            wait_for(waiting(api, resident["sip_login"], "heating"), timeout=40, what="waiting")
        # The first offer (a 3 s tone) OFFER_SECONDS after joining.
        recordings = {"en": en_phone.recording, "ru": ru_phone.recording}

        wait_for(
            lambda: all(
                tone_seconds(recordings[lang], TONES[lang], last=12) >= 1.5
                or tone_seconds(recordings[lang], TONES[other], last=12) >= 1.5
                for lang, other in (("en", "ru"), ("ru", "en"))
            ),
            timeout=OFFER_SECONDS + 30,
            interval=3.0,
            what="each caller hearing an offer",
        )
        for phone in (en_phone, ru_phone):
            phone.hangup()
    agents("logout", heating["sip_login"])
    assert tone_seconds(heard["en"], TONES["en"]) >= 1.5
    assert tone_seconds(heard["en"], TONES["ru"]) == 0
    assert tone_seconds(heard["ru"], TONES["ru"]) >= 1.5
    assert tone_seconds(heard["ru"], TONES["en"]) == 0
