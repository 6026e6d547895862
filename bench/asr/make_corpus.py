"""Render the speech bench's corpora (bench/asr/corpora.py) as 8 kHz wav files with espeak-ng
and sox: voices, speeds, pitches, white/pink/brown/babble noise, the telephone line.

    .venv/bin/python bench/asr/make_corpus.py [--out bench/results/asr-corpora] [--only NAME...]

Writes <out>/<corpus>/<n>.wav (8 kHz mono 16-bit, as a call carries) and
<out>/<corpus>/manifest.jsonl with one labelled line per file. Every draw (voice, speed, pitch,
line condition, noise offset) comes from the corpus' own seeded generator, and sox runs in
repeatable mode, so the same command gives the same corpora. bench/results/ is git-ignored.
`--per-text N` renders N variants of each text instead of the corpus' own count (the CI test
renders a small sample this way).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpora import BABBLE_TEXTS, BY_NAME, CORPORA, CorpusSpec  # noqa: E402

SAMPLE_RATE = 8000
LANGUAGE = "ko"
# A little line silence around the speech, as a caller's turn has.
PAD_MS = 300


@dataclass(frozen=True)
class Utterance:
    file: str
    corpus: str
    text: str
    intent: str | None
    kind: str  # word | sentence | none
    voice: str
    speed: int
    pitch: int
    condition: str
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


def sox_noise(colour: str, duration_ms: int, offset_ms: int, workdir: Path) -> AudioSegment:
    """Pink or brown noise from sox (repeatable mode), starting `offset_ms` into its stream."""
    out = workdir / "noise.wav"
    seconds = (duration_ms + offset_ms) / 1000 + 0.1
    subprocess.run(
        ["sox", "-R", "-n", "-r", str(SAMPLE_RATE), "-b", "16", "-c", "1", str(out),
         "synth", f"{seconds:.3f}", f"{colour}noise"],
        check=True, capture_output=True,
    )  # fmt: skip
    noise = AudioSegment.from_wav(str(out))
    return noise[offset_ms : offset_ms + duration_ms]


def babble(duration_ms: int, rng: random.Random, workdir: Path) -> AudioSegment:
    """Other people talking in the room: espeak sentences in other voices, one after another."""
    talk = AudioSegment.silent(duration=0, frame_rate=SAMPLE_RATE)
    while len(talk) < duration_ms + 500:
        voice = rng.choice(("ko+m2", "ko+f1", "ko+m6", "ko+f5"))
        talk += synthesise(rng.choice(BABBLE_TEXTS), voice, rng.choice((150, 180)), 50, workdir)
    start = rng.randrange(0, max(1, len(talk) - duration_ms))
    return talk[start : start + duration_ms]


def add_noise(
    audio: AudioSegment, kind: str, snr_db: float, seed: int, workdir: Path
) -> AudioSegment:
    if kind == "white":
        random.seed(seed)  # WhiteNoise draws from the global generator
        noise = WhiteNoise(sample_rate=SAMPLE_RATE).to_audio_segment(duration=len(audio))
        noise = noise.set_sample_width(2)
    elif kind in ("pink", "brown"):
        noise = sox_noise(kind, len(audio), random.Random(seed).randrange(0, 5000), workdir)
    elif kind == "babble":
        noise = babble(len(audio), random.Random(seed), workdir)
    else:
        raise ValueError(f"unknown noise {kind!r}")
    noise = noise.set_channels(1).set_frame_rate(SAMPLE_RATE).set_sample_width(2)
    return audio.overlay(noise.apply_gain(audio.dBFS - snr_db - noise.dBFS))


def telephone(audio: AudioSegment, workdir: Path) -> AudioSegment:
    """The 300-3400 Hz telephone band, then G.711 mu-law at 8 kHz and back to 16-bit."""
    clean, law, back = workdir / "line-in.wav", workdir / "line.ul", workdir / "line-out.wav"
    audio.export(str(clean), format="wav")
    subprocess.run(
        ["sox", "-R", str(clean), "-t", "ul", "-r", str(SAMPLE_RATE), "-c", "1", str(law),
         "sinc", "300-3400"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["sox", "-R", "-t", "ul", "-r", str(SAMPLE_RATE), "-c", "1", str(law),
         "-b", "16", "-e", "signed-integer", str(back)],
        check=True, capture_output=True,
    )  # fmt: skip
    return AudioSegment.from_wav(str(back)).set_sample_width(2)


def apply_condition(audio: AudioSegment, condition: str, seed: int, workdir: Path) -> AudioSegment:
    phone = condition.startswith("phone")
    noise = condition.split("+", 1)[1] if condition.startswith("phone+") else condition
    if noise not in ("clean", "phone"):
        kind, snr = noise.split(":")
        audio = add_noise(audio, kind, float(snr), seed, workdir)
    if phone:
        audio = telephone(audio, workdir)
    return audio


def render(spec: CorpusSpec, out: Path, per_text: int | None = None) -> list[Utterance]:
    """One corpus into `out`; the draws are the corpus' own seeded sequence."""
    rng = random.Random(spec.seed)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.wav"):
        old.unlink()
    utterances: list[Utterance] = []
    pad = AudioSegment.silent(duration=PAD_MS, frame_rate=SAMPLE_RATE)
    with tempfile.TemporaryDirectory() as tmp:
        for text, intent in spec.texts:
            kind = "none" if intent is None else ("word" if " " not in text else "sentence")
            for _ in range(per_text or spec.per_text):
                voice, speed = rng.choice(spec.voices), rng.choice(spec.speeds)
                pitch, condition = rng.choice(spec.pitches), rng.choice(spec.conditions)
                speech = synthesise(text, voice, speed, pitch, Path(tmp))
                seed = rng.randrange(1 << 30)
                audio = apply_condition(pad + speech + pad, condition, seed, Path(tmp))
                name = f"{len(utterances):04d}.wav"
                audio.export(str(out / name), format="wav")
                utterances.append(
                    Utterance(
                        name,
                        spec.name,
                        text,
                        intent,
                        kind,
                        voice,
                        speed,
                        pitch,
                        condition,
                        round(len(audio) / 1000, 3),
                    )  # fmt: skip
                )
    with (out / "manifest.jsonl").open("w", encoding="utf-8") as fh:
        for utterance in utterances:
            fh.write(json.dumps(asdict(utterance), ensure_ascii=False) + "\n")
    return utterances


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/asr-corpora"))
    parser.add_argument("--only", nargs="*", choices=sorted(BY_NAME), help="these corpora only")
    parser.add_argument("--per-text", type=int, default=None, help="variants of each text")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        print(f"not installed: {', '.join(missing)}", file=sys.stderr)
        return 2
    for spec in CORPORA:
        if args.only and spec.name not in args.only:
            continue
        made = render(spec, args.out / spec.name, args.per_text)
        intents = {u.intent for u in made if u.intent}
        where = args.out / spec.name
        print(f"{spec.name}: {len(made)} utterances, {len(intents)} intents → {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
