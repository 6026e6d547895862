"""Reading `ivr_flows/`'s files: the YAML of a flow (size and syntax checked), the prompt
catalogue (prompts.yaml), the business calendar (calendar.yaml), and schema errors put in
words a supervisor can act on (file + key path + what is wrong)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from call_router.flows.calendar_schema import CalendarDoc
from call_router.flows.conditions import (
    ALWAYS_OPEN,
    BusinessCalendar,
    CalendarError,
    build_calendar,
)
from call_router.flows.schema import NODE_TYPES, Flow

PROMPTS_FILE = "prompts.yaml"
CALENDAR_FILE = "calendar.yaml"
SPECIAL_FILES = (PROMPTS_FILE, CALENDAR_FILE)
FLOW_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")
# Any of these is a prompt Asterisk can play (a studio recording may come in any of them).
SOUND_SUFFIXES = (".wav", ".WAV", ".sln", ".sln16", ".gsm", ".ulaw", ".alaw", ".g722", ".mp3")
MAX_FILE_BYTES = 1 << 20


# The end of a FlowError's problem for a prompt not built yet.
NOT_BUILT = "is not built: run `hotline prompts build`"


@dataclass(frozen=True)
class FlowError:
    file: str
    path: str
    problem: str

    @property
    def unbuilt_prompt(self) -> bool:
        """A prompt with a text but no sound file yet (`hotline prompts build` makes it)."""
        return self.problem.endswith(NOT_BUILT)

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '(top)'}: {self.problem}"


@dataclass(frozen=True)
class PromptCatalogue:
    """Voices per language and every prompt text (shared and from the flows)."""

    voices: dict[str, str]
    texts: dict[str, dict[str, str]]  # name → language → text
    origin: dict[str, str]  # name → file that defines it


def sound_files(folder: Path, name: str) -> list[Path]:
    return [folder / f"{name}{s}" for s in SOUND_SUFFIXES if (folder / f"{name}{s}").is_file()]


def read_yaml(path: Path, errors: list[FlowError]) -> Any:
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_FILE_BYTES:
            errors.append(FlowError(path.name, "", f"file larger than {MAX_FILE_BYTES} bytes"))
            return None
        return yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        errors.append(FlowError(path.name, "", "not UTF-8 text"))
    except yaml.MarkedYAMLError as exc:
        where = f"line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        errors.append(FlowError(path.name, where, f"YAML syntax: {exc.problem}"))
    except (OSError, yaml.YAMLError) as exc:
        errors.append(FlowError(path.name, "", f"cannot read: {exc}"))
    return None


def _validation_errors(file: str, exc: ValidationError) -> list[FlowError]:
    out = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"] if x != "[key]"]
        # pydantic puts the node type into the path of a tagged union: drop it for people.
        if len(loc) > 2 and loc[0] == "nodes" and loc[2] in NODE_TYPES:
            del loc[2]
        problem = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            problem = "unknown key"
        elif err["type"] == "union_tag_invalid":
            problem = f"unknown node type; use one of {', '.join(NODE_TYPES)}"
        elif err["type"] == "missing":
            problem = "required key missing"
        elif err["type"] == "union_tag_not_found":
            problem = "node has no `type`"
        out.append(FlowError(file, ".".join(loc), problem))
    return out


def load_catalogue(folder: Path, errors: list[FlowError]) -> PromptCatalogue:
    path = folder / PROMPTS_FILE
    if not path.is_file():
        errors.append(FlowError(PROMPTS_FILE, "", "missing (needs `languages` with a voice each)"))
        return PromptCatalogue({}, {}, {})
    doc = read_yaml(path, errors)
    if not isinstance(doc, dict):
        if doc is not None or not errors:
            errors.append(FlowError(PROMPTS_FILE, "", "expected a mapping at the top"))
        return PromptCatalogue({}, {}, {})
    voices: dict[str, str] = {}
    for lang, spec in (doc.get("languages") or {}).items():
        voice = spec.get("voice") if isinstance(spec, dict) else None
        if not isinstance(voice, str) or not voice:
            errors.append(FlowError(PROMPTS_FILE, f"languages.{lang}.voice", "missing"))
            continue
        voices[str(lang)] = voice
    texts: dict[str, dict[str, str]] = {}
    origin: dict[str, str] = {}
    add_texts(PROMPTS_FILE, "prompts", doc.get("prompts") or {}, texts, origin, errors)
    unknown = set(doc) - {"languages", "prompts"}
    for key in sorted(unknown):
        errors.append(FlowError(PROMPTS_FILE, str(key), "unknown key"))
    return PromptCatalogue(voices, texts, origin)


def add_texts(
    file: str,
    where: str,
    prompts: Any,
    texts: dict[str, dict[str, str]],
    origin: dict[str, str],
    errors: list[FlowError],
) -> None:
    if not isinstance(prompts, dict):
        errors.append(FlowError(file, where, "expected name: {language: text}"))
        return
    for name, per_lang in prompts.items():
        if not isinstance(per_lang, dict) or not all(
            isinstance(t, str) and t.strip() for t in per_lang.values()
        ):
            errors.append(FlowError(file, f"{where}.{name}", "expected {language: text}"))
            continue
        clean = {str(lang): " ".join(t.split()) for lang, t in per_lang.items()}
        if name in texts and texts[name] != clean:
            errors.append(
                FlowError(file, f"{where}.{name}", f"also defined, differently, in {origin[name]}")
            )
            continue
        texts[str(name)] = clean
        origin.setdefault(str(name), file)


def load_calendar(folder: Path, timezone: str | None, errors: list[FlowError]) -> BusinessCalendar:
    path = folder / CALENDAR_FILE
    if not path.is_file():
        return ALWAYS_OPEN
    return load_calendar_file(path, timezone, errors) or ALWAYS_OPEN


def load_calendar_file(
    path: Path, timezone: str | None, errors: list[FlowError], label: str = ""
) -> BusinessCalendar | None:
    """A calendar file (the centre's, or a tenant's under `label`/); None when it is broken."""
    file = f"{label}/{path.name}" if label else path.name
    doc = read_yaml(path, errors)
    if doc is None:
        return None
    try:
        return build_calendar(CalendarDoc.model_validate(doc), timezone)
    except ValidationError as exc:
        errors.extend(_validation_errors(file, exc))
    except CalendarError as exc:
        errors.append(FlowError(file, "", str(exc)))
    return None


def parse_flow(file: str, doc: Any) -> tuple[Flow | None, list[FlowError]]:
    if not isinstance(doc, dict):
        return None, [FlowError(file, "", "expected a mapping with `start` and `nodes`")]
    try:
        return Flow.model_validate(doc), []
    except ValidationError as exc:
        return None, _validation_errors(file, exc)


def flow_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.glob("*.yaml")
        if p.name not in SPECIAL_FILES and not p.name.startswith((".", "_"))
    )
