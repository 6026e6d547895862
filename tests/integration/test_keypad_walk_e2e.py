"""The keypad walk of every path of the hotline menu in ru and en, on the real Asterisk (issue 16).

The paths come from the shipped flow itself (call_router/flows/keypad_paths.py): from a caller
starting in Russian and one starting in English (who chose it by "press 9" before), by day and
at night, every key of every menu down to where the menu lets go of the call: a queue (with
its "connecting you" prompt), the gas service, the night voicemail, the meter readings' first
question. SIPp callers on the carrier trunk press the keys while each menu's prompt plays (the
times from the prompt files' lengths), several callers at once.

The walk runs in the suite's shared stack, after tests that leave their callers known to it
(languages, requests, callbacks), so each path is called from a number of its own that no call
has come from yet (`fresh_numbers`), and a caller starting in English is one whose choice is
in the database before the FastAGI server starts (it reads remembered languages into memory and
refreshes them only once a minute). Each key is pressed halfway through its menu's prompt: on a
busy machine the engine's steps between prompts take longer than the prompts' lengths say, and
a key pressed before its menu (during the greeting, which hands a key on to the menu) would skip
the menu's prompt.

Asterisk's own log says what it played on each call. The test fails on a prompt of the path
not played (missing, or its file absent), on any prompt file played from another language's
folder than the path plays it in, and on any of Asterisk's own sounds played in another
language than the caller's. test_meters_e2e.py walks on through a whole meter reading (the
numbers said back included) with these helpers.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from call_router.callbacks import CALLBACK_CLOSED
from call_router.db import Database
from call_router.flow_models import CallerLanguage, Incident
from call_router.flows.keypad_paths import Heard, KeypadPath, keypad_paths
from call_router.flows.loader import FlowRegistry
from call_router.models import CALLBACK_OPEN, Call, Callback, utcnow
from call_router.settings import PROJECT_ROOT, QUEUES, Settings
from hotline.sipua.rtp_pcap import DTMF_GAP_MS, DTMF_TONE_MS
from hotline.sipua.testcall import place_call
from tests.conftest import wait_for
from tests.integration.test_after_hours_e2e import CLOSED
from tests.integration.test_area_incidents_e2e import seconds
from tests.integration.test_flows_e2e import agi_running_flows

pytestmark = pytest.mark.asterisk

LANGUAGES = ("ru", "en")
CALLS_AT_ONCE = 12
# The walk's callers: no other test calls from +749548… (grep tests/ before taking another).
NUMBER_PREFIX = "+749548"
NUMBER_DIGITS = 5
# A key goes in this long after its menu's prompt should have started: halfway through it,
# at least INTO_PROMPT and at most LATE in. The engine may start the prompt late by almost
# that much and the key still lands in it (pressed after it, the menu still takes it while it
# waits for a key).
INTO_PROMPT = 2.0
LATE = 6.0
# The call ends this long after its last prompt should have ended.
TAIL = 4.0
# The first prompt starts about this long after SIPp's media does.
FIRST_PROMPT = 0.5
# Each key after the first of a press ("512#") goes out this much later than the one before.
KEY_SECONDS = (DTMF_TONE_MS + DTMF_GAP_MS) / 1000
# A prompt of ours, as Asterisk names it (recordings/prompts/<language>/<name>.<format>).
PROMPT_FILE = re.compile(r"/prompts/([a-z]{2})/([A-Za-z0-9_]+)\.[a-z0-9]+$")
PLAYING = re.compile(r"\[(C-[0-9a-f]+)\].*Playing '([^']+)'(?:.*\(language '([a-z_]+)'\))?")
# What the FastAGI server logs when it gave up on a bounded read or lookup (the caller then
# gets the ordinary path): shown beside a failed walk.
GAVE_UP = re.compile(r"database_read_timeout|database_read_failed|flow_lookup_(timeout|failed)")


@dataclass
class Walked:
    path: KeypadPath
    number: str
    answered: bool = False
    detail: str = ""
    played: list[tuple[str, str | None]] = field(default_factory=list)  # (file, language)
    # Seconds Asterisk speaks after the path's prompt heard[i] before the next one starts
    # (a number said digit by digit): the keys after it go in that much later.
    spoken: dict[int, float] = field(default_factory=dict)
    to: str | None = None  # the number dialled: the hotline number unless set


def shipped_flows() -> FlowRegistry:
    registry = FlowRegistry(PROJECT_ROOT / "ivr_flows", queues=QUEUES)
    assert registry.last_errors == []
    return registry


def fresh_numbers(stack: Settings, count: int) -> list[str]:
    """`count` walk numbers after every one the stack has seen (a call, a remembered language,
    a callback entry): a second walk in the same stack starts from numbers nobody knows."""
    like = f"{NUMBER_PREFIX}{'_' * NUMBER_DIGITS}"
    db = Database(stack.db_url)
    try:
        with db.session() as session:
            used = [
                session.scalar(select(func.max(column)).where(column.like(like)))
                for column in (
                    Call.caller_number,
                    CallerLanguage.caller_number,
                    Callback.caller_number,
                )
            ]
            # Nothing may be on the caller's path of a fresh caller that the paths do not
            # walk: an open incident is heard by every caller (keypad_paths.py).
            incidents = session.scalars(
                select(Incident.id).where(Incident.ended_at.is_(None))
            ).all()
    finally:
        db.dispose()
    assert incidents == [], f"incidents left open by an earlier test: {incidents}"
    first = max([int(n.removeprefix(NUMBER_PREFIX)) + 1 for n in used if n] + [0])
    assert first + count <= 10**NUMBER_DIGITS, "the walk's numbers ran out"
    return [f"{NUMBER_PREFIX}{first + i:0{NUMBER_DIGITS}d}" for i in range(count)]


def _timeline(stack: Settings, walked: Walked) -> tuple[list[tuple[float, str]], float]:
    """When each key is pressed (seconds after SIPp's media starts), and how long the call."""
    path = walked.path
    lengths = [
        seconds(stack, h.language, h.prompt) + walked.spoken.get(i, 0.0)
        for i, h in enumerate(path.heard)
    ]
    presses: list[tuple[float, str]] = []
    now, played = FIRST_PROMPT, 0  # the time the prompt `played` starts
    for press in path.presses:
        now += sum(lengths[played : press.heard_before])
        now += max(INTO_PROMPT, min(lengths[press.heard_before] / 2, LATE))
        presses.append((now, press.key))
        now += (len(press.key) - 1) * KEY_SECONDS  # the node takes its last key then
        played = press.heard_before + 1  # the key cut its prompt short
    end = now + sum(lengths[played:]) + TAIL
    return presses, end


def _call(stack: Settings, walked: Walked) -> None:
    presses, hold = _timeline(stack, walked)
    result = place_call(
        stack,
        to=walked.to,
        from_number=walked.number,
        dtmf_delay=0.0,
        dtmf_schedule=presses,
        hold=hold,
    )
    walked.answered, walked.detail = result.answered, result.detail


def walk_calls(stack: Settings, walks: list[Walked]) -> None:
    """Every walk called, CALLS_AT_ONCE at a time, then what Asterisk played on each is read
    from its log; the router's end of every call is waited for. The others start once the
    first plays its first prompt: by then the FastAGI server has read the remembered
    languages into memory (a read it bounds at 1 s; twelve callers at once, each reading them
    on a busy machine, may find the bound too short and start in Russian)."""
    log = stack.asterisk_dir / "log" / "full"
    agi_log = stack.log_dir / "agi.log"
    start, agi_start = log.stat().st_size, agi_log.stat().st_size

    def logged() -> list[str]:
        with log.open("rb") as full:
            full.seek(start)
            return full.read().decode(errors="replace").splitlines()

    first = walks[0].path.heard[0]
    try:
        with ThreadPoolExecutor(CALLS_AT_ONCE) as pool:
            calls = [pool.submit(_call, stack, walks[0])]
            wait_for(
                lambda: (
                    calls[0].done()
                    or any(f"/prompts/{first.language}/{first.prompt}." in x for x in logged())
                ),
                timeout=30,
                what=f"the first caller hearing {first}",
            )
            calls += [pool.submit(_call, stack, walked) for walked in walks[1:]]
            for done in calls:
                done.result()
        _attribute(logged(), walks)
        found = [p for walked in walks for p in problems(walked)]
        if found:
            with agi_log.open("rb") as agi:
                agi.seek(agi_start)
                gave_up = [
                    line
                    for line in agi.read().decode(errors="replace").splitlines()
                    if GAVE_UP.search(line)
                ]
            found += ["the FastAGI server meanwhile:", *gave_up[:20]]
        assert found == [], "\n".join(found)
    finally:
        _close_their_callbacks(stack, walks)


def _attribute(lines: list[str], walks: list[Walked]) -> None:
    """Each call's played files, by the Asterisk call id (C-…) of its "Hotline IVR" line."""
    by_number = {walked.number: walked for walked in walks}
    calls: dict[str, Walked] = {}
    for line in lines:
        tag = re.search(r"\[(C-[0-9a-f]+)\]", line)
        if tag is None:
            continue
        begins = re.search(r"Hotline IVR: (\+\d+)", line)
        if begins and tag.group(1) not in calls and begins.group(1) in by_number:
            calls[tag.group(1)] = by_number[begins.group(1)]
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


def _close_their_callbacks(stack: Settings, walks: list[Walked]) -> None:
    """The walk's callers waited in empty queues and hung up: each is a missed call on the
    callback list. Once the router has ended every call that reached the hotline, their
    entries are closed, so that no later test in the shared stack finds them due."""
    numbers = {w.number for w in walks}
    db = Database(stack.db_url)

    def open_calls() -> list[str]:
        with db.session() as session:
            return list(
                session.scalars(
                    select(Call.caller_number).where(
                        Call.caller_number.in_(numbers), Call.ended_at.is_(None)
                    )
                )
            )

    try:
        # Every call has hung up by now: the router ends each on its channel's Hangup event.
        wait_for(lambda: open_calls() == [], timeout=60, what="the router ending the walk's calls")
        with db.session() as session:
            session.execute(
                update(Callback)
                .where(Callback.caller_number.in_(numbers), Callback.status == CALLBACK_OPEN)
                .values(status=CALLBACK_CLOSED, closed_at=utcnow())
            )
    finally:
        db.dispose()


def _paths(business_hours: bool) -> list[KeypadPath]:
    flows = shipped_flows().current.flows
    return [
        path
        for language in LANGUAGES
        for path in keypad_paths(flows, "hotline", language, business_hours=business_hours)
    ]


@contextlib.contextmanager
def walkers(stack: Settings, flows: Path, paths: list[KeypadPath]) -> Iterator[list[Walked]]:
    """Each path with a fresh number; the FastAGI server running `flows`, restarted after the
    numbers of the paths that start in another language than Russian have that language."""
    english_first = sorted(paths, key=lambda p: p.start_language == "ru")
    walks = [
        Walked(p, n) for p, n in zip(english_first, fresh_numbers(stack, len(paths)), strict=True)
    ]

    def remembered_languages() -> None:
        db = Database(stack.db_url)
        try:
            with db.session() as session:
                for walked in walks:
                    if walked.path.start_language != "ru":
                        session.add(
                            CallerLanguage(
                                caller_number=walked.number,
                                language=walked.path.start_language,
                            )
                        )
        finally:
            db.dispose()

    with agi_running_flows(stack, flows, prepare=remembered_languages):
        yield walks


def test_every_keypad_path_by_day_in_ru_and_en(stack: Settings) -> None:
    paths = _paths(business_hours=True)
    # Every key of the day menu and of the emergency menu, in both languages, both ways round.
    assert {p.keys for p in paths} >= {"1", "6", "74", "0", "91", "974"}
    assert {p.start_language for p in paths} == set(LANGUAGES)
    with walkers(stack, PROJECT_ROOT / "ivr_flows", paths) as walks:
        walk_calls(stack, walks)


def test_every_keypad_path_at_night_in_ru_and_en(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """On a copy of ivr_flows/ closed every day (test_after_hours_e2e.py's calendar)."""
    paths = _paths(business_hours=False)
    assert {p.keys for p in paths} >= {"11", "14", "2", "3"}
    flows = tmp_path_factory.mktemp("night-walk") / "ivr_flows"
    shutil.copytree(PROJECT_ROOT / "ivr_flows", flows)
    (flows / "calendar.yaml").write_text(CLOSED, encoding="utf-8")
    with walkers(stack, flows, paths) as walks:
        walk_calls(stack, walks)
