"""The UI texts: one gettext catalogue per language, read with Babel when the module loads, and
the lookup every page and route uses.

The catalogues are `dashboard/locale/<lang>/LC_MESSAGES/messages.po`; adding a language is adding
one. Message ids are symbolic keys ("nav.today") and the English catalogue holds the source text
(README, "Translations"). Placeholders are `str.format` fields (`{count}`). A key a language
lacks, or whose translation is empty or fuzzy, falls back to English, then to the key itself, so
a forgotten translation shows up as text, not a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "messages"
FALLBACK = "en"

Translate = Callable[..., str]


def catalogue_path(lang: str, locale_dir: Path = LOCALE_DIR) -> Path:
    return locale_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalogue(path: Path) -> Catalog:
    with path.open("rb") as po:
        return read_po(po, locale=path.parent.parent.name, domain=DOMAIN)


def usable_texts(catalogue: Catalog) -> dict[str, str]:
    """key → text for the entries a page may show: translated and not marked fuzzy."""
    return {
        message.id: message.string
        for message in catalogue
        if isinstance(message.id, str)
        and message.id
        and isinstance(message.string, str)
        and message.string
        and not message.fuzzy
    }


def load_messages(locale_dir: Path = LOCALE_DIR) -> dict[str, dict[str, str]]:
    """lang → key → text, one entry per catalogue found under `locale_dir`."""
    found = sorted(locale_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    return {path.parent.parent.name: usable_texts(read_catalogue(path)) for path in found}


MESSAGES: dict[str, dict[str, str]] = load_messages()
LANGUAGES: tuple[str, ...] = tuple(MESSAGES)


def translate(lang: str, key: str, **values: Any) -> str:
    text = MESSAGES.get(lang, {}).get(key) or MESSAGES[FALLBACK].get(key) or key
    return text.format(**values) if values else text


def translator(lang: str) -> Translate:
    def t(key: str, **values: Any) -> str:
        return translate(lang, key, **values)

    return t
