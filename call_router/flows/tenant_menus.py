"""A tenant's own menus: `ivr_flows/tenants/<slug>/` overrides the centre's files, file by file.

    ivr_flows/tenants/dom-service/calendar.yaml   its own hours and holidays (same format)
    ivr_flows/tenants/dom-service/prompts.yaml    `prompts:` texts of its own (any name, any
                                                  language; the rest are the centre's)
    ivr_flows/tenants/dom-service/hotline.yaml    its own version of a centre flow (a text in
                                                  its `prompts:` that differs from the
                                                  centre's is the tenant's own too)

What a tenant does not override is the centre's. Everything is read and checked when the flows
are (re)loaded, never per call: a call only looks the tenant's slug up in memory. A tenant's
prompts are built into `recordings/prompts/tenants/<slug>/<lang>/<name>.wav`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from call_router.flows.conditions import BusinessCalendar
from call_router.flows.flow_reader import NOT_BUILT
from call_router.flows.loader import (
    CALENDAR_FILE,
    PROMPTS_FILE,
    FlowError,
    PromptCatalogue,
    add_texts,
    check_graph,
    flow_files,
    load_calendar_file,
    parse_flow,
    read_yaml,
    sound_files,
)
from call_router.flows.schema import Flow

TENANTS_FOLDER = "tenants"
# The tenant's slug (call_router/tenants.py SLUG_RE): the folder's name.
TENANT_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


@dataclass(frozen=True)
class TenantMenu:
    """What one tenant overrides; None / empty: the centre's."""

    slug: str
    flows: dict[str, Flow] = field(default_factory=dict)
    calendar: BusinessCalendar | None = None
    # (prompt name, language) pairs the tenant has its own text (and sound file) for.
    prompts: frozenset[tuple[str, str]] = frozenset()


def tenant_prompt_path(slug: str, language: str, name: str) -> str:
    """Where a tenant's prompt lies under recordings/prompts/ (no extension)."""
    return f"{TENANTS_FOLDER}/{slug}/{language}/{name}"


def tenant_folders(folder: Path) -> list[Path]:
    root = folder / TENANTS_FOLDER
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def tenant_texts(
    folder: Path, errors: list[FlowError], label: str
) -> dict[str, dict[str, str]] | None:
    """The `prompts:` of a tenant's prompts.yaml (None: it has none)."""
    path = folder / PROMPTS_FILE
    if not path.is_file():
        return None
    doc = read_yaml(path, errors)
    if not isinstance(doc, dict):
        errors.append(FlowError(label, "", "expected a mapping with `prompts`"))
        return None
    for key in sorted(set(doc) - {"prompts"}):
        errors.append(FlowError(label, str(key), "unknown key (only `prompts`)"))
    texts: dict[str, dict[str, str]] = {}
    add_texts(label, "prompts", doc.get("prompts") or {}, texts, {}, errors)
    return texts


def own_texts(
    folder: Path, catalogue: PromptCatalogue, errors: list[FlowError]
) -> dict[str, dict[str, str]]:
    """The tenant's own prompt texts: its prompts.yaml, and what its flow files' `prompts:`
    say differently from the centre's `catalogue` (a copied flow keeps the centre's texts)."""
    prefix = f"{TENANTS_FOLDER}/{folder.name}"
    own = tenant_texts(folder, errors, f"{prefix}/{PROMPTS_FILE}") or {}
    for path in flow_files(folder):
        doc = read_yaml(path, [])  # the flow's own problems are reported where it is checked
        texts: dict[str, dict[str, str]] = {}
        if isinstance(doc, dict) and doc.get("prompts"):
            add_texts(f"{prefix}/{path.name}", "prompts", doc["prompts"], texts, {}, errors)
        for name, per_lang in texts.items():
            centre = catalogue.texts.get(name, {})
            for lang, text in per_lang.items():
                if centre.get(lang) != text:
                    own.setdefault(name, {})[lang] = text
    return own


@dataclass(frozen=True)
class CentreFiles:
    """What a tenant's files are checked against: the centre's flows, queues, texts."""

    flows: tuple[str, ...]
    queues: tuple[str, ...]
    catalogue: PromptCatalogue
    timezone: str | None
    recordings: Path | None = None  # given: the tenant's prompts must be built


def load_tenant_menu(folder: Path, centre: CentreFiles) -> tuple[TenantMenu, list[FlowError]]:
    """One tenant's folder, checked like the centre's files; errors name `tenants/<slug>/…`."""
    catalogue, recordings = centre.catalogue, centre.recordings
    slug = folder.name
    prefix = f"{TENANTS_FOLDER}/{slug}"
    errors: list[FlowError] = []
    if not TENANT_SLUG.fullmatch(slug):
        errors.append(FlowError(prefix, "", "folder name is not a tenant slug"))
        return TenantMenu(slug), errors
    calendar = None
    if (folder / CALENDAR_FILE).is_file():
        path = folder / CALENDAR_FILE
        calendar = load_calendar_file(path, centre.timezone, errors, label=prefix)
    own = own_texts(folder, catalogue, errors)
    # The tenant's flows see the centre's texts with its own on top.
    merged = PromptCatalogue(
        catalogue.voices,
        {**catalogue.texts, **{n: {**catalogue.texts.get(n, {}), **t} for n, t in own.items()}},
        dict(catalogue.origin),
    )
    names = list(centre.flows)
    flows: dict[str, Flow] = {}
    for path in flow_files(folder):
        label = f"{prefix}/{path.name}"
        if path.stem not in names:
            errors.append(
                FlowError(label, "", f"not a centre flow; a tenant overrides one of {names}")
            )
            continue
        file_errors: list[FlowError] = []
        doc = read_yaml(path, file_errors)
        flow, problems = (None, []) if file_errors else parse_flow(label, doc)
        file_errors += problems
        if flow is not None and not file_errors:
            file_errors += check_graph(
                label, flow, queues=centre.queues, catalogue=merged, flow_names=names
            )
        if flow is not None and not file_errors:
            flows[path.stem] = flow
        errors += file_errors
    prompts = frozenset((name, lang) for name, per_lang in own.items() for lang in per_lang)
    if recordings is not None:
        for name, lang in sorted(prompts):
            where = recordings / "prompts" / TENANTS_FOLDER / slug / lang
            if not sound_files(where, name):
                errors.append(
                    FlowError(
                        f"{prefix}/{PROMPTS_FILE}",
                        f"prompts.{name}",
                        f"prompt {lang}/{name} {NOT_BUILT}",
                    )
                )
    return TenantMenu(slug, flows, calendar, prompts), errors


def load_tenant_menus(
    folder: Path, centre: CentreFiles
) -> tuple[dict[str, TenantMenu], set[str], list[FlowError]]:
    """Every tenant folder: (good menus by slug, slugs with errors, the errors)."""
    menus: dict[str, TenantMenu] = {}
    broken: set[str] = set()
    errors: list[FlowError] = []
    for sub in tenant_folders(folder):
        menu, problems = load_tenant_menu(sub, centre)
        if problems:
            broken.add(sub.name)
            errors += problems
        else:
            menus[sub.name] = menu
    return menus, broken, errors
