"""Which language a request gets, and the catalogue's completeness."""

from __future__ import annotations

from dashboard.i18n import MESSAGES, from_accept_language, pick_language, translate


def test_query_beats_cookie_beats_header_beats_default() -> None:
    assert pick_language("en", "ru", "ru", "ru") == ("en", True)
    assert pick_language("en", "en", None, "ru") == ("en", False)  # already remembered
    assert pick_language(None, "en", "ru", "ru") == ("en", False)
    assert pick_language(None, None, "en-GB,en;q=0.9", "ru") == ("en", False)
    assert pick_language(None, None, None, "ru") == ("ru", False)
    # Unknown values are ignored, never echoed into the cookie.
    assert pick_language("xx<script>", "zz", "de", "en") == ("en", False)


def test_accept_language_honours_quality() -> None:
    assert from_accept_language("en;q=0.3, ru;q=0.8") == "ru"
    assert from_accept_language("de-DE, en;q=0.5") == "en"
    assert from_accept_language("ru;q=0, de") is None
    assert from_accept_language("") is None


def test_both_languages_have_the_same_keys() -> None:
    assert set(MESSAGES["ru"]) == set(MESSAGES["en"])


def test_translate_formats_and_falls_back_to_the_key() -> None:
    assert translate("ru", "calls.found", count=3) == "Найдено звонков: 3"
    assert translate("en", "calls.found", count=3) == "3 calls found"
    assert translate("ru", "no.such.key") == "no.such.key"
