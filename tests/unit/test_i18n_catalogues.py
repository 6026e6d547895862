"""The gettext catalogues match the code: every key the templates and code use (extracted by
Babel) is translated in every language, none empty or fuzzy, and the pages read these files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from babel.messages.pofile import read_po, write_po

from dashboard import i18n_catalogues
from dashboard.translations import LOCALE_DIR, MESSAGES, load_messages, read_catalogue


@pytest.fixture(scope="module")
def usage() -> i18n_catalogues.Usage:
    return i18n_catalogues.extract()


def test_every_key_in_use_is_in_every_catalogue_translated(
    usage: i18n_catalogues.Usage,
) -> None:
    assert i18n_catalogues.problems() == []
    # Literal keys from templates and routes, and the run-time ones listed in i18n_keys.py.
    assert "nav.today" in usage.places  # templates/base.html
    assert "calls.found" in usage.places  # routes
    assert "role.supervisor" in usage.places  # t("role." ~ user.role)
    for lang in ("ru", "en"):
        assert set(usage.places) <= set(MESSAGES[lang])


def test_the_committed_files_are_what_extraction_writes(tmp_path: Path) -> None:
    locale = tmp_path / "locale"
    shutil.copytree(LOCALE_DIR, locale)
    assert i18n_catalogues.update(locale_dir=locale) == []


def _edit(path: Path, edit: dict[str, tuple[str, bool] | None]) -> None:
    """key → (new text, fuzzy) or None to delete the entry."""
    with path.open("rb") as po:
        catalogue = read_po(po, locale=path.parent.parent.name)
    for key, change in edit.items():
        if change is None:
            catalogue.delete(key)
        else:
            message = catalogue[key]
            message.string = change[0]
            if change[1]:
                message.flags.add("fuzzy")
    with path.open("wb") as po:
        write_po(po, catalogue)


def test_the_check_names_missing_empty_fuzzy_and_misformatted_entries(tmp_path: Path) -> None:
    locale = tmp_path / "locale"
    shutil.copytree(LOCALE_DIR, locale)
    _edit(
        locale / "ru" / "LC_MESSAGES" / "messages.po",
        {
            "nav.today": None,
            "nav.calls": ("", False),
            "nav.reports": ("Отчёты?", True),
            "calls.found": ("Найдено звонков: {total}", False),
        },
    )
    found = i18n_catalogues.problems(locale_dir=locale)
    assert len(found) == 4, found
    assert any("'nav.today' is missing" in p and p.startswith("ru/") for p in found)
    assert any("'nav.calls' has an empty translation" in p for p in found)
    assert any("'nav.reports' is marked fuzzy" in p for p in found)
    assert any("'calls.found' has other {fields} than English" in p for p in found)
    # The pages skip what the check refuses: the English text stands in.
    ru = load_messages(locale)["ru"]
    assert "nav.calls" not in ru and "nav.reports" not in ru and "nav.today" not in ru


def test_adding_a_language_is_adding_a_catalogue(tmp_path: Path) -> None:
    locale = tmp_path / "locale"
    shutil.copytree(LOCALE_DIR, locale)
    german = locale / "de" / "LC_MESSAGES" / "messages.po"
    german.parent.mkdir(parents=True)
    catalogue = read_catalogue(LOCALE_DIR / "en" / "LC_MESSAGES" / "messages.po")
    catalogue.locale = "de"
    catalogue["nav.today"].string = "Heute"
    with german.open("wb") as po:
        write_po(po, catalogue)
    messages = load_messages(locale)
    assert set(messages) == {"de", "en", "ru"}
    assert messages["de"]["nav.today"] == "Heute"
    assert messages["ru"] == MESSAGES["ru"]


def test_a_new_key_in_a_template_is_reported_until_every_catalogue_translates_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "checkout"
    shutil.copytree(
        i18n_catalogues.ROOT / "dashboard",
        root / "dashboard",
        ignore=shutil.ignore_patterns("__pycache__", "static"),
    )
    shutil.copy(i18n_catalogues.BABEL_CONFIG, root)
    locale = root / "dashboard" / "locale"
    page = root / "dashboard" / "templates" / "incidents.html"
    page.write_text(page.read_text() + '\n<p>{{ t("inc.new_field") }}</p>\n')

    found = i18n_catalogues.problems(root, locale)
    assert (
        "messages.pot: 'inc.new_field' is used but not extracted (run hotline i18n extract)"
        in found
    )
    for lang in ("en", "ru"):
        assert any(p.startswith(f"{lang}/") and "'inc.new_field' is missing" in p for p in found)

    i18n_catalogues.update(root, locale)  # arrives empty in every catalogue
    found = i18n_catalogues.problems(root, locale)
    assert len(found) == 2 and all("'inc.new_field' has an empty translation" in p for p in found)

    with pytest.raises(ValueError, match="no catalogue for de"):
        i18n_catalogues.set_texts("inc.new_field", {"de": "Neues Feld"}, locale)
    texts = {"en": "New field", "ru": "Новое поле"}
    assert len(i18n_catalogues.set_texts("inc.new_field", texts, locale)) == 2
    assert i18n_catalogues.problems(root, locale) == []
    assert load_messages(locale)["ru"]["inc.new_field"] == "Новое поле"
