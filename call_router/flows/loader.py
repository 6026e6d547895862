"""Loading `ivr_flows/`: one YAML file per flow, plus prompts.yaml and calendar.yaml.

Every problem is reported as file + key path + what is wrong, so a supervisor can fix it
without reading Python. The server keeps the last good version of each flow: a broken edit
never takes a working menu off the line. Here: a whole folder loaded (`load_flows`) and the
running server's registry; reading the files is flow_reader.py, the checks across a flow
flow_checks.py.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from call_router.flows.conditions import ALWAYS_OPEN, BusinessCalendar
from call_router.flows.flow_checks import check_graph

# The tenants' menus (tenant_menus.py, tenant_files.py) read these from here.
from call_router.flows.flow_reader import CALENDAR_FILE as CALENDAR_FILE
from call_router.flows.flow_reader import (
    FLOW_NAME,
    SPECIAL_FILES,
    FlowError,
    PromptCatalogue,
    add_texts,
    flow_files,
    load_calendar,
    load_catalogue,
    parse_flow,
    read_yaml,
)
from call_router.flows.flow_reader import PROMPTS_FILE as PROMPTS_FILE
from call_router.flows.flow_reader import load_calendar_file as load_calendar_file
from call_router.flows.flow_reader import sound_files as sound_files
from call_router.flows.schema import Flow

if TYPE_CHECKING:
    from call_router.flows.tenant_menus import TenantMenu


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
