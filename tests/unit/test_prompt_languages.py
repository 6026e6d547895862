"""Every prompt on the caller's path follows the caller's language (issue 16).

Statically, from the shipped definitions: every path of every flow from each starting language
(through "press 9 for English", pinned-language offers and `flow` jumps), and every prompt the
dialplan and queues.conf play (the virtual-hold offer while waiting, the offer when nobody
answers, its confirmation). The real Asterisk side (stock sounds in both languages, the offer an
English caller hears while waiting) is tests/integration/test_prompt_languages_e2e.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from call_router.flows.language_walk import problems, walk, wrong_script
from call_router.flows.loader import FlowRegistry
from call_router.flows.schema import Flow
from call_router.settings import PROJECT_ROOT, QUEUES, Settings
from hotline.asterisk.render import render_config
from tests.unit.test_asterisk_render import PATHS, operator

FLOWS = PROJECT_ROOT / "ivr_flows"
LANGUAGES = ("ru", "en")


@pytest.fixture(scope="module")
def shipped() -> FlowRegistry:
    registry = FlowRegistry(FLOWS, queues=QUEUES)
    assert registry.last_errors == []
    return registry


def test_every_path_of_every_flow_speaks_the_callers_language(shipped: FlowRegistry) -> None:
    flows = shipped.current.flows
    texts = shipped.current.prompts.texts
    assert {"hotline", "meters"} <= set(flows)
    found: list[str] = []
    for name, flow in flows.items():
        for language in flow.languages:
            played = walk(flows, name, language)
            assert played, f"{name} from {language}: nothing played"
            found += problems(played, texts)
    assert found == []


def test_the_walk_follows_the_language_switch_and_the_jump_to_meters(
    shipped: FlowRegistry,
) -> None:
    played = walk(shipped.current.flows, "hotline", "ru")
    heard = {(p.language, p.prompt) for p in played}
    # A Russian caller who pressed 9 hears the English menu; "For English, press 9" is English.
    assert {("ru", "menu"), ("en", "menu"), ("en", "english_offer")} <= heard
    # ... and the meter flow (key 6) in both languages, and every emergency prompt.
    meters = {p.prompt for p in played if p.flow == "meters"}
    assert meters and all(("en", m) in heard and ("ru", m) in heard for m in meters)
    assert {("ru", "emergencies"), ("en", "emergencies")} <= heard
    # Nothing Russian is pinned: "Для русского языка нажмите 9" is said only in Russian.
    assert ("en", "russian_offer") not in heard


def test_a_prompt_in_the_wrong_language_is_named_with_its_path() -> None:
    flow = Flow.model_validate(
        {
            "start": "hello",
            "nodes": {
                "hello": {"type": "play", "prompt": "hello", "next": "switch"},
                "switch": {"type": "set", "vars": {"language": "en"}, "next": "bye"},
                "bye": {"type": "hangup", "prompt": "bye"},
            },
        }
    )
    texts = {
        "hello": {"ru": "Здравствуйте", "en": "Hello"},
        # Someone pasted the Russian text into the English slot; no Russian "bye" at all.
        "bye": {"en": "До свидания"},
    }
    found = problems(walk({"f": flow}, "f", "ru"), texts)
    assert found == [
        "text is not in 'en': f:hello → f:switch → f:bye (prompt: en/bye): 'До свидания'"
    ]
    found = problems(walk({"f": flow}, "f", "en"), {**texts, "bye": {"ru": "Пока"}})
    assert found == ["no 'en' text: f:hello → f:switch → f:bye (prompt: en/bye)"]


@pytest.mark.parametrize(
    ("text", "language", "wrong"),
    [
        ("Нажмите 1.", "ru", False),
        ("Press 1.", "en", False),
        ("Нажмите 1.", "en", True),
        ("Press 1, please.", "ru", True),
        ("Соединяем с координатором (SIP).", "ru", False),
        ("12345", "en", False),
    ],
)
def test_the_script_of_a_text_says_its_language(text: str, language: str, wrong: bool) -> None:
    assert wrong_script(text, language) is wrong


# --- the dialplan and queues.conf --------------------------------------------------------------

PROMPT_REF = re.compile(
    r"\$\{HOTLINE_RECORDINGS\}/prompts/(\$\{CHANNEL\(language\)\}|[^/,)]+)/([A-Za-z0-9_]+)"
)


def _rendered(tmp_path: Path) -> dict[str, str]:
    settings = Settings(
        state_dir=tmp_path / "state",
        recordings_dir=tmp_path / "recordings",
        asterisk_root=tmp_path / "root",
        default_language="ru",
    )
    conf = render_config(settings, PATHS, [operator()])
    return {p.name: p.read_text() for p in conf.parent.glob("*.conf")}


def _asterisk_resolves(path: str, language: str) -> str:
    """Where Asterisk looks first for an absolute sound path on a channel in `language`
    (main/file.c fileexists_test: the language goes in before the file's name)."""
    folder, _, name = path.rpartition("/")
    return f"{folder}/{language}/{name}"


def test_every_prompt_the_dialplan_plays_is_in_the_channels_language(
    tmp_path: Path, shipped: FlowRegistry
) -> None:
    extensions = _rendered(tmp_path)["extensions.conf"]
    refs = PROMPT_REF.findall(extensions)
    assert {name for _, name in refs} >= {"callback_offer", "callback_confirmed"}
    texts = shipped.current.prompts.texts
    for folder, name in refs:
        assert folder == "${CHANNEL(language)}", f"prompts/{folder}/{name} is pinned"
        for language in LANGUAGES:
            text = texts[name][language]
            assert not wrong_script(text, language), (name, language, text)


def test_the_offer_while_waiting_is_in_the_callers_language(
    tmp_path: Path, shipped: FlowRegistry
) -> None:
    """queues.conf takes no variables: the offer is named without a language folder, so
    Asterisk plays it from the caller's (before: always the default language's folder)."""
    queues = _rendered(tmp_path)["queues.conf"]
    announces = set(re.findall(r"^periodic-announce = (\S+)$", queues, re.M))
    assert announces == {f"{PATHS.recordings}/prompts/queue_callback_offer"}
    (path,) = announces
    texts = shipped.current.prompts.texts
    for language in LANGUAGES:
        resolved = _asterisk_resolves(path, language)
        assert resolved == f"{PATHS.recordings}/prompts/{language}/queue_callback_offer"
        assert not wrong_script(texts["queue_callback_offer"][language], language)
