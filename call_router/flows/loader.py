"""Loading `ivr_flows/`: one YAML file per flow, plus prompts.yaml and calendar.yaml.

Every problem is reported as file + key path + what is wrong, so a supervisor can fix it
without reading Python. The server keeps the last good version of each flow: a broken edit
never takes a working menu off the line.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from call_router.flows.calendar_schema import CalendarDoc
from call_router.flows.conditions import (
    ALWAYS_OPEN,
    BusinessCalendar,
    CalendarError,
    build_calendar,
)
from call_router.flows.schema import (
    INPUT_TYPES,
    NODE_TYPES,
    Flow,
    FlowJumpNode,
    RouteNode,
    VoicemailNode,
    node_prompts,
    node_targets,
)

if TYPE_CHECKING:
    from call_router.flows.tenant_menus import TenantMenu

PROMPTS_FILE = "prompts.yaml"
CALENDAR_FILE = "calendar.yaml"
SPECIAL_FILES = (PROMPTS_FILE, CALENDAR_FILE)
FLOW_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")
# Any of these is a prompt Asterisk can play (a studio recording may come in any of them).
SOUND_SUFFIXES = (".wav", ".WAV", ".sln", ".sln16", ".gsm", ".ulaw", ".alaw", ".g722", ".mp3")
MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class FlowError:
    file: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '(top)'}: {self.problem}"


@dataclass(frozen=True)
class PromptCatalogue:
    """Voices per language and every prompt text (shared and from the flows)."""

    voices: dict[str, str]
    texts: dict[str, dict[str, str]]  # name → language → text
    origin: dict[str, str]  # name → file that defines it


@dataclass
class FlowSet:
    flows: dict[str, Flow] = field(default_factory=dict)
    calendar: BusinessCalendar = ALWAYS_OPEN
    prompts: PromptCatalogue = field(default_factory=lambda: PromptCatalogue({}, {}, {}))
    errors: list[FlowError] = field(default_factory=list)
    # Files that failed, by name: the registry keeps their last good flow.
    broken: set[str] = field(default_factory=set)
    # Tenants' own menus by slug (ivr_flows/tenants/<slug>/, call_router/flows/tenant_menus.py),
    # and the tenants whose files failed (the registry keeps their last good menu).
    tenants: dict[str, TenantMenu] = field(default_factory=dict)
    broken_tenants: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.errors


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


def check_graph(
    file: str,
    flow: Flow,
    *,
    queues: Iterable[str],
    catalogue: PromptCatalogue,
    recordings: Path | None = None,
    flow_names: Iterable[str] | None = None,
) -> list[FlowError]:
    """What the schema cannot see: references, reachability, queues, prompts, input-less loops."""
    errors: list[FlowError] = []
    nodes = flow.nodes
    known_queues = set(queues)
    reported: set[tuple[str, str]] = set()
    if flow.start not in nodes:
        errors.append(FlowError(file, "start", f"unknown node {flow.start!r}"))
    for node_id, node in nodes.items():
        for path, target in node_targets(node):
            if target not in nodes:
                errors.append(
                    FlowError(file, f"nodes.{node_id}.{path}", f"unknown node {target!r}")
                )
        if isinstance(node, FlowJumpNode) and flow_names is not None:
            names = set(flow_names)
            if node.flow not in names:
                errors.append(
                    FlowError(
                        file,
                        f"nodes.{node_id}.flow",
                        f"unknown flow {node.flow!r}; flows: {', '.join(sorted(names))}",
                    )
                )
        queue = getattr(node, "queue", None)
        if isinstance(node, RouteNode | VoicemailNode) and queue and queue not in known_queues:
            errors.append(
                FlowError(
                    file,
                    f"nodes.{node_id}.queue",
                    f"unknown queue {queue!r}; queues: {', '.join(sorted(known_queues))}",
                )
            )
        for path, prompt in node_prompts(node):
            fixed = getattr(node, "language", None)
            for lang in [fixed] if fixed else flow.languages:
                if (prompt, lang) in reported:
                    continue  # once per prompt: the first node that plays it
                problem = _prompt_problem(prompt, lang, catalogue, recordings)
                if problem:
                    reported.add((prompt, lang))
                    errors.append(FlowError(file, f"nodes.{node_id}.{path}", problem))
    for lang in flow.languages:
        if catalogue.voices and lang not in catalogue.voices:
            errors.append(FlowError(file, "languages", f"{lang!r} has no voice in {PROMPTS_FILE}"))
    if errors:
        return errors  # reachability on a graph with dangling edges only adds noise
    reachable = _reachable(flow)
    for node_id in nodes:
        if node_id not in reachable:
            errors.append(FlowError(file, f"nodes.{node_id}", "unreachable from `start`"))
    cycle = _loop_without_input(flow)
    if cycle:
        errors.append(
            FlowError(
                file,
                f"nodes.{cycle[0]}",
                "loop without caller input: " + " → ".join([*cycle, cycle[0]]),
            )
        )
    return errors


def _prompt_problem(
    name: str, lang: str, catalogue: PromptCatalogue, recordings: Path | None
) -> str | None:
    has_text = lang in catalogue.texts.get(name, {})
    if recordings is None:
        return None if has_text else f"prompt {name!r} has no {lang!r} text"
    if sound_files(recordings / "prompts" / lang, name):
        return None
    if has_text:
        return f"prompt {lang}/{name} is not built: run `hotline prompts build`"
    return f"prompt {name!r} has no {lang!r} text and no recording"


def _reachable(flow: Flow) -> set[str]:
    seen: set[str] = set()
    todo = [flow.start]
    while todo:
        node_id = todo.pop()
        if node_id in seen or node_id not in flow.nodes:
            continue
        seen.add(node_id)
        todo += [t for _, t in node_targets(flow.nodes[node_id])]
    return seen


def _loop_without_input(flow: Flow) -> list[str] | None:
    """A cycle through nodes that never wait for the caller would spin forever."""
    edges = {
        nid: [t for _, t in node_targets(n) if flow.nodes[t].type not in INPUT_TYPES]
        for nid, n in flow.nodes.items()
        if n.type not in INPUT_TYPES
    }
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(nid: str) -> list[str] | None:
        state[nid] = 1
        stack.append(nid)
        for nxt in edges.get(nid, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[nid] = 2
        return None

    for nid in edges:
        if nid not in state and (found := visit(nid)):
            return found
    return None


def flow_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.glob("*.yaml")
        if p.name not in SPECIAL_FILES and not p.name.startswith((".", "_"))
    )


def load_flows(
    folder: Path,
    *,
    queues: Iterable[str],
    timezone: str | None = None,
    recordings: Path | None = None,
) -> FlowSet:
    """Every flow in the folder that is valid, and every error found. Never raises on content."""
    errors: list[FlowError] = []
    result = FlowSet()
    if not folder.is_dir():
        result.errors.append(FlowError(str(folder), "", "flows folder does not exist"))
        return result
    catalogue = load_catalogue(folder, errors)
    calendar = load_calendar(folder, timezone, errors)
    parsed: dict[str, Flow] = {}
    queue_list = list(queues)
    for path in flow_files(folder):
        name = path.stem
        if not FLOW_NAME.fullmatch(name):
            errors.append(FlowError(path.name, "", "flow file names are lower_case_with_digits"))
            continue
        file_errors: list[FlowError] = []
        doc = read_yaml(path, file_errors)
        flow, problems = (None, []) if file_errors else parse_flow(path.name, doc)
        file_errors += problems
        if flow is not None:
            add_texts(
                path.name, "prompts", flow.prompts, catalogue.texts, catalogue.origin, file_errors
            )
        if file_errors or flow is None:
            errors += file_errors
            result.broken.add(name)
            continue
        parsed[name] = flow
    names = [p.stem for p in flow_files(folder)]
    for name, flow in parsed.items():
        problems = check_graph(
            f"{name}.yaml",
            flow,
            queues=queue_list,
            catalogue=catalogue,
            recordings=recordings,
            flow_names=names,
        )
        if problems:
            errors += problems
            result.broken.add(name)
        else:
            result.flows[name] = flow
    # Imported here: tenant_menus builds on this module's readers and checks.
    from call_router.flows.tenant_menus import CentreFiles, load_tenant_menus

    centre = CentreFiles(tuple(names), tuple(queue_list), catalogue, timezone, recordings)
    result.tenants, result.broken_tenants, tenant_errors = load_tenant_menus(folder, centre)
    result.calendar = calendar
    result.prompts = catalogue
    result.errors = errors + tenant_errors
    return result


def _fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """The YAML files' names, times and sizes: the folder's and each tenant folder's."""
    found = list(_yaml_stats(folder, ""))
    try:
        tenants = sorted(
            e.name for e in os.scandir(folder / "tenants") if e.is_dir() and e.name[:1] != "."
        )
    except OSError:
        tenants = []
    for slug in tenants:
        found.append((f"tenants/{slug}/", 0, 0))
        found += _yaml_stats(folder / "tenants" / slug, f"tenants/{slug}/")
    return tuple(found)


def _yaml_stats(folder: Path, prefix: str) -> list[tuple[str, int, int]]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [
        (prefix + e.name, e.stat().st_mtime_ns, e.stat().st_size)
        for e in entries
        if e.name.endswith(".yaml") and e.is_file()
    ]


class FlowRegistry:
    """The flows the server runs: reloaded on demand or when the folder changes.

    A flow whose file breaks keeps its last good version; a broken prompts.yaml or calendar
    keeps the whole last good set (those are shared by every flow).
    """

    def __init__(
        self,
        folder: Path,
        *,
        queues: Iterable[str],
        timezone: str | None = None,
        watch_interval: float = 1.0,
        log: Any = None,
        status_file: Path | None = None,
    ) -> None:
        self.folder = folder
        self.queues = tuple(queues)
        self.timezone = timezone
        self.watch_interval = watch_interval
        self.log = log
        # What is running, for `hotline flows reload` to report (written after every load).
        self.status_file = status_file
        self.generation = 0
        self.current = FlowSet()
        self.last_errors: list[FlowError] = []
        self._fingerprint: tuple[tuple[str, int, int], ...] = ()
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> list[FlowError]:
        """Load the folder; keep what was good. Returns the errors found (empty: all good)."""
        with self._lock:
            self._fingerprint = _fingerprint(self.folder)
            self._checked_at = time.monotonic()
            fresh = load_flows(self.folder, queues=self.queues, timezone=self.timezone)
            shared_broken = any(e.file in SPECIAL_FILES for e in fresh.errors)
            if shared_broken and self.current.flows:
                merged = self.current
            else:
                flows = dict(fresh.flows)
                for name in fresh.broken:
                    if name in self.current.flows:
                        flows[name] = self.current.flows[name]  # last good version
                menus = dict(fresh.tenants)
                for slug in fresh.broken_tenants:
                    if slug in self.current.tenants:
                        menus[slug] = self.current.tenants[slug]  # last good version
                merged = FlowSet(
                    flows=flows,
                    calendar=fresh.calendar,
                    prompts=fresh.prompts,
                    errors=[],
                    tenants=menus,
                )
            self.current = merged
            self.last_errors = fresh.errors
            self.generation += 1
            self._write_status(fresh.errors)
            if self.log is not None:
                if fresh.errors:
                    self.log.warning(
                        "flows_invalid",
                        errors=[str(e) for e in fresh.errors][:20],
                        running=sorted(merged.flows),
                    )
                else:
                    self.log.info("flows_loaded", flows=sorted(merged.flows))
            return fresh.errors

    def _write_status(self, errors: list[FlowError]) -> None:
        if self.status_file is None:
            return
        status = {
            "generation": self.generation,
            "pid": os.getpid(),
            "loaded_at": time.time(),
            "flows": sorted(self.current.flows),
            "errors": [str(e) for e in errors],
        }
        try:
            self.status_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.status_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(status, ensure_ascii=False, indent=1), encoding="utf-8")
            tmp.replace(self.status_file)
        except OSError as exc:
            if self.log is not None:
                self.log.warning("flows_status_unwritable", error=str(exc))

    def maybe_reload(self) -> None:
        """Pick up edits without a restart: a cheap stat of the folder at most once a second."""
        now = time.monotonic()
        if now - self._checked_at < self.watch_interval:
            return
        self._checked_at = now
        if _fingerprint(self.folder) != self._fingerprint:
            self.reload()

    def get(self, name: str) -> Flow | None:
        self.maybe_reload()
        return self.current.flows.get(name)

    @property
    def calendar(self) -> BusinessCalendar:
        return self.current.calendar

    def tenant(self, slug: str) -> TenantMenu | None:
        """A tenant's own menus (None: it overrides nothing). From memory, no I/O."""
        return self.current.tenants.get(slug) if slug else None
