"""The built-in meter-readings flow (ivr_flows/meters.yaml) over the real AGI protocol, with
the fake Asterisk of test_agi_protocol.py and a real (SQLite) database: every path, and each
rejected value. The same flow through the real Asterisk: tests/integration/test_meters_e2e.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from call_router import channel_vars, payer_accounts
from call_router.db import Database
from call_router.flows.conditions import luhn_ok
from call_router.meter_models import MeterReading
from tests.unit import test_flow_engine as engine_tests
from tests.unit.test_agi_protocol import RECORDINGS, FakeAsterisk, environment, run_call
from tests.unit.test_flow_engine import Stack, event_kinds

# The flow-engine tests' fixtures: a temporary database and a FastAGI server per test.
settings = engine_tests.settings
stack = engine_tests.stack

PAYER = "79927398713"  # a valid Luhn code
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def meters_call(keys: list[str], *, caller: str = "+79161234567") -> FakeAsterisk:
    """A caller of the built-in hotline who presses 6 (meter readings), then `keys`."""
    said: list[str] = []

    def answer(cmd: str) -> list[str] | None:
        if cmd.startswith("SAY DIGITS "):
            said.append(cmd.split(" ")[2])
            return ["200 result=0"]
        if cmd == "HANGUP":
            return ["200 result=1", "HANGUP"]
        return None

    fake = FakeAsterisk(keys=[(k, False) for k in ["6", *keys]], override=answer)
    fake.said = said  # type: ignore[attr-defined]
    return fake


async def call(stack: Stack, when: datetime, keys: list[str], **kw: str) -> FakeAsterisk:
    server = await stack.serve(None, clock=at(when))
    fake = meters_call(keys, **kw)
    env = environment(agi_callerid=kw["caller"]) if "caller" in kw else None
    await run_call(server, fake, env)
    return fake


def readings(db: Database) -> list[tuple[str, int, str]]:
    with db.session() as session:
        rows = session.scalars(select(MeterReading).order_by(MeterReading.id)).all()
        return [(r.meter, r.value, r.status) for r in rows]


def prompt(name: str) -> str:
    return f"{RECORDINGS}/prompts/en/{name}"


async def test_a_reading_is_read_back_confirmed_and_stored(stack: Stack, db: Database) -> None:
    fake = await call(stack, T0, [PAYER, "1", "1", "00512", "1"])
    assert fake.said == ["00512"]  # type: ignore[attr-defined]  # digit by digit, as keyed
    assert prompt("meters_saved") in fake.played
    assert fake.commands[-1] == "HANGUP"
    assert channel_vars.QUEUE not in fake.set_vars  # self-service: no queue needed
    assert readings(db) == [("cold_water", 512, "active")]
    events = event_kinds(db)
    assert events["action"]["service"] == "meter_store"
    with db.session() as session:
        row = session.scalars(select(MeterReading)).one()
        assert (row.payer_code, row.caller_number, row.source) == (PAYER, "+79161234567", "phone")
        assert row.call_id is not None  # linked to the call


async def test_re_enter_after_hearing_it_read_back(stack: Stack, db: Database) -> None:
    await call(stack, T0, [PAYER, "2", "1", "700", "2", "701", "1"])
    assert readings(db) == [("hot_water", 701, "active")]


async def test_below_the_last_reading_is_refused_and_the_last_one_said(
    stack: Stack, db: Database
) -> None:
    await call(stack, T0, [PAYER, "1", "1", "500", "1"])
    fake = await call(stack, T0 + timedelta(days=30), [PAYER, "1", "1", "499", "510", "1"])
    assert prompt("meters_below_last") in fake.played
    assert fake.said == ["500", "510"]  # type: ignore[attr-defined]  # the last, then the new
    assert readings(db) == [("cold_water", 500, "active"), ("cold_water", 510, "active")]


async def test_implausible_growth_is_refused(stack: Stack, db: Database) -> None:
    await call(stack, T0, [PAYER, "3", "1", "100", "1"])
    # Heat: at most 10 units a month by default; 30 days later 200 is a typo, 105 is fine.
    fake = await call(stack, T0 + timedelta(days=30), [PAYER, "3", "1", "200", "105", "1"])
    assert prompt("meters_implausible") in fake.played
    assert readings(db) == [("heat", 100, "active"), ("heat", 105, "active")]
    assert event_kinds(db)["action"]["outcome"] == "ok"


async def test_a_wrong_payer_code_twice_goes_to_the_coordinator(stack: Stack, db: Database) -> None:
    # A wrong check digit, then one digit short (retries=1 in the test settings).
    fake = await call(stack, T0, ["79927398710", "7992739871"])
    assert fake.played.count(prompt("meters_payer_invalid")) == 1
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"
    assert readings(db) == []


async def test_junk_and_too_long_readings_are_asked_again(stack: Stack, db: Database) -> None:
    fake = await call(stack, T0, ["79927398710", PAYER, "1", "1", "*1*", "42", "1"])
    assert fake.played.count(prompt("meters_payer_invalid")) == 1
    assert fake.played.count(prompt("meters_digits_only")) == 1
    fake = await call(stack, T0, [PAYER, "2", "1", "1234567890", "43", "1"])
    assert fake.played.count(prompt("meters_digits_only")) == 1
    assert readings(db) == [("cold_water", 42, "active"), ("hot_water", 43, "active")]
    assert event_kinds(db)["collect_invalid"]["problem"] == "too_long"


async def test_silence_goes_to_the_coordinator(stack: Stack, db: Database) -> None:
    fake = await call(stack, T0, [])
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"
    assert fake.set_vars[channel_vars.INTENT] == "meters"


async def test_the_caller_corrects_their_last_reading(stack: Stack, db: Database) -> None:
    await call(stack, T0, [PAYER, "1", "1", "500", "1"])
    await call(stack, T0 + timedelta(days=30), [PAYER, "1", "1", "530", "1"])
    # 530 was a typo for 520: compared with 500 (the one before), not with 530.
    fake = await call(stack, T0 + timedelta(days=31), [PAYER, "1", "2", "520", "1"])
    assert fake.said == ["530", "520"]  # type: ignore[attr-defined]
    assert readings(db) == [
        ("cold_water", 500, "active"),
        ("cold_water", 530, "corrected"),
        ("cold_water", 520, "active"),
    ]
    with db.session() as session:
        old = session.scalars(select(MeterReading).where(MeterReading.value == 530)).one()
        assert old.replaced_by_id is not None


async def test_a_correction_below_the_reading_before_is_refused(stack: Stack, db: Database) -> None:
    await call(stack, T0, [PAYER, "1", "1", "500", "1"])
    await call(stack, T0 + timedelta(days=30), [PAYER, "1", "1", "530", "1"])
    fake = await call(stack, T0 + timedelta(days=31), [PAYER, "1", "2", "490", "525", "1"])
    assert prompt("meters_below_last") in fake.played
    assert [r for r in readings(db) if r[2] == "active"] == [
        ("cold_water", 500, "active"),
        ("cold_water", 525, "active"),
    ]


async def test_the_caller_deletes_their_last_reading(stack: Stack, db: Database) -> None:
    await call(stack, T0, [PAYER, "2", "1", "300", "1"])
    fake = await call(stack, T0 + timedelta(hours=2), [PAYER, "2", "3", "1"])
    assert prompt("meters_deleted") in fake.played
    assert readings(db) == [("hot_water", 300, "deleted")]


async def test_only_the_same_number_within_the_window_may_change_a_reading(
    stack: Stack, db: Database
) -> None:
    await call(stack, T0, [PAYER, "2", "1", "300", "1"])
    # Another number: nothing it may change (then it gives up: the coordinator).
    other = await call(stack, T0 + timedelta(hours=1), [PAYER, "2", "3"], caller="+79160000001")
    assert prompt("meters_nothing") in other.played
    # The same number, but after the three-day window.
    late = await call(stack, T0 + timedelta(days=4), [PAYER, "2", "3"])
    assert prompt("meters_nothing") in late.played
    anonymous = await call(stack, T0 + timedelta(hours=1), [PAYER, "2", "2"], caller="anonymous")
    assert prompt("meters_nothing") in anonymous.played
    assert readings(db) == [("hot_water", 300, "active")]


async def test_keeping_the_reading_changes_nothing(stack: Stack, db: Database) -> None:
    await call(stack, T0, [PAYER, "2", "1", "300", "1"])
    fake = await call(stack, T0 + timedelta(hours=2), [PAYER, "2", "3", "2"])
    assert prompt("meters_kept") in fake.played
    assert readings(db) == [("hot_water", 300, "active")]


# --- against billing's payer accounts (`hotline meters import`) ---------------------------

BILLING = (
    "payer_code,address,meter,serial,last_reading,last_read_on\n"
    f"{PAYER},Lenina 5-12,cold_water,CW-1,600,2026-10-25\n"
)


def import_billing(db: Database, text: str = BILLING) -> None:
    with db.session() as session:
        payer_accounts.import_accounts(session, payer_accounts.parse_csv(text.encode()), None)


def other_valid_code() -> str:
    """A code with a valid check digit that billing does not list."""
    return next(c for c in (f"4000000000{d}" for d in range(10)) if luhn_ok(c))


async def test_an_unknown_payer_code_is_asked_again_once_accounts_are_imported(
    stack: Stack, db: Database
) -> None:
    import_billing(db)
    fake = await call(stack, T0, [other_valid_code(), PAYER, "1", "1", "612", "1"])
    assert fake.played.count(prompt("meters_payer_unknown")) == 1
    assert prompt("meters_payer_invalid") not in fake.played  # the check digit was right
    assert readings(db) == [("cold_water", 612, "active")]


async def test_a_meter_the_account_does_not_have_is_refused_and_billing_is_the_baseline(
    stack: Stack, db: Database
) -> None:
    import_billing(db)
    # Hot water is not on the account; cold water is, and billing last read it at 600.
    fake = await call(stack, T0, [PAYER, "2", "1", "1", "590", "612", "1"])
    assert fake.played.count(prompt("meters_no_such_meter")) == 1
    assert prompt("meters_below_last") in fake.played
    assert fake.said == ["600", "612"]  # type: ignore[attr-defined]  # billing's, then the new
    assert readings(db) == [("cold_water", 612, "active")]


async def test_without_imported_accounts_any_code_and_meter_is_taken(
    stack: Stack, db: Database
) -> None:
    fake = await call(stack, T0, [other_valid_code(), "2", "1", "5", "1"])
    assert prompt("meters_payer_unknown") not in fake.played
    assert readings(db) == [("hot_water", 5, "active")]
