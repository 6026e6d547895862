"""`hotline speech ...`: speech recognition from the command line (models: cli_models.py).

`recognise` goes through `agi_scripts.speech.understand`, exactly the path a live call takes, so
what it prints is what a caller saying the same thing would get.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from call_router.settings import Settings, get_settings
from hotline.cli_support import fail

app = typer.Typer(help="Speech recognition (Vosk) and intents.", no_args_is_help=True)


def flow_intents(settings: Settings, flow: str) -> list[str]:
    """The intents a flow's speech questions accept (every `intents:` list found in it)."""
    path = settings.flows_dir / f"{flow}.yaml"
    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"cannot read flow {flow!r} ({path}): {exc}") from exc
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "intents" and isinstance(value, list | dict):
                    found.extend(str(v) for v in value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    if not found:
        raise typer.BadParameter(f"flow {flow!r} has no `intents` to recognise")
    return list(dict.fromkeys(found))


@app.callback()
def speech() -> None:
    """Speech recognition (Vosk) and intents."""


@app.command("recognise")
def recognise(
    files: Annotated[list[Path], typer.Argument(help="wav files (any rate/channels)")],
    lang: Annotated[str, typer.Option("--lang", help="language of the speech")] = "ru",
    flow: Annotated[
        str | None, typer.Option("--flow", help="limit to a flow's intents (ivr_flows/NAME.yaml)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per file")] = False,
) -> None:
    """Transcript, intent (or none) and confidence of each file."""
    from agi_scripts.speech import Recogniser, telephone_pcm, understand

    settings = get_settings()
    intents = flow_intents(settings, flow) if flow else None
    recogniser = Recogniser(settings, max_workers=1)
    if not recogniser.available(lang):
        raise fail(f"speech unavailable: {recogniser.error(lang)}", 2)
    failed = False
    try:
        for path in files:
            try:
                pcm = telephone_pcm(path)
            except Exception as exc:  # pydub/ffmpeg errors have no common base class
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                typer.secho(f"{path}: cannot read audio: {reason}", err=True, fg="red")
                failed = True
                continue
            understood = asyncio.run(understand(recogniser, pcm, language=lang, intents=intents))
            match = understood.match
            if as_json:
                typer.echo(
                    json.dumps(
                        {
                            "file": str(path),
                            "language": lang,
                            "transcript": understood.transcript,
                            "alternatives": understood.result.alternatives,
                            "free_transcript": understood.result.free_transcript,
                            "intent": match.intent,
                            "candidate": match.candidate,
                            "confidence": match.confidence,
                            "matched": match.matched,
                            "reason": match.reason,
                            "duration": round(understood.result.duration, 3),
                        },
                        ensure_ascii=False,
                    )
                )
            else:
                intent = match.intent or f"none ({match.reason})"
                typer.echo(
                    f"{path}: transcript={understood.transcript!r} intent={intent} "
                    f"confidence={match.confidence:.2f}"
                )
    finally:
        recogniser.close()
    if failed:
        raise typer.Exit(1)
