"""`hotline tenants menu`: a tenant's override files under ivr_flows/tenants/<slug>/ (what
call_router/flows/tenant_menus.py loads). Starting an override copies the centre's file, so the
tenant's menu is the centre's until someone edits it; removing one brings the centre's back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from call_router.flows.loader import CALENDAR_FILE, FLOW_NAME, PROMPTS_FILE, flow_files
from call_router.flows.tenant_menus import TENANT_SLUG, TENANTS_FOLDER, tenant_texts

PROMPTS_TEMPLATE = """\
# {slug}'s own prompt texts: a prompt of the centre's flows (ivr_flows/*.yaml, prompts.yaml)
# by name, in the languages it should differ in; the rest stay the centre's. A new name may
# be played by the tenant's own flows. Then `hotline prompts build` (into
# recordings/prompts/tenants/{slug}/<lang>/), `hotline flows check`.
#   greeting:
#     ru: "Здравствуйте! Вы позвонили в диспетчерскую ..."
prompts: {{}}
"""
# Without a centre calendar the centre is always open: so is the copy.
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK = ", ".join(f"{day}: 00:00-24:00" for day in _DAYS)
OPEN_CALENDAR = f"week: {{{_WEEK}}}\nholidays: []\n"


class MenuFileError(ValueError):
    """The change cannot be made; the message is safe to show."""


def folder_of(flows_dir: Path, slug: str) -> Path:
    if not TENANT_SLUG.fullmatch(slug):
        raise MenuFileError(f"{slug!r} is not a tenant slug")
    return flows_dir / TENANTS_FOLDER / slug


def change(flows_dir: Path, slug: str, what: str, *, remove: bool = False) -> Path:
    """Start (copy the centre's) or remove the override `what`: calendar, prompts or a flow."""
    folder = folder_of(flows_dir, slug)
    if what == "calendar":
        name = CALENDAR_FILE
        centre = flows_dir / CALENDAR_FILE
        start = centre.read_text("utf-8") if centre.is_file() else OPEN_CALENDAR
    elif what == "prompts":
        name, start = PROMPTS_FILE, PROMPTS_TEMPLATE.format(slug=slug)
    else:
        flows = [p.stem for p in flow_files(flows_dir)]
        if not FLOW_NAME.fullmatch(what) or what not in flows:
            raise MenuFileError(f"{what!r}: give calendar, prompts or a flow: {', '.join(flows)}")
        name, start = f"{what}.yaml", (flows_dir / f"{what}.yaml").read_text("utf-8")
    target = folder / name
    if remove:
        if not target.is_file():
            raise MenuFileError(f"{slug} has no own {what}")
        target.unlink()
        return target
    if target.exists():
        raise MenuFileError(f"{target} exists: edit it (or --remove it first)")
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{name}.partial")
    partial.write_text(start, encoding="utf-8")
    partial.replace(target)
    return target


def overrides(flows_dir: Path, slug: str) -> dict[str, Any]:
    """What the tenant overrides (by its files; `hotline flows check` says if they are good)."""
    folder = folder_of(flows_dir, slug)
    texts = tenant_texts(folder, [], f"{TENANTS_FOLDER}/{slug}/{PROMPTS_FILE}") or {}
    return {
        "tenant": slug,
        "folder": str(folder),
        "calendar": (folder / CALENDAR_FILE).is_file(),
        "prompts": sorted(texts),
        "flows": [p.stem for p in flow_files(folder)] if folder.is_dir() else [],
    }
