"""Generate the labelled ASR corpus: espeak-ng speech at 8 kHz, several voices/speeds/pitches/noise.

    .venv/bin/python bench/asr/make_corpus.py [--out bench/results/asr-corpus] [--per-text 4]

Writes <out>/<n>.wav (8 kHz mono 16-bit, as a call carries) and <out>/manifest.jsonl with one
labelled line per file. The variant of each utterance is drawn from a seeded generator, so the
same command gives the same corpus. bench/results/ is git-ignored.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from pydub import AudioSegment
from pydub.generators import WhiteNoise

SAMPLE_RATE = 8000
LANGUAGE = "ko"
VOICES = ("ko", "ko+m3", "ko+f2", "ko+f4", "ko+klatt", "ko+m7")
SPEEDS = (130, 160, 190)
PITCHES = (35, 50, 70)
# Signal-to-noise ratios in dB; None is clean audio.
NOISE_SNR = (None, None, 25, 15)

# (text, intent or None, kind). Words, short sentences as residents say them, and things that
# are not a request at all (greetings, thanks, off-topic) which must not be routed.
TEXTS: tuple[tuple[str, str | None, str], ...] = (
    ("물", "water", "word"),
    ("수도", "water", "word"),
    ("온수", "water", "word"),
    ("물이 안 나와요", "water", "sentence"),
    ("온수가 안 나와요", "water", "sentence"),
    ("난방", "heating", "word"),
    ("보일러", "heating", "word"),
    ("난방이 안 돼요", "heating", "sentence"),
    ("보일러가 고장 났어요", "heating", "sentence"),
    ("전기", "electricity", "word"),
    ("정전", "electricity", "word"),
    ("전기가 나갔어요", "electricity", "sentence"),
    ("엘리베이터", "lift", "word"),
    ("승강기", "lift", "word"),
    ("엘리베이터가 고장 났어요", "lift", "sentence"),
    ("엘리베이터가 멈췄어요", "lift", "sentence"),
    ("상담원", "operator", "word"),
    ("상담원 연결해 주세요", "operator", "sentence"),
    ("가스 냄새가 나요", "gas", "sentence"),
    ("계량기", "meters", "word"),
    ("관리비", "billing", "word"),
    ("하수구가 막혔어요", "sewage", "sentence"),
    ("안녕하세요", None, "none"),
    ("여보세요", None, "none"),
    ("감사합니다", None, "none"),
    ("잠시만요", None, "none"),
    ("모르겠어요", None, "none"),
    ("오늘 날씨가 좋네요", None, "none"),
    ("제 이름은 김민수입니다", None, "none"),
    ("아니요 괜찮아요", None, "none"),
)


@dataclass(frozen=True)
class Utterance:
    file: str
    text: str
    intent: str | None
    kind: str
    voice: str
    speed: int
    pitch: int
    snr_db: int | None
    duration: float


def synthesise(text: str, voice: str, speed: int, pitch: int, workdir: Path) -> AudioSegment:
    raw = workdir / "espeak.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
        check=True,
        capture_output=True,
    )
    audio = AudioSegment.from_wav(str(raw))
    return audio.set_channels(1).set_frame_rate(SAMPLE_RATE).set_sample_width(2)


def with_noise(audio: AudioSegment, snr_db: int | None, seed: int) -> AudioSegment:
    if snr_db is None:
        return audio
    random.seed(seed)  # WhiteNoise draws from the global generator
    noise = WhiteNoise(sample_rate=SAMPLE_RATE).to_audio_segment(duration=len(audio))
    noise = noise.set_sample_width(2).apply_gain(audio.dBFS - snr_db - noise.dBFS)
    return audio.overlay(noise)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/asr-corpus"))
    parser.add_argument("--per-text", type=int, default=4, help="variants of each text")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.wav"):
        old.unlink()
    utterances: list[Utterance] = []
    # A little line silence around the speech, as a caller's turn has.
    pad = AudioSegment.silent(duration=300, frame_rate=SAMPLE_RATE)
    with tempfile.TemporaryDirectory() as tmp:
        for text, intent, kind in TEXTS:
            for _ in range(args.per_text):
                voice, speed, pitch = rng.choice(VOICES), rng.choice(SPEEDS), rng.choice(PITCHES)
                snr = rng.choice(NOISE_SNR)
                speech = synthesise(text, voice, speed, pitch, Path(tmp))
                audio = with_noise(pad + speech + pad, snr, rng.randrange(1 << 30))
                name = f"{len(utterances):04d}.wav"
                audio.export(str(args.out / name), format="wav")
                utterances.append(
                    Utterance(name, text, intent, kind, voice, speed, pitch, snr, len(audio) / 1000)
                )
    with (args.out / "manifest.jsonl").open("w", encoding="utf-8") as fh:
        for utterance in utterances:
            fh.write(json.dumps(asdict(utterance), ensure_ascii=False) + "\n")
    intents = {u.intent for u in utterances if u.intent}
    print(f"{len(utterances)} utterances, {len(intents)} intents, language {LANGUAGE} → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
