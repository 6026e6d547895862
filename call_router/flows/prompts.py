"""Voice prompts: texts from the flows (ivr_flows/*.yaml `prompts:` and ivr_flows/prompts.yaml),
spoken by espeak-ng into 8 kHz telephone wavs.

Generated files are placeholders until a studio recording arrives. A manifest remembers which
files we generated (and from which text), so a studio recording dropped in under the same name
is never overwritten, and a generated prompt is redone when its text changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from call_router.flows.flow_reader import PROMPTS_FILE as PROMPTS_YAML
from call_router.flows.flow_reader import (
    SOUND_SUFFIXES,
    FlowError,
    PromptCatalogue,
    add_texts,
    flow_files,
    load_catalogue,
    parse_flow,
    read_yaml,
)
from call_router.flows.tenant_menus import own_texts, tenant_folders, tenant_prompt_path
from call_router.private_files import give_to_folder_owner
from call_router.settings import Settings

PROMPTS_FILE = PROMPTS_YAML
MANIFEST_FILE = ".generated.json"
# Telephone audio: Asterisk plays 8 kHz 16-bit mono wav without transcoding surprises.
SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2
CHANNELS = 1
# Bump when the synthesis settings change, so every generated prompt is redone.
SYNTH_VERSION = "espeak-ng/1"


class PromptError(RuntimeError):
    """Prompts cannot be built: bad prompts.yaml or no synthesiser."""


@dataclass(frozen=True)
class PromptText:
    language: str
    name: str
    voice: str
    text: str
    # A tenant's own text (ivr_flows/tenants/<slug>/prompts.yaml); "": the centre's.
    tenant: str = ""

    @property
    def key(self) -> str:
        """Its file under recordings/prompts/, without the extension."""
        if self.tenant:
            return tenant_prompt_path(self.tenant, self.language, self.name)
        return f"{self.language}/{self.name}"

    @property
    def digest(self) -> str:
        return _sha256(f"{SYNTH_VERSION}\0{self.voice}\0{self.text}".encode())


def prompts_root(settings: Settings) -> Path:
    return settings.recordings_dir / "prompts"


def prompt_catalogue(flows_dir: Path) -> PromptCatalogue:
    """Voices and every prompt text: prompts.yaml plus each flow file's `prompts:`.

    Raises PromptError when a text is unreadable or contradicts another; a flow that is
    otherwise broken still contributes its texts (`hotline flows check` reports the rest).
    """
    errors: list[FlowError] = []
    catalogue = load_catalogue(flows_dir, errors)
    for path in flow_files(flows_dir):
        doc = read_yaml(path, errors)
        if isinstance(doc, dict) and isinstance(doc.get("prompts"), dict):
            flow, _ = parse_flow(path.name, doc)
            texts = flow.prompts if flow is not None else doc["prompts"]
            add_texts(path.name, "prompts", texts, catalogue.texts, catalogue.origin, errors)
    if errors:
        raise PromptError("; ".join(str(e) for e in errors))
    return catalogue


def load_prompt_texts(flows_dir: Path) -> list[PromptText]:
    """Every (language, prompt) with its text, in the languages its file gives."""
    catalogue = prompt_catalogue(flows_dir)
    if not catalogue.voices:
        raise PromptError(f"{PROMPTS_FILE}: needs `languages` with a voice each")
    texts: list[PromptText] = []
    for name, per_lang in sorted(catalogue.texts.items()):
        # A prompt may exist in one language only ("For English, press 9"); whether a flow
        # plays it in a language it lacks is `hotline flows check`'s question.
        for language, text in per_lang.items():
            voice = catalogue.voices.get(language)
            if voice is None:
                raise PromptError(
                    f"{catalogue.origin[name]}: prompt {name!r} is in {language!r}, "
                    f"which has no voice in {PROMPTS_FILE}"
                )
            texts.append(PromptText(language, name, voice, text))
    return texts + _tenant_prompt_texts(flows_dir, catalogue)


def _tenant_prompt_texts(flows_dir: Path, catalogue: PromptCatalogue) -> list[PromptText]:
    """Every tenant's own texts (call_router/flows/tenant_menus.py), in its languages."""
    texts: list[PromptText] = []
    for folder in tenant_folders(flows_dir):
        errors: list[FlowError] = []
        own = own_texts(folder, catalogue, errors)
        if errors:
            raise PromptError("; ".join(str(e) for e in errors))
        for name, per_lang in sorted(own.items()):
            for language, text in per_lang.items():
                voice = catalogue.voices.get(language)
                if voice is None:
                    raise PromptError(
                        f"tenants/{folder.name}: {name!r} is in {language!r}, which has no voice"
                    )
                texts.append(PromptText(language, name, voice, text, folder.name))
    return texts


def missing_prompts(settings: Settings) -> list[str]:
    """`<lang>/<name>` of every prompt with no sound file at all (generated or studio)."""
    texts = load_prompt_texts(settings.flows_dir)
    root = prompts_root(settings)
    return [p.key for p in texts if not _sound_files((root / p.key).parent, p.name)]


def build_prompts(settings: Settings, force: bool = False) -> list[Path]:
    """Synthesise prompts that are missing or whose text changed; return the files written.

    force regenerates every prompt we generated before, but still never touches a studio file.
    """
    texts = load_prompt_texts(settings.flows_dir)
    root = prompts_root(settings)
    manifest = _read_manifest(root)
    written: list[Path] = []
    try:
        for prompt in texts:
            target = root / f"{prompt.key}.wav"
            if not _should_generate(prompt, target, manifest, force):
                continue
            synthesize(prompt.text, prompt.voice, target)
            manifest[prompt.key] = {
                "text_sha256": prompt.digest,
                "file_sha256": _sha256(target.read_bytes()),
            }
            written.append(target)
    finally:
        # Keep what was done even if a later prompt failed.
        _write_manifest(root, manifest)
    return written


def _should_generate(
    prompt: PromptText, target: Path, manifest: dict[str, dict[str, str]], force: bool
) -> bool:
    entry = manifest.get(prompt.key)
    others = [f for f in _sound_files(target.parent, prompt.name) if f != target]
    if others:
        return False  # a studio recording in another format: Asterisk may pick it, leave it
    if not target.exists():
        manifest.pop(prompt.key, None)
        return True
    if entry is None or entry.get("file_sha256") != _sha256(target.read_bytes()):
        # Not ours, or ours replaced by a person since: a studio recording.
        manifest.pop(prompt.key, None)
        return False
    return force or entry.get("text_sha256") != prompt.digest


def espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise PromptError(
            "espeak-ng is not installed: install it (Debian/Ubuntu package espeak-ng) "
            "or put studio recordings into recordings/prompts/<lang>/"
        )
    return binary


def synthesize(text: str, voice: str, target: Path) -> None:
    """Speak `text` into `target` as 8 kHz mono 16-bit PCM wav (written atomically)."""
    from pydub import AudioSegment  # heavy import, only needed when building

    binary = espeak_binary()
    _make_folders(target.parent)
    with tempfile.TemporaryDirectory(prefix="hotline-prompt-") as tmp:
        raw = Path(tmp) / "espeak.wav"
        # Text on stdin: nothing in it can be taken for an option.
        result = subprocess.run(
            [binary, "-v", voice, "-b", "1", "-w", str(raw), "--stdin"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0 or not raw.exists():
            err = result.stderr.decode("utf-8", errors="replace").strip()
            raise PromptError(f"espeak-ng failed for voice {voice!r}: {err}")
        audio = (
            AudioSegment.from_wav(raw)
            .set_channels(CHANNELS)
            .set_frame_rate(SAMPLE_RATE)
            .set_sample_width(SAMPLE_WIDTH)
        )
        partial = target.with_name(f".{target.name}.partial")
        audio.export(partial, format="wav")
        # Asterisk plays it: in sandbox mode its own user owns the prompts' folders.
        give_to_folder_owner(partial)
        partial.replace(target)


def _make_folders(folder: Path) -> None:
    """`folder` and any missing parent, each given to its own parent's owner (the sandbox
    Asterisk's user must be able to walk down to a tenant's prompts/tenants/<slug>/<lang>/)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        give_to_folder_owner(path)
    give_to_folder_owner(folder)


def _sound_files(folder: Path, name: str) -> list[Path]:
    return [
        folder / f"{name}{suffix}"
        for suffix in SOUND_SUFFIXES
        if (folder / f"{name}{suffix}").is_file()
    ]


def _read_manifest(root: Path) -> dict[str, dict[str, str]]:
    path = root / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        # A broken manifest makes every file look like a studio recording: safe, never destructive.
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def _write_manifest(root: Path, manifest: dict[str, dict[str, str]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    path = root / MANIFEST_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
