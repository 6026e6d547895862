"""Keeping the gettext catalogues in step with the code: Babel extracts the text keys the
templates and code use (babel.cfg), writes them to `dashboard/locale/messages.pot`, merges that
template into every language's `messages.po`, and checks that each catalogue translates every
key, with no empty or fuzzy entry. A developer's tool (`hotline i18n extract|check`, the unit
tests), run from a checkout: the dashboard itself only reads the .po files."""

from __future__ import annotations

import contextlib
import io
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

from dashboard.translations import DOMAIN, FALLBACK, LOCALE_DIR, read_catalogue

ROOT = Path(__file__).resolve().parent.parent
BABEL_CONFIG = ROOT / "babel.cfg"
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
WIDTH = 100
# Header lines that change on every write; a file whose other lines are equal is left alone.
_DATE_HEADERS = (b'"POT-Creation-Date:', b'"PO-Revision-Date:')
_POT_HEADER = """\
# The Hotline dashboard's text keys, extracted by Babel (hotline i18n extract); each note (#.)
# is the English text. A new language starts from this file: README.md, "Translations"."""


@dataclass
class Usage:
    """Where each key is used: key → [(file relative to the checkout, line)]."""

    places: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


def extract(root: Path = ROOT) -> Usage:
    """Every key the templates and code use, by Babel's extractors (python, jinja2)."""
    with (root / BABEL_CONFIG.name).open() as config:
        method_map, options_map = parse_mapping_cfg(config, str(BABEL_CONFIG.name))
    usage = Usage()
    # Babel notes each f-string key on stderr; ours are the run-time keys i18n_keys.py lists.
    with contextlib.redirect_stderr(io.StringIO()):
        for filename, lineno, key, _comments, _context in extract_from_dir(
            root, method_map, options_map, keywords={}
        ):
            if isinstance(key, str):
                usage.places.setdefault(key, []).append((filename, lineno))
    return usage


def catalogue_paths(locale_dir: Path = LOCALE_DIR) -> dict[str, Path]:
    return {p.parent.parent.name: p for p in sorted(locale_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))}


def build_template(usage: Usage, source: Catalog) -> Catalog:
    """The .pot: every used key, with its places and the English text as the translators' note
    (the ids are symbolic, so the note is what a translator translates)."""
    template = Catalog(project="Hotline", domain=DOMAIN, fuzzy=False, header_comment=_POT_HEADER)
    for key in sorted(usage.places):
        english = source.get(key)
        note = [english.string] if english is not None and isinstance(english.string, str) else []
        template.add(key, locations=sorted(set(usage.places[key])), auto_comments=note)
    return template


def _render(catalogue: Catalog) -> bytes:
    out = io.BytesIO()
    write_po(
        out, catalogue, width=WIDTH, sort_output=True, include_lineno=False, ignore_obsolete=True
    )
    return out.getvalue()


def _without_dates(text: bytes) -> list[bytes]:
    return [line for line in text.splitlines() if not line.startswith(_DATE_HEADERS)]


def _write_if_changed(path: Path, catalogue: Catalog, *, template: bool) -> bool:
    """Writes `catalogue` unless only its dates would change; True if the file changed."""
    new = _render(catalogue)
    old = path.read_bytes() if path.exists() else b""
    if _without_dates(new) == _without_dates(old):
        return False
    now = datetime.now(UTC)
    if template:
        catalogue.creation_date = now
    else:
        catalogue.revision_date = now
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_render(catalogue))
    return True


def update(root: Path = ROOT, locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Extract, rewrite the .pot, merge it into every .po (new keys arrive untranslated, unused
    keys leave). The files changed. No fuzzy guessing: a key that looks like another ("inc.new"
    → "inc.new_field") rarely means the same words."""
    paths = catalogue_paths(locale_dir)
    catalogues = {lang: read_catalogue(path) for lang, path in paths.items()}
    template = build_template(extract(root), catalogues[FALLBACK])
    pot = locale_dir / TEMPLATE.name
    if pot.exists():
        with pot.open("rb") as old:
            template.creation_date = read_po(old).creation_date
    changed = [pot] if _write_if_changed(pot, template, template=True) else []
    for lang, catalogue in catalogues.items():
        catalogue.update(template, no_fuzzy_matching=True, update_creation_date=False)
        if lang == FALLBACK:  # the English text is the entry itself: no note repeating it
            for message in catalogue:
                message.auto_comments = []
        if _write_if_changed(paths[lang], catalogue, template=False):
            changed.append(paths[lang])
    return changed


def set_texts(key: str, texts: dict[str, str], locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Writes `key`'s text in the named catalogues (adding the entry, clearing a fuzzy mark):
    a new key's words without a .po editor. The files changed."""
    paths = catalogue_paths(locale_dir)
    unknown = sorted(set(texts) - set(paths))
    if unknown:
        raise ValueError(f"no catalogue for {', '.join(unknown)} in {locale_dir}")
    changed = []
    for lang, text in texts.items():
        catalogue = read_catalogue(paths[lang])
        message = catalogue.get(key)
        if message is None:
            catalogue.add(key, text)
        else:
            message.string = text
            message.flags.discard("fuzzy")
        if _write_if_changed(paths[lang], catalogue, template=False):
            changed.append(paths[lang])
    return changed


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _entry_problem(message: Message | None, english: Message | None) -> str | None:
    if message is None:
        return "is missing"
    if not message.string:
        return "has an empty translation"
    if message.fuzzy:
        return "is marked fuzzy: check it, then drop the mark"
    if (
        english is not None
        and isinstance(message.string, str)
        and isinstance(english.string, str)
        and _fields(message.string) != _fields(english.string)
    ):
        return "has other {fields} than English"
    return None


def problems(root: Path = ROOT, locale_dir: Path = LOCALE_DIR) -> list[str]:
    """What keeps the catalogues from matching the code; empty when all is well."""
    usage = extract(root)
    used = set(usage.places)
    found: list[str] = []
    pot = locale_dir / TEMPLATE.name
    with pot.open("rb") as template_file:
        in_template = {m.id for m in read_po(template_file) if isinstance(m.id, str) and m.id}
    for key in sorted(used - in_template):
        found.append(f"{pot.name}: {key!r} is used but not extracted (run hotline i18n extract)")
    for key in sorted(in_template - used):
        found.append(f"{pot.name}: {key!r} is no longer used (run hotline i18n extract)")
    paths = catalogue_paths(locale_dir)
    source = read_catalogue(paths[FALLBACK])
    for lang, path in paths.items():
        catalogue = source if lang == FALLBACK else read_catalogue(path)
        name = f"{lang}/{path.name}"
        for key in sorted(used):
            english = None if lang == FALLBACK else source.get(key)
            problem = _entry_problem(catalogue.get(key), english)
            if problem is not None:
                file, line = usage.places[key][0]
                found.append(f"{name}: {key!r} {problem} (used in {file}:{line})")
        for message in catalogue:
            if message.id and message.id not in used:
                found.append(f"{name}: {message.id!r} is no longer used (run hotline i18n extract)")
    return found
