"""Routing rules shared by every flow: plain values, no I/O."""

from __future__ import annotations

import pytest

from call_router.routing import FALLBACK_QUEUE, clean_choice, pick_language
from call_router.settings import QUEUES


def test_the_fallback_is_the_coordinator_queue() -> None:
    assert FALLBACK_QUEUE == "coordinator"
    assert FALLBACK_QUEUE in QUEUES


def test_clean_choice_keeps_keypad_symbols_only_and_is_bounded() -> None:
    assert clean_choice("1" * 5000) == "1" * 16
    assert clean_choice("2<script>") == "2"
    assert clean_choice("*#0") == "*#0"


@pytest.mark.parametrize(
    ("requested", "expected"),
    [("en", "en"), ("EN_gb", "en"), ("ru-RU", "ru"), ("de", "ru"), (None, "ru"), ("", "ru")],
)
def test_pick_language(requested: str | None, expected: str) -> None:
    assert pick_language(requested, "ru") == expected
