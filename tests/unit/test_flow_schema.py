"""Flow validation: every broken file says which file, which key path, and what is wrong."""

from __future__ import annotations

import shutil
import textwrap
import time
from pathlib import Path

import pytest

from call_router.flows.loader import FlowRegistry, load_flows
from call_router.settings import PROJECT_ROOT, QUEUES

PROMPTS = """\
languages: {ru: {voice: ru}, en: {voice: en}}
prompts:
  hello: {ru: "Здравствуйте", en: "Hello"}
  menu: {ru: "Меню", en: "Menu"}
  bye: {ru: "До свидания", en: "Goodbye"}
"""

GOOD = """\
start: hello
nodes:
  hello: {type: play, prompt: hello, next: menu, keys_to: menu}
  menu:
    type: menu
    prompt: menu
    options:
      1: {next: water}
      0: {next: coordinator}
    on_failure: coordinator
  water: {type: route, queue: plumbing, intent: water}
  coordinator: {type: route, queue: coordinator}
"""


def write_flows(folder: Path, flow: str, name: str = "main") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompts.yaml").write_text(PROMPTS, encoding="utf-8")
    (folder / f"{name}.yaml").write_text(textwrap.dedent(flow), encoding="utf-8")
    return folder


def errors_of(folder: Path) -> list[str]:
    return [str(e) for e in load_flows(folder, queues=QUEUES).errors]


def test_the_built_in_flows_are_valid() -> None:
    result = load_flows(PROJECT_ROOT / "ivr_flows", queues=QUEUES)
    assert result.errors == []
    assert "hotline" in result.flows


def test_a_good_flow_loads(tmp_path: Path) -> None:
    result = load_flows(write_flows(tmp_path, GOOD), queues=QUEUES)
    assert result.errors == []
    menu = result.flows["main"].nodes["menu"]
    assert menu.type == "menu" and set(menu.options) == {"1", "0"}  # YAML ints become keys


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("queue: plumbing", "queue: plumbin"), "main.yaml: nodes.water.queue: unknown queue"),
        (("1: {next: water}", "1: {next: wter}"), "nodes.menu.options.1.next: unknown node 'wter'"),
        (("start: hello", "start: nowhere"), "main.yaml: start: unknown node 'nowhere'"),
        (("type: play", "type: plya"), "nodes.hello: unknown node type"),
        (("prompt: menu", "promt: menu"), "nodes.menu.promt: unknown key"),
        (("prompt: menu", "prompt: menuu"), "nodes.menu.prompt: prompt 'menuu' has no 'ru' text"),
        (("1: {next: water}", "'*': {next: water}"), "nodes.menu.options: `*` is reserved"),
        (("1: {next: water}", "12: {next: water}"), "is not one keypad key"),
        (("    on_failure: coordinator\n", ""), "nodes.menu.on_failure: required key missing"),
    ],
)
def test_broken_flow_names_file_key_path_and_problem(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in GOOD
    errors = errors_of(write_flows(tmp_path, GOOD.replace(old, new, 1)))
    assert any(expected in e for e in errors), errors


ACTIONS = """\
start: payer
nodes:
  payer: {type: collect, prompt: menu, var: payer, checksum: luhn, next: store, on_failure: bye}
  store:
    type: action
    service: meter_store
    args: {max_monthly_growth: {heat: 20}}
    next: said
    outcomes: {below_last: payer}
    on_error: bye
  said: {type: say, var: reading, as: digits, prompt: hello, keys_to: again, next: again}
  again:
    type: menu
    prompt: menu
    options: {1: {next: other}, 8: {next: gas}}
    on_failure: bye
  other: {type: flow, flow: main}
  gas: {type: transfer, number: "setting:gas_emergency_number", on_failure: bye}
  bye: {type: hangup, prompt: bye}
"""


def test_action_say_flow_and_transfer_nodes_load(tmp_path: Path) -> None:
    folder = write_flows(tmp_path, GOOD)
    (folder / "meters.yaml").write_text(ACTIONS, encoding="utf-8")
    result = load_flows(folder, queues=QUEUES)
    assert result.errors == []
    store = result.flows["meters"].nodes["store"]
    assert store.type == "action" and store.args.max_monthly_growth == {"heat": 20}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("service: meter_store", "service: meter_stor"), "nodes.store.service: Input should be"),
        (
            ("outcomes: {below_last: payer}", "outcomes: {found: payer}"),
            "nodes.store: meter_store has no outcome 'found'",
        ),
        (("{heat: 20}", "{gas: 20}"), "nodes.store.args.max_monthly_growth.gas"),
        (("{heat: 20}", "{heat: 0}"), "a monthly growth must be between"),
        (("args: {", "args: {colour: red, "), "nodes.store.args.colour: unknown key"),
        (("as: digits", "as: letters"), "nodes.said.as: Input should be"),
        (("flow: main", "flow: mian"), "meters.yaml: nodes.other.flow: unknown flow 'mian'"),
        (("setting:gas_emergency_number", "setting:password"), "nodes.gas.number: String should"),
        (("on_error: bye", "on_error: nowhere"), "nodes.store.on_error: unknown node 'nowhere'"),
    ],
)
def test_broken_new_nodes_name_the_key_path(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in ACTIONS
    folder = write_flows(tmp_path, GOOD)
    (folder / "meters.yaml").write_text(ACTIONS.replace(old, new, 1), encoding="utf-8")
    errors = errors_of(folder)
    assert any(expected in e for e in errors), errors


def test_ask_choices_may_be_spoken_only_but_one_needs_a_key(tmp_path: Path) -> None:
    ask = """\
start: ask
nodes:
  ask:
    type: ask
    prompt: menu
    choices:
      gas: {next: bye}
      lang: {key: "9", next: bye, speech: false}
    on_failure: bye
  bye: {type: hangup}
"""
    assert errors_of(write_flows(tmp_path / "a", ask)) == []
    no_key = ask.replace('{key: "9", next: bye, speech: false}', "{next: bye}")
    assert any(
        "at least one choice needs a key" in e
        for e in errors_of(write_flows(tmp_path / "b", no_key))
    )
    mute = ask.replace("gas: {next: bye}", "gas: {next: bye, speech: false}")
    assert any(
        "neither a key nor speech" in e for e in errors_of(write_flows(tmp_path / "c", mute))
    )


def test_unreachable_node(tmp_path: Path) -> None:
    flow = GOOD + "  orphan: {type: hangup}\n"
    assert errors_of(write_flows(tmp_path, flow)) == [
        "main.yaml: nodes.orphan: unreachable from `start`"
    ]


def test_loop_without_input_is_refused(tmp_path: Path) -> None:
    flow = GOOD.replace(
        "  coordinator: {type: route, queue: coordinator}\n",
        "  coordinator: {type: goto, next: again}\n"
        "  again: {type: set, vars: {x: '1'}, next: coordinator}\n",
    )
    errors = errors_of(write_flows(tmp_path, flow))
    assert len(errors) == 1
    assert "loop without caller input: coordinator → again → coordinator" in errors[0]


def test_loop_through_a_menu_is_fine(tmp_path: Path) -> None:
    flow = GOOD.replace(
        "water: {type: route, queue: plumbing, intent: water}", "water: {type: goto, next: menu}"
    )
    assert errors_of(write_flows(tmp_path, flow)) == []


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    errors = errors_of(write_flows(tmp_path, GOOD + "  bad: [unclosed\n"))
    assert len(errors) == 1 and errors[0].startswith("main.yaml: line ")
    assert "YAML syntax" in errors[0]


@pytest.mark.parametrize("content", ["", "- a list\n", "just text\n", "start: 5\nnodes: 7\n"])
def test_garbage_files_are_errors_not_crashes(tmp_path: Path, content: str) -> None:
    folder = write_flows(tmp_path, GOOD)
    (folder / "junk.yaml").write_text(content)
    result = load_flows(folder, queues=QUEUES)
    assert any(e.file == "junk.yaml" for e in result.errors)
    assert "main" in result.flows  # one broken file does not take the others down


def test_binary_file_is_an_error(tmp_path: Path) -> None:
    folder = write_flows(tmp_path, GOOD)
    (folder / "bin.yaml").write_bytes(b"\xff\xfe\x00\x01")
    assert "bin.yaml: (top): not UTF-8 text" in errors_of(folder)


def test_missing_recording_is_an_error_when_sound_files_are_checked(tmp_path: Path) -> None:
    folder = write_flows(tmp_path / "flows", GOOD)
    recordings = tmp_path / "recordings"
    for lang in ("ru", "en"):
        (recordings / "prompts" / lang).mkdir(parents=True)
        for name in ("hello", "menu"):
            (recordings / "prompts" / lang / f"{name}.wav").write_bytes(b"RIFF")
    assert load_flows(folder, queues=QUEUES, recordings=recordings).errors == []
    (recordings / "prompts" / "en" / "menu.wav").unlink()
    errors = [str(e) for e in load_flows(folder, queues=QUEUES, recordings=recordings).errors]
    assert errors == [
        "main.yaml: nodes.menu.prompt: prompt en/menu is not built: run `hotline prompts build`"
    ]


def test_calendar_errors(tmp_path: Path) -> None:
    folder = write_flows(tmp_path, GOOD)
    (folder / "calendar.yaml").write_text("week: {mon: '9-18'}\n")
    errors = errors_of(folder)
    assert any("calendar.yaml: week" in e and "HH:MM-HH:MM" in e for e in errors), errors
    (folder / "calendar.yaml").write_text("week: {funday: '09:00-18:00'}\n")
    assert any("calendar.yaml: week.funday" in e for e in errors_of(folder))
    (folder / "calendar.yaml").write_text("timezone: Mars/Olympus\nweek: {mon: '09:00-18:00'}\n")
    assert errors_of(folder) == ["calendar.yaml: (top): unknown time zone 'Mars/Olympus'"]


# --- hot reload --------------------------------------------------------------------------------


def test_registry_keeps_the_last_good_flow_and_picks_up_good_changes(tmp_path: Path) -> None:
    folder = write_flows(tmp_path, GOOD)
    registry = FlowRegistry(
        folder, queues=QUEUES, watch_interval=0.0, status_file=tmp_path / "s.json"
    )
    assert registry.get("main") is not None
    first = registry.get("main")

    # A good change (key 6 → lift) is picked up without an explicit reload.
    changed = (
        GOOD.replace(
            "      0: {next: coordinator}\n",
            "      0: {next: coordinator}\n      6: {next: lift}\n",
        )
        + "  lift: {type: route, queue: lift}\n"
    )
    time.sleep(0.01)
    (folder / "main.yaml").write_text(changed)
    second = registry.get("main")
    assert second is not None and second is not first
    assert "6" in second.nodes["menu"].options  # type: ignore[union-attr]

    # A broken change is refused: the last good version keeps answering.
    (folder / "main.yaml").write_text(changed.replace("queue: lift", "queue: elevator"))
    errors = registry.reload()
    assert [e.path for e in errors] == ["nodes.lift.queue"]
    assert registry.get("main") is second
    assert '"errors": [' in (tmp_path / "s.json").read_text()

    # A broken shared file (prompts.yaml) keeps the whole last good set.
    (folder / "prompts.yaml").write_text("languages: [")
    registry.reload()
    assert registry.get("main") is second


def test_copy_of_the_repo_flows_passes_the_registry(tmp_path: Path) -> None:
    shutil.copytree(PROJECT_ROOT / "ivr_flows", tmp_path / "f")
    registry = FlowRegistry(tmp_path / "f", queues=QUEUES)
    assert registry.last_errors == []
    assert registry.get("hotline") is not None
