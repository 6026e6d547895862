"""The keypad paths of a flow, as the real-Asterisk walk drives them (issue 16). Pure.

tests/integration/test_keypad_walk_e2e.py places a call for each path of the shipped menu;
here: that the paths are the menu's (every key, each language, day and night) and what each
caller hears on the way.
"""

from __future__ import annotations

import pytest

from call_router.flows.keypad_paths import Heard, keypad_paths
from call_router.flows.loader import FlowRegistry
from call_router.flows.schema import Flow
from call_router.settings import PROJECT_ROOT, QUEUES


@pytest.fixture(scope="module")
def shipped() -> dict[str, Flow]:
    registry = FlowRegistry(PROJECT_ROOT / "ivr_flows", queues=QUEUES)
    assert registry.last_errors == []
    return dict(registry.current.flows)


def test_by_day_every_key_of_the_menu_and_of_the_emergency_menu_is_a_path(
    shipped: dict[str, Flow],
) -> None:
    menu = shipped["hotline"].nodes["menu"]
    emergencies = shipped["hotline"].nodes["emergencies_day"]
    keys = {c.key for c in menu.choices.values() if c.key} - {"7", "9"}  # type: ignore[union-attr]
    keys |= {f"7{k}" for k in emergencies.options}  # type: ignore[union-attr]
    for language in ("ru", "en"):
        paths = keypad_paths(shipped, "hotline", language)
        assert {p.keys for p in paths} == keys | {f"9{k}" for k in keys}
        assert {p.start_language for p in paths} == {language}


def test_what_a_russian_caller_who_presses_9_then_7_then_2_hears(
    shipped: dict[str, Flow],
) -> None:
    (path,) = [p for p in keypad_paths(shipped, "hotline", "ru") if p.keys == "972"]
    assert [str(h) for h in path.heard] == [
        "ru/greeting",
        "en/english_offer",  # "For English, press 9" is always English
        "ru/menu",
        "en/menu",
        "en/emergencies",
        "en/transfer",
    ]
    assert [(p.key, str(p.during), p.heard_before) for p in path.presses] == [
        ("9", "ru/menu", 2),
        ("7", "en/menu", 3),
        ("2", "en/emergencies", 4),
    ]
    assert (path.end, path.end_language) == ("hotline:flooding_day", "en")


def test_key_6_walks_into_the_meter_readings_flow(shipped: dict[str, Flow]) -> None:
    (path,) = [p for p in keypad_paths(shipped, "hotline", "en") if p.keys == "6"]
    assert path.end == "meters:payer"
    assert path.last == Heard("meters_payer", "en")


def test_at_night_every_emergency_the_message_and_gas(shipped: dict[str, Flow]) -> None:
    paths = keypad_paths(shipped, "hotline", "en", business_hours=False)
    assert {p.keys: p.end for p in paths} == {
        "11": "hotline:gas",
        "12": "hotline:flooding_night",
        "13": "hotline:lift_stuck_night",
        "14": "hotline:no_heating_night",
        "2": "hotline:message",
        "3": "hotline:gas",
    }
    assert all(p.heard[0] == Heard("after_hours", "en") for p in paths)
