"""Meter readings by phone through the real Asterisk: the built-in `hotline` flow, key 6, then
ivr_flows/meters.yaml; SIPp is the resident's phone and keys in the digits as RFC 4733 events.

Each key is timed to land while its node is listening: a node listens from the start of its
prompt until its timeout after the prompt ends (HOTLINE_MENU_TIMEOUT, 5 s), so keys are spaced
by at least the prompt plus a margin, never by guesses about processing time. The read-back
nodes hand a key pressed during them to the confirmation menu, so "1" may come early.

A whole reading keyed in by an English and a Russian caller at once (issue 16, "language
everywhere") is timed from the prompt files' lengths instead, with the keypad walk's helpers
(test_keypad_walk_e2e.py), which also check in Asterisk's log that every prompt played is in the
caller's language and none is missing; here also the numbers read back digit by digit. So
are a correction (one read-back rejected and keyed again), on the direct meters number, and a
deletion, by the hotline menu: four callers at once, two of them English.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from call_router import meter_store
from call_router.db import Database
from call_router.flows.conditions import luhn_ok
from call_router.flows.keypad_paths import Heard, KeypadPath, KeyPress, keypad_paths
from call_router.meter_models import PayerAccount, PayerMeter
from call_router.models import utcnow
from call_router.settings import PROJECT_ROOT, Settings
from hotline.sipua.testcall import CallResult, place_call
from tests.conftest import finished_call, run_hotline, wait_for
from tests.integration.test_keypad_walk_e2e import (
    LANGUAGES,
    PROMPT_FILE,
    Walked,
    shipped_flows,
    walk_calls,
    walkers,
)
from tests.integration.test_prompt_languages_e2e import has_stock_sound

pytestmark = pytest.mark.asterisk


def new_payer() -> str:
    """A payer code of our own (11 digits, valid check digit), unique per test."""
    body = f"7{uuid.uuid4().int % 10**9:09d}"
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def history(payer: str) -> list[dict[str, Any]]:
    out = run_hotline("meters", "history", "--payer", payer, "--json").stdout
    rows: list[dict[str, Any]] = json.loads(out.strip().splitlines()[-1])
    return rows


def timeline(api: httpx.Client, call: dict[str, Any]) -> list[tuple[str, Any]]:
    detail = api.get(f"/api/calls/{call['id']}").json()
    return [(e["kind"], e["data"]) for e in detail["events"]]


def actions(api: httpx.Client, call: dict[str, Any]) -> list[tuple[str, str]]:
    return [(d["service"], d["outcome"]) for k, d in timeline(api, call) if k == "action"]


# With no payer accounts imported, every code with a valid check digit is taken, and any meter.
UNCHECKED = [("payer_check", "ok"), ("meter_on_account", "ok")]


# Seconds after the caller's media starts (2 s after the answer). The Russian prompts:
# greeting 4.3 s, payer 3.3, meter 5.2, task 8.6, reading 4.2, "last was" 3.4 + digits,
# "much higher" 4.3, "you entered" 0.8 + digits, confirm 4.2.
KEY_6 = (0.5, "6")  # during the greeting: handed to the menu, which leads into meters.yaml
# A whole reading keyed in: the payer code, the meter, the task, the reading 512, confirmed.
READING_512 = [KEY_6, (2.5, "{payer}#"), (9.5, "1"), (13.0, "1"), (16.0, "512#"), (21.0, "1")]


def key_in_reading(stack: Settings, caller: str, payer: str) -> CallResult:
    """`caller` phones in the reading 512 for `payer` (READING_512) and hangs up."""
    schedule = [(at, keys.format(payer=payer)) for at, keys in READING_512]
    return place_call(stack, from_number=caller, hold=40, dtmf_schedule=schedule)


def test_a_reading_is_keyed_in_read_back_confirmed_and_stored(
    stack: Settings, api: httpx.Client
) -> None:
    payer, caller = new_payer(), "+74956660001"
    result = key_in_reading(stack, caller, payer)
    assert result.answered, result.detail
    call = finished_call(api, caller)
    assert actions(api, call) == [*UNCHECKED, ("meter_check", "ok"), ("meter_store", "ok")], (
        timeline(api, call)
    )
    rows = history(payer)
    assert [(r["meter"], r["value"], r["status"], r["caller"]) for r in rows] == [
        ("cold_water", 512, "active", caller)
    ]
    assert rows[0]["call_id"] == call["id"]  # linked to the call

    # The same caller again: lower than 512, then far too high, then right.
    result = place_call(
        stack,
        from_number=caller,
        hold=60,
        dtmf_schedule=[KEY_6, (2.5, payer + "#"), (9.5, "1"), (13.0, "1"), (16.0, "500#"),
                       (26.0, "99999#"), (35.0, "530#"), (40.0, "1")],
    )  # fmt: skip
    assert result.answered, result.detail
    call = finished_call(api, caller)
    assert actions(api, call) == [
        *UNCHECKED,
        ("meter_check", "below_last"),
        ("meter_check", "implausible_growth"),
        ("meter_check", "ok"),
        ("meter_store", "ok"),
    ], timeline(api, call)
    assert [(r["value"], r["status"]) for r in history(payer)] == [
        (530, "active"),
        (512, "active"),
    ]

    # And deletes it again: the last reading this number gave, said before it goes.
    result = place_call(
        stack,
        from_number=caller,
        hold=30,
        dtmf_schedule=[KEY_6, (2.5, payer + "#"), (9.5, "1"), (13.0, "3"), (17.0, "1")],
    )
    assert result.answered, result.detail
    call = finished_call(api, caller)
    assert actions(api, call) == [*UNCHECKED, ("meter_last", "found"), ("meter_delete", "ok")], (
        timeline(api, call)
    )
    assert [(r["value"], r["status"]) for r in history(payer)] == [
        (530, "deleted"),
        (512, "active"),
    ]


def test_the_direct_number_goes_straight_to_meter_readings(
    stack: Settings, api: httpx.Client
) -> None:
    """HOTLINE_METERS_NUMBER (500106 in the test stack) skips the hotline menu."""
    assert stack.meters_number
    caller = "+74956660009"
    result = place_call(stack, to=stack.meters_number, from_number=caller, hold=6)
    assert result.answered, result.detail
    call = finished_call(api, caller)
    # The caller hangs up while asked for the payer code: the meters flow's first node.
    left = wait_for(
        lambda: dict(timeline(api, call)).get("hangup_in_menu"),
        what="the hang-up in the menu on the call's timeline",
    )
    assert (left["flow"], left["node"]) == ("meters", "payer"), timeline(api, call)
    assert call["outcome"] == "abandoned_in_menu"


def test_once_billing_accounts_are_imported_an_unknown_code_is_asked_again(
    stack: Settings, api: httpx.Client, tmp_path: Path
) -> None:
    payer, stranger, caller = new_payer(), new_payer(), "+74956660003"
    billing = tmp_path / "billing.csv"
    billing.write_text(f"{payer},Lenina 5,cold_water,,,\n", encoding="utf-8")
    run_hotline("meters", "import", str(billing))
    try:
        # A code with a right check digit that billing does not know; then the caller hangs up.
        result = place_call(
            stack, from_number=caller, hold=16, dtmf_schedule=[KEY_6, (2.5, stranger + "#")]
        )
        assert result.answered, result.detail
        call = finished_call(api, caller)
        # The FastAGI server writes the hang-up in the menu after it sees the hang-up, which
        # may be after the router has closed the call's row: wait for it, not for the row.
        left = wait_for(
            lambda: dict(timeline(api, call)).get("hangup_in_menu"),
            what="the hang-up in the menu on the call's timeline",
        )
        assert actions(api, call) == [("payer_check", "unknown")], timeline(api, call)
        assert left["node"] == "payer", timeline(api, call)  # asked for a code again
        assert history(stranger) == []
    finally:
        # The stack's database is shared: other tests' payer codes are not billing's.
        db = Database(stack.db_url)
        try:
            with db.session() as session:
                mine = select(PayerAccount.id).where(PayerAccount.code == payer)
                session.execute(delete(PayerMeter).where(PayerMeter.account_id.in_(mine)))
                session.execute(delete(PayerAccount).where(PayerAccount.code == payer))
        finally:
            db.dispose()


# After the hotline menu's key 6 (meters_payer asks for the code): (prompt, keys pressed while it
# plays, digits Asterisk says after it). The reading 500 is below the last one (512): said back
# as "the last reading was 5 1 2"; then 530, said back as "you entered 5 3 0", and confirmed.
WHOLE_READING = [
    ("meters_payer", "{payer}#", ""),
    ("meters_which", "1", ""),
    ("meters_task", "1", ""),
    ("meters_enter", "500#", ""),
    ("meters_below_last", "", "512"),
    ("meters_enter", "530#", ""),
    ("meters_you_entered", "", "530"),
    ("meters_confirm", "1", ""),
    ("meters_saved", "", ""),
]
# Asterisk's digits are at most 0.92 s long (en), 0.66 s (ru): keys after them wait this long.
DIGIT_SECONDS = 1.0


Step = tuple[str, str, str]


def meters_path(
    language: str, payer: str, steps: list[Step], end: str, *, direct: bool = False
) -> tuple[KeypadPath, dict[int, float]]:
    """A caller starting in `language` presses 6 in the hotline menu (or, `direct`, dials the
    meters number), then walks `steps` for `payer` to the node `end`: the path, and the seconds
    of digits said after its prompts."""
    presses: tuple[KeyPress, ...] = ()
    heard: tuple[Heard, ...] = ()
    if not direct:
        (menu,) = [
            p
            for p in keypad_paths(shipped_flows().current.flows, "hotline", language)
            if p.keys == "6" and p.end == "meters:payer"
        ]
        assert menu.heard[-1] == Heard(steps[0][0], language)
        presses, heard = menu.presses, menu.heard[:-1]
    first = len(heard)
    heard += tuple(Heard(prompt, language) for prompt, _, _ in steps)
    presses += tuple(
        KeyPress(keys.format(payer=payer), heard[first + i], first + i)
        for i, (_, keys, _) in enumerate(steps)
        if keys
    )
    spoken = {first + i: len(said) * DIGIT_SECONDS for i, (_, _, said) in enumerate(steps)}
    return KeypadPath(language, presses, heard, f"meters:{end}", language), spoken


def reading_path(language: str, payer: str) -> tuple[KeypadPath, dict[int, float]]:
    """A caller starting in `language` presses 6 in the hotline menu, then keys in WHOLE_READING
    for `payer`: the path, and the seconds of digits said after its prompts."""
    return meters_path(language, payer, WHOLE_READING, "saved")


def their_sounds(stack: Settings, walked: Walked) -> tuple[str, list[str]]:
    """The digits Asterisk said on the walked call, in order, and those of its own sounds it
    played that are not in the caller's language folder (played in English instead)."""
    language = walked.path.start_language
    theirs = [file.rsplit(".", 1)[0] for file, _ in walked.played if not PROMPT_FILE.search(file)]
    said = "".join(name.removeprefix("digits/") for name in theirs if "digits/" in name)
    absent = [name for name in theirs if not has_stock_sound(stack, language, name)]
    return said, absent


def test_a_whole_reading_in_english_and_in_russian_plays_only_that_language(
    stack: Settings,
) -> None:
    """An English caller (their language remembered from an earlier call) and a Russian one
    each key in a whole reading at the same time. Asterisk's log: every prompt of the path
    played, from the caller's language folder, and the digits said back (the last reading,
    then the new one) in the caller's language, from its folder."""
    payers = {language: new_payer() for language in LANGUAGES}
    paths = {language: reading_path(language, payers[language]) for language in LANGUAGES}
    for payer in payers.values():
        run_hotline("meters", "add", "--payer", payer, "--meter", "cold_water", "512")
    with walkers(stack, PROJECT_ROOT / "ivr_flows", [p for p, _ in paths.values()]) as walks:
        for walked in walks:
            walked.spoken = paths[walked.path.start_language][1]
        walk_calls(stack, walks)  # fails on a prompt of ours missing or in another language
    for walked in walks:
        language = walked.path.start_language
        said, absent = their_sounds(stack, walked)
        assert said == "512530", (walked.number, walked.played)
        assert absent == [], f"{language}: Asterisk's sounds not in {language!r}: {absent}"
        rows = history(payers[language])
        assert [(r["value"], r["caller"]) for r in rows] == [
            (530, walked.number),
            (512, None),
        ]


# The caller phoned in 530 (after billing's 512) and corrects it, on the direct meters number:
# 500 is below the reading before theirs ("the last reading was 5 1 2"); 520 is read back and
# rejected ("enter it again", key 2); 525 is read back and confirmed.
CORRECTION = [
    ("meters_payer", "{payer}#", ""),
    ("meters_which", "1", ""),
    ("meters_task", "2", ""),
    ("meters_your_last", "", "530"),
    ("meters_enter_corrected", "500#", ""),
    ("meters_below_last", "", "512"),
    ("meters_enter_corrected", "520#", ""),
    ("meters_you_entered", "", "520"),
    ("meters_confirm", "2", ""),
    ("meters_enter_corrected", "525#", ""),
    ("meters_you_entered", "", "525"),
    ("meters_confirm", "1", ""),
    ("meters_saved", "", ""),
]
# Another caller, by key 6 of the hotline menu, deletes the 530 they phoned in.
DELETION = [
    ("meters_payer", "{payer}#", ""),
    ("meters_which", "1", ""),
    ("meters_task", "3", ""),
    ("meters_your_last", "", "530"),
    ("meters_delete_confirm", "1", ""),
    ("meters_deleted", "", ""),
]


def phoned_in(stack: Settings, payer: str, caller: str) -> None:
    """Billing's 512 for `payer`'s cold water, then 530 phoned in from `caller` just now."""
    db = Database(stack.db_url)
    try:
        with db.session() as session:
            for value, source, number in (("512", "cli", None), ("530", "phone", caller)):
                stored = meter_store.submit(
                    session, payer, "cold_water", value, utcnow(), source=source,
                    caller_number=number,
                )  # fmt: skip
                assert stored.reading_id is not None, stored.check
    finally:
        db.dispose()


def test_correcting_and_deleting_a_reading_in_english_and_in_russian(stack: Settings) -> None:
    """An English caller (their language remembered) and a Russian one each correct a reading
    they phoned in (on the direct meters number: the longer path skips the hotline menu),
    rejecting one read-back, and another pair deletes one (by the hotline menu), all four at
    the same time. Asterisk's log: every prompt of each path played, from the caller's language
    folder, and the digits said in it, in the caller's language, from its folder. What
    `hotline meters history` shows: the corrected reading replaced, the deleted one deleted."""
    assert stack.meters_number
    plans: dict[KeypadPath, tuple[dict[int, float], str, str]] = {}  # spoken, kind, payer
    for language in LANGUAGES:
        for kind, steps, end in (("correct", CORRECTION, "saved"), ("delete", DELETION, "deleted")):
            payer = new_payer()
            path, spoken = meters_path(language, payer, steps, end, direct=kind == "correct")
            plans[path] = (spoken, kind, payer)
    with walkers(stack, PROJECT_ROOT / "ivr_flows", list(plans)) as walks:
        for walked in walks:
            walked.spoken, kind, payer = plans[walked.path]
            if kind == "correct":
                walked.to = stack.meters_number
            phoned_in(stack, payer, walked.number)
        walk_calls(stack, walks)  # fails on a prompt of ours missing or in another language
    for walked in walks:
        language = walked.path.start_language
        _, kind, payer = plans[walked.path]
        said, absent = their_sounds(stack, walked)
        assert absent == [], f"{language}: Asterisk's sounds not in {language!r}: {absent}"
        rows = [(r["value"], r["status"], r["caller"]) for r in history(payer)]
        if kind == "correct":
            assert said == "530512520525", (walked.number, walked.played)
            assert rows == [
                (525, "active", walked.number),
                (530, "corrected", walked.number),
                (512, "active", None),
            ], language
        else:
            assert said == "530", (walked.number, walked.played)
            assert rows == [(530, "deleted", walked.number), (512, "active", None)], language
