"""The keypad walk of every path of the hotline menu in ru and en, on the real Asterisk (issue 16).

The paths come from the shipped flow itself (call_router/flows/keypad_paths.py): from a caller
starting in Russian and one starting in English (who chose it by "press 9" before), by day and
at night, every key of every menu down to where the menu lets go of the call: a queue (with
its "connecting you" prompt), the gas service, the night voicemail, the meter readings' first
question. SIPp callers on the carrier trunk press the keys while each menu's prompt plays (the
times from the prompt files' lengths), several callers at once. A caller's next call starts
in the language their last one ended in, so the day's paths are taken in chains from one number
each (`in_turn`); at night (no language key) the English callers are numbers that chose English
before.

Asterisk's own log says what it played on each call. The test fails on a prompt of the path
not played (missing, or its file absent), on any prompt file played from another language's
folder than the path plays it in, and on any of Asterisk's own sounds played in another
language than the caller's.
"""

from __future__ import annotations

import itertools
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select, update

from call_router.callbacks import CALLBACK_CLOSED
from call_router.db import Database
from call_router.flow_models import CallerLanguage
from call_router.flows.keypad_paths import Heard, KeypadPath, in_turn, keypad_paths
from call_router.flows.loader import FlowRegistry
from call_router.models import CALLBACK_OPEN, Call, Callback, utcnow
from call_router.settings import PROJECT_ROOT, QUEUES, Settings
from hotline.sipua.testcall import place_call
from tests.conftest import wait_for
from tests.integration.test_after_hours_e2e import CLOSED
from tests.integration.test_area_incidents_e2e import seconds
from tests.integration.test_flows_e2e import agi_running_flows

pytestmark = pytest.mark.asterisk

LANGUAGES = ("ru", "en")
CALLS_AT_ONCE = 12
CHAIN_LENGTH = 4
# A key goes in this long after its menu's prompt should have started (the engine's own steps
# between prompts take a little time); the call ends this long after its last prompt.
INTO_PROMPT = 2.0
TAIL = 2.5
# The first prompt starts about this long after SIPp's media does.
FIRST_PROMPT = 0.5
# A prompt of ours, as Asterisk names it (recordings/prompts/<language>/<name>.<format>).
PROMPT_FILE = re.compile(r"/prompts/([a-z]{2})/([A-Za-z0-9_]+)\.[a-z0-9]+$")
PLAYING = re.compile(r"\[(C-[0-9a-f]+)\].*Playing '([^']+)'(?:.*\(language '([a-z_]+)'\))?")


@dataclass
class Walked:
    path: KeypadPath
    number: str
    answered: bool = False
    detail: str = ""
    played: list[tuple[str, str | None]] = field(default_factory=list)  # (file, language)


def _flows() -> FlowRegistry:
    registry = FlowRegistry(PROJECT_ROOT / "ivr_flows", queues=QUEUES)
    assert registry.last_errors == []
    return registry


def _timeline(stack: Settings, path: KeypadPath) -> tuple[list[tuple[float, str]], float]:
    """When each key is pressed (seconds after SIPp's media starts), and how long the call."""
    lengths = [seconds(stack, h.language, h.prompt) for h in path.heard]
    presses: list[tuple[float, str]] = []
    now, played = FIRST_PROMPT, 0  # the time the prompt `played` starts
    for press in path.presses:
        now += sum(lengths[played : press.heard_before])
        now += INTO_PROMPT
        presses.append((now, press.key))
        played = press.heard_before + 1  # the key cut its prompt short
    end = now + sum(lengths[played:]) + TAIL
    return presses, end


def _call(stack: Settings, walked: Walked) -> None:
    presses, hold = _timeline(stack, walked.path)
    result = place_call(
        stack, from_number=walked.number, dtmf_delay=0.0, dtmf_schedule=presses, hold=hold
    )
    walked.answered, walked.detail = result.answered, result.detail


def _chain(stack: Settings, chain: list[Walked]) -> None:
    for walked in chain:
        _call(stack, walked)


def _walk(stack: Settings, chains: list[list[Walked]]) -> None:
    log = stack.asterisk_dir / "log" / "full"
    start = log.stat().st_size
    with ThreadPoolExecutor(CALLS_AT_ONCE) as pool:
        for done in [pool.submit(_chain, stack, chain) for chain in chains]:
            done.result()
    with log.open("rb") as full:
        full.seek(start)
        lines = full.read().decode(errors="replace").splitlines()
    _attribute(lines, [w for chain in chains for w in chain])


def _attribute(lines: list[str], walks: list[Walked]) -> None:
    """Each call's played files, by the Asterisk call id (C-…) of its "Hotline IVR" line; one
    number's calls in the order they were placed."""
    by_number: dict[str, list[Walked]] = {}
    for walked in walks:
        by_number.setdefault(walked.number, []).append(walked)
    calls: dict[str, Walked] = {}
    for line in lines:
        tag = re.search(r"\[(C-[0-9a-f]+)\]", line)
        if tag is None:
            continue
        begins = re.search(r"Hotline IVR: (\+\d+)", line)
        if begins and tag.group(1) not in calls and by_number.get(begins.group(1)):
            calls[tag.group(1)] = by_number[begins.group(1)].pop(0)
            continue
        playing = PLAYING.search(line)
        if playing and playing.group(1) in calls:
            calls[playing.group(1)].played.append((playing.group(2), playing.group(3)))


def problems(walked: Walked) -> list[str]:
    """What Asterisk played on the call that the path does not play (and in which language),
    and what the path plays that Asterisk did not."""
    path = walked.path
    where = f"{path} ({walked.number})"
    if not walked.answered:
        return [f"{where}: not answered: {walked.detail}"]
    heard = set(path.heard)
    played: list[Heard] = []
    out = []
    for file, language in walked.played:
        ours = PROMPT_FILE.search(file)
        if ours:
            item = Heard(ours.group(2), ours.group(1))
            played.append(item)
            if item not in heard and item.language != path.end_language:
                out.append(f"{where}: played {item} (not in {path.end_language!r})")
        elif language is not None and language != path.end_language:
            out.append(f"{where}: Asterisk's {file} in {language!r}")
    out += [f"{where}: {h} never played" for h in path.heard if h not in played]
    return out


def _close_their_callbacks(stack: Settings, chains: list[list[Walked]]) -> None:
    """The walk's callers waited in empty queues and hung up: each is a missed call on the
    callback list. Once the router has ended every call, their entries are closed, so that no
    later test in the shared stack finds them due."""
    numbers = {w.number for chain in chains for w in chain}
    placed = sum(len(chain) for chain in chains)
    db = Database(stack.db_url)

    def all_ended() -> bool:
        with db.session() as session:
            ended = session.scalar(
                select(func.count(Call.id)).where(
                    Call.caller_number.in_(numbers), Call.ended_at.is_not(None)
                )
            )
        return (ended or 0) >= placed

    try:
        wait_for(all_ended, timeout=60, what="the router ending the walk's calls")
        with db.session() as session:
            session.execute(
                update(Callback)
                .where(Callback.caller_number.in_(numbers), Callback.status == CALLBACK_OPEN)
                .values(status=CALLBACK_CLOSED, closed_at=utcnow())
            )
    finally:
        db.dispose()


def _check(chains: list[list[Walked]]) -> None:
    found = [p for chain in chains for w in chain for p in problems(w)]
    assert found == [], "\n".join(found)


def _paths(business_hours: bool) -> list[KeypadPath]:
    flows = _flows().current.flows
    return [
        path
        for language in LANGUAGES
        for path in keypad_paths(flows, "hotline", language, business_hours=business_hours)
    ]


def test_every_keypad_path_by_day_in_ru_and_en(stack: Settings) -> None:
    paths = _paths(business_hours=True)
    # Every key of the day menu and of the emergency menu, in both languages, both ways round.
    assert {p.keys for p in paths} >= {"1", "6", "74", "0", "91", "974"}
    assert {p.start_language for p in paths} == set(LANGUAGES)
    numbers = (f"+7495777{i:04d}" for i in itertools.count())
    chains = [
        [Walked(path, number) for path in chain]
        for chain, number in zip(
            in_turn(paths, itertools.repeat("ru"), CHAIN_LENGTH), numbers, strict=False
        )
    ]
    _walk(stack, chains)
    _close_their_callbacks(stack, chains)
    _check(chains)


# --- at night: the English callers chose English on an earlier call ----------------------------

NIGHT_FIRST = 7778000


@pytest.fixture(scope="module")
def night(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Walked]]:
    """The night's paths, each with its caller, on the FastAGI server running a copy of
    ivr_flows/ closed every day (test_after_hours_e2e.py's calendar)."""
    paths = _paths(business_hours=False)
    walks = [Walked(p, f"+7495{NIGHT_FIRST + i}") for i, p in enumerate(paths)]
    flows = tmp_path_factory.mktemp("night-walk") / "ivr_flows"
    shutil.copytree(PROJECT_ROOT / "ivr_flows", flows)
    (flows / "calendar.yaml").write_text(CLOSED, encoding="utf-8")

    def english_callers() -> None:
        db = Database(stack.db_url)
        with db.session() as session:
            for walked in walks:
                if walked.path.start_language != "ru":
                    session.merge(
                        CallerLanguage(
                            caller_number=walked.number, language=walked.path.start_language
                        )
                    )
        db.dispose()

    with agi_running_flows(stack, flows, prepare=english_callers):
        yield walks


def test_every_keypad_path_at_night_in_ru_and_en(stack: Settings, night: list[Walked]) -> None:
    assert {w.path.keys for w in night} >= {"11", "14", "2", "3"}
    chains = [[walked] for walked in night]
    _walk(stack, chains)
    _close_their_callbacks(stack, chains)
    _check(chains)
