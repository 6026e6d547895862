"""Score the speech menu on the bench corpora, side by side with the five-keyword baseline.

Every utterance is cut by the live call's end-of-speech rules (`utterance_audio`) and decoded
once through `Recogniser` with the live grammars (the filler grammar with n-best, the
keywords-only pass) and once with the baseline grammar: the five menu words, first keyword
heard wins. `decode()` keeps what the passes heard (a row per file); `outcome()` applies the
menu's decision (`speech.decide_understanding`, the same function live calls use) to a row, so
thresholds can be compared on the stored rows without decoding again.

Outcomes per utterance: routed (straight to a queue), confirmed (the caller was offered a guess
and, as the bench assumes, presses 1 only when it is right: the confirmation is by keypad),
or not routed; a caller who refuses the first guess is offered the runner-up once more.
Scores per corpus:
- right-intent: routed or confirmed to the labelled intent, or nothing routed for a non-request
  (of all utterances);
- routed: requests that reached a queue by speech, directly or after confirming (of requests);
- misrouted: sent straight to a wrong queue, or a non-request sent anywhere (of all);
- asked to confirm: callers asked "you said X?" (of all); asked twice: callers who refused
  the first guess and were offered the runner-up (of all).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agi_scripts.recognition_stream import KEYWORD_ALTERNATIVES, RecognitionResult, Word
from agi_scripts.speech import (
    Recogniser,
    decide_understanding,
    telephone_pcm,
    utterance_audio,
)
from call_router.intents import naive_keyword_intent

# The baseline: one keyword per core menu intent, nothing else for sounds to land on.
BASELINE_KEYWORDS = {"ko": ["물", "난방", "전기", "엘리베이터", "상담원"]}


def load_manifest(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def cache_key(recogniser: Recogniser, segment: bytes, language: str) -> str:
    """What a cached row depends on: the audio cut, every grammar, the decoder settings."""
    digest = hashlib.sha256(segment)
    settings = recogniser.settings
    grammars = [
        recogniser.grammar(language),
        recogniser.keyword_grammar(language),
        recogniser.menu_grammar(language),
        BASELINE_KEYWORDS[language],
        [settings.speech_alternatives, settings.speech_free_pass, KEYWORD_ALTERNATIVES],
    ]
    digest.update(json.dumps(grammars, ensure_ascii=False).encode())
    return digest.hexdigest()[:32]


async def decode(
    recogniser: Recogniser,
    folder: Path,
    items: Sequence[dict[str, Any]],
    language: str,
    cache: Path | None = None,
) -> list[dict[str, Any]]:
    """What the passes heard for each file: the rows `outcome()` decides on. With `cache` (a
    folder), a row decoded before from the same audio, grammars and settings is read back
    instead of decoded again (decision experiments then cost no decoding)."""
    rows = []
    for item in items:
        pcm = telephone_pcm(folder / item["file"])
        segment = utterance_audio(recogniser.settings, pcm)
        row = {k: item[k] for k in ("file", "corpus", "text", "intent", "kind", "condition")}
        row["label"] = row.pop("intent")
        if segment is None:
            row.update(heard=None, baseline_transcript="")
            rows.append(row)
            continue
        stored = cache / f"{cache_key(recogniser, segment, language)}.json" if cache else None
        if stored is not None and stored.exists():
            row.update(json.loads(stored.read_text(encoding="utf-8")))
            rows.append(row)
            continue
        result = await recogniser.recognise_pcm(segment, language=language)
        baseline = await recogniser.recognise_pcm(
            segment, language=language, grammar=BASELINE_KEYWORDS[language], keywords=(), menu=()
        )
        row["heard"] = {
            "transcript": result.transcript,
            "alternatives": result.alternatives,
            "weights": [round(w, 6) for w in result.weights],
            "keyword_words": [[w.word, round(w.conf, 4)] for w in result.keyword_words],
            "menu_words": [[w.word, round(w.conf, 4)] for w in result.menu_words],
            "speech_like": result.speech_like,
            "duration": result.duration,
            "keyword_alternatives": result.keyword_alternatives,
            "keyword_weights": [round(w, 6) for w in result.keyword_weights],
            "free_transcript": result.free_transcript,
        }
        row["baseline_transcript"] = baseline.transcript
        if stored is not None:
            stored.parent.mkdir(parents=True, exist_ok=True)
            heard = {"heard": row["heard"], "baseline_transcript": row["baseline_transcript"]}
            stored.write_text(json.dumps(heard, ensure_ascii=False), encoding="utf-8")
        rows.append(row)
    return rows


def as_result(heard: dict[str, Any]) -> RecognitionResult:
    return RecognitionResult(
        transcript=heard["transcript"],
        words=[],
        alternatives=list(heard["alternatives"]),
        weights=list(heard["weights"]),
        grammar_transcript=heard["transcript"],
        free_transcript=None,
        duration=heard["duration"],
        speech_like=heard["speech_like"],
        keyword_words=[Word(w, c, 0.0, 0.0) for w, c in heard["keyword_words"]],
        menu_words=[Word(w, c, 0.0, 0.0) for w, c in heard["menu_words"]],
        keyword_pass=True,
        menu_pass=True,
        keyword_alternatives=list(heard.get("keyword_alternatives", [])),
        keyword_weights=list(heard.get("keyword_weights", [])),
    )


def outcome(recogniser: Recogniser, row: dict[str, Any], language: str, **rules: Any) -> dict:
    """Ours and the baseline's decision for one row."""
    book = recogniser.phrasebook(language)
    base = naive_keyword_intent(row["baseline_transcript"], book)
    if row["heard"] is None:
        return {
            "routed": None,
            "offered": None,
            "offered_second": None,
            "reason": "no_speech",
            "baseline": base,
        }
    match = decide_understanding(
        as_result(row["heard"]),
        phrasebook=book,
        threshold=recogniser.settings.speech_confidence_threshold,
        **rules,
    )
    doubtful = match.intent is None and match.reason == "confirm"
    offered = match.candidate if doubtful else None
    second = match.runner_up if doubtful else None
    return {
        "routed": match.intent,
        "offered": offered,
        "offered_second": second,
        "reason": match.reason,
        "baseline": base,
    }


def score(rows: Sequence[dict[str, Any]], outcomes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Ours vs the baseline on one corpus, as the issue counts them (see the module doc)."""
    total = len(rows)
    requests = sum(1 for r in rows if r["label"])
    ours = {"right": 0, "routed": 0, "misrouted": 0, "asked": 0, "asked_twice": 0}
    ours["confirmed_right"] = 0
    naive = {"right": 0, "routed": 0, "misrouted": 0}
    for row, out in zip(rows, outcomes, strict=True):
        label = row["label"]
        final = out["routed"] or next(
            (o for o in (out["offered"], out["offered_second"]) if o is not None and o == label),
            None,
        )
        ours["asked"] += out["offered"] is not None
        refused = out["offered"] is not None and out["offered"] != label
        ours["asked_twice"] += refused and out["offered_second"] is not None
        ours["confirmed_right"] += out["routed"] is None and final is not None
        ours["right"] += final == label
        ours["routed"] += bool(label) and final is not None
        ours["misrouted"] += out["routed"] is not None and out["routed"] != label
        base = out["baseline"]
        naive["right"] += base == label
        naive["routed"] += bool(label) and base is not None
        naive["misrouted"] += base is not None and base != label

    def pct(n: int, of: int) -> float | None:
        return round(100 * n / of, 1) if of else None

    def summary(counts: dict[str, int], asked: bool) -> dict[str, Any]:
        out = {
            "right_pct": pct(counts["right"], total),
            "routed_pct": pct(counts["routed"], requests),
            "misrouted": counts["misrouted"],
            "misrouted_pct": pct(counts["misrouted"], total),
        }
        if asked:
            out["asked_to_confirm_pct"] = pct(counts["asked"], total)
            out["asked_to_confirm"] = counts["asked"]
            out["asked_twice_pct"] = pct(counts["asked_twice"], total)
            out["asked_twice"] = counts["asked_twice"]
        return out

    return {
        "utterances": total,
        "requests": requests,
        "ours": summary(ours, True),
        "baseline": summary(naive, False),
    }


def targets(result: dict[str, Any]) -> dict[str, bool | None]:
    """The issue's speech targets on one corpus."""
    ours, base = result["ours"], result["baseline"]
    return {
        "right_not_below_baseline": ours["right_pct"] >= base["right_pct"],
        "misroutes_at_most_third": 3 * ours["misrouted"] <= base["misrouted"],
        "routed_75": None if ours["routed_pct"] is None else ours["routed_pct"] >= 75.0,
    }
