"""Service requests on the phone (issue 14): the caller's open requests read out before the
menu, the key that puts them through about it, and the automatic "is it fixed?" call (its
schedule: quiet hours, the dial-out plan, bounded retries; the resident's answer).

Over the real TCP AGI protocol against the fake Asterisk of test_agi_protocol.py, with the
repo's own ivr_flows and a real SQLite database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import structlog
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from agi_scripts.database_guard import THRESHOLD
from agi_scripts.flows.requests import CallerRequests
from agi_scripts.flows.services import DbLookups, FlowServices, TenantDirectory
from agi_scripts.server import AgiServer
from call_router import callback_policy as policy
from call_router import channel_vars, tenants
from call_router import request_feedback as feedback
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.callbacks import CallbackRules
from call_router.db import Database
from call_router.dial_plan import DialPlan
from call_router.flows.loader import FlowRegistry
from call_router.models import Call
from call_router.request_feedback_dialer import originate_fields, take_due
from call_router.settings import PROJECT_ROOT, QUEUES, Settings
from tests.unit import test_agi_protocol as protocol
from tests.unit.conftest import started_agi
from tests.unit.test_agi_protocol import (
    LINKEDID,
    RECORDINGS,
    FakeAsterisk,
    call_row,
    environment,
    event_kinds,
    run_call,
)

# The settings and database fixtures of the AGI protocol tests (default language ru).
settings = protocol.settings
CATEGORIES = life.load_categories()
CALLER = "+79161234567"  # the fake Asterisk's caller
MOSCOW = ZoneInfo("Europe/Moscow")
NOON = datetime(2026, 12, 7, 12, 0, tzinfo=MOSCOW).astimezone(UTC)
NIGHT = datetime(2026, 12, 7, 23, 30, tzinfo=MOSCOW).astimezone(UTC)


def prompt(name: str, lang: str = "en") -> str:
    return f"{RECORDINGS}/prompts/{lang}/{name}"


def saying(cmd: str) -> list[str] | None:
    """res_agi's answer to SAY DIGITS (spoken, no key) and HANGUP."""
    if cmd.startswith("SAY "):
        return ["200 result=0"]
    return ["200 result=1", "HANGUP"] if cmd == "HANGUP" else None


async def _requests_server(
    settings: Settings, db: Database, *, with_tenants: bool = False
) -> AgiServer:
    """The repo's flows over the fake Asterisk, the caller's requests read from `db` (and the
    companies, `with_tenants`)."""
    services = FlowServices(
        registry=FlowRegistry(PROJECT_ROOT / "ivr_flows", queues=QUEUES),
        lookups=DbLookups(db, "RU"),
        numbers={"gas_emergency_number": "104"},
        requests=CallerRequests(db, "RU", ttl=0),
        tenants=TenantDirectory(db, "RU", ttl=0.0) if with_tenants else None,
    )
    return await started_agi(settings, db, services)


@pytest.fixture
async def server(settings: Settings, db: Database) -> AsyncIterator[AgiServer]:
    agi = await _requests_server(settings, db)
    yield agi
    await agi.stop(grace=1.0)


def rules(quiet: tuple[str, str] = ("21:00", "09:00"), **kw: object) -> CallbackRules:
    return CallbackRules(
        deadlines={},
        frost_months=frozenset(),
        quiet=policy.QuietHours.parse(*quiet, MOSCOW),
        claim_timeout=600,
        max_attempts=int(kw.get("max_attempts", 3)),  # type: ignore[call-overload]
        retry_delays=(900, 3600),
        country="RU",
        dial_plan=DialPlan.national("RU"),
    )


def make_request(
    db: Database, *, caller: str = CALLER, state: str | None = None, house: str = "5"
) -> str:
    with db.session() as session:
        created = store.create_request(
            session,
            store.NewRequest(
                category="heating",
                street="Lenina St",
                house=house,
                caller_number=caller,
                source="phone",
            ),
            categories=CATEGORIES,
            actor="op1",
            now=NOON - timedelta(days=1),
        )
        number = created.request.number
        path = {
            life.ON_THE_WAY: [life.ASSIGNED, life.ON_THE_WAY],
            life.DONE: [life.ASSIGNED, life.IN_PROGRESS, life.DONE],
        }.get(state or "", [])
        for step in path:
            store.change_state(session, number, step, actor="crew", now=NOON - timedelta(hours=1))
        return number


# --- the status before the menu ---------------------------------------------------------


async def test_a_caller_with_an_open_request_hears_its_status_before_the_menu(
    server: AgiServer, db: Database
) -> None:
    number = make_request(db, state=life.ON_THE_WAY)
    fake = FakeAsterisk(keys=[("", True), ("3", False)], override=saying)
    await run_call(server, fake)
    start = fake.played.index(prompt("request_yours"))
    assert fake.played[start : start + 4] == [
        prompt("request_yours"),
        prompt("request_about_heating"),
        prompt("request_state_on_the_way"),
        prompt("request_talk"),
    ]
    assert f'SAY DIGITS {number} "1"' in fake.commands
    # No key: on to the menu as usual.
    assert fake.played[start + 4] == prompt("menu")
    assert fake.set_vars[channel_vars.QUEUE] == "heating"
    status = event_kinds(db)["request_status"]
    assert status["requests"] == [number] and status["states"] == [life.ON_THE_WAY]


async def test_pressing_1_puts_the_caller_through_about_it_with_the_request_linked(
    server: AgiServer, db: Database
) -> None:
    make_request(db, house="7")  # older: read second
    number = make_request(db, state=life.ON_THE_WAY)
    fake = FakeAsterisk(keys=[("1", False)], override=saying)
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "heating"
    assert fake.set_vars[channel_vars.INTENT] == "service_request"
    assert prompt("menu") not in fake.played
    with db.session() as session:
        request = store.get_request(session, number)
        linked = [link.call_id for link in request.calls]
        assert len(linked) == 1
        assert request.events[-1].action == "call_linked"


async def test_a_caller_without_open_requests_goes_straight_to_the_menu(
    server: AgiServer, db: Database
) -> None:
    make_request(db, caller="+79160000000")  # someone else's
    make_request(db, state=life.DONE, house="9")  # the caller's, but done: not open
    fake = FakeAsterisk(keys=[("3", False)], override=saying)
    await run_call(server, fake)
    assert prompt("request_yours") not in fake.played
    assert fake.set_vars[channel_vars.QUEUE] == "heating"
    assert "request_status" not in event_kinds(db)


# --- the "is it fixed?" call: the answer -------------------------------------------------------


def feedback_env(number: str) -> dict[str, str]:
    return environment(
        agi_network_script="request_feedback",
        agi_request=f"agi://127.0.0.1:4573/request_feedback,{number}",
        agi_arg_1=number,
        agi_arg_2=RECORDINGS,
        agi_context="request-feedback",
    )


async def test_pressing_2_on_the_feedback_call_reopens_the_request(
    server: AgiServer, db: Database
) -> None:
    number = make_request(db, state=life.DONE)
    fake = FakeAsterisk(keys=[("2", False)], override=saying)
    fake.variables["CHANNEL(language)"] = "ru"
    await run_call(server, fake, feedback_env(number))
    assert fake.played == [
        prompt("feedback_intro", "ru"),
        prompt("feedback_question", "ru"),
        prompt("feedback_reopened", "ru"),
    ]
    assert f'SAY DIGITS {number} "12"' in fake.commands
    with db.session() as session:
        request = store.get_request(session, number)
        assert request.state == life.NEW
        assert request.feedback_score == 2 and request.feedback_due_at is None
        last = request.events[-1]
        assert (last.from_state, last.to_state, last.actor) == (
            life.DONE,
            life.NEW,
            feedback.ACTOR,
        )


async def test_pressing_1_confirms_and_silence_changes_nothing(
    server: AgiServer, db: Database
) -> None:
    solved = make_request(db, state=life.DONE)
    fake = FakeAsterisk(keys=[("1", False)], override=saying)
    await run_call(server, fake, feedback_env(solved))
    silent = make_request(db, state=life.DONE, house="11")
    quiet = FakeAsterisk(keys=[], override=saying)
    await run_call(server, quiet, feedback_env(silent))
    assert quiet.played[-1] == prompt("feedback_later", "ru")
    with db.session() as session:
        first = store.get_request(session, solved)
        assert (first.state, first.feedback_score) == (life.CLOSED, 1)
        second = store.get_request(session, silent)
        assert (second.state, second.feedback_score) == (life.DONE, None)


async def test_the_answer_goes_on_the_feedback_call_s_row_in_the_call_log(
    server: AgiServer, db: Database
) -> None:
    # The dialer's try wrote the row (its linkedid is the channel's): the key's answer, or
    # silence, goes on its timeline.
    answers, numbers = {}, {}
    for house, keys in (("5", [("1", False)]), ("11", [])):
        number = numbers[house] = make_request(db, state=life.DONE, house=house)
        (attempt,) = take_due(db, rules(), NOON)
        fake = FakeAsterisk(keys=keys, override=saying)
        fake.variables["CHANNEL(linkedid)"] = str(attempt.linkedid)
        await run_call(server, fake, feedback_env(number))
        with db.session() as session:
            call = session.scalars(select(Call).where(Call.linkedid == attempt.linkedid)).one()
            (noted,) = [e.data for e in call.events if e.kind == "feedback_answer"]
            answers[house] = (noted["answer"], noted["request"])
            assert (call.direction, call.ended_at) == ("feedback", None)  # the Hangup ends it
    assert answers == {"5": ("solved", numbers["5"]), "11": ("no_answer", numbers["11"])}


async def test_a_feedback_call_while_reads_are_stopped_asks_no_database_yet_records_the_key(
    settings: Settings, db: Database
) -> None:
    # The menu's reads stopped (the database failed three in a row, database_guard.py): the
    # resident who answers the "is it fixed?" call hears the default language at once instead
    # of a read's timeout in silence; the key is still recorded (an action is always tried).
    # Before, this call read with threads of its own, whatever the guard knew.
    desk = CallerRequests(db, "RU", ttl=0)
    asked: list[str] = []
    feedback_caller = desk.feedback_caller

    def counted(number: str) -> str | None:
        asked.append(number)
        return feedback_caller(number)

    desk.feedback_caller = counted  # type: ignore[method-assign]
    services = FlowServices(
        registry=FlowRegistry(PROJECT_ROOT / "ivr_flows", queues=QUEUES),
        lookups=DbLookups(db, "RU"),
        requests=desk,
    )

    def refused() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database is away"))

    log = structlog.get_logger("test")
    for _ in range(THRESHOLD):
        assert await services.database.read(log, "probe", refused, timeout=1.0) is None
    assert services.database.away
    number = make_request(db, state=life.DONE)
    agi = await started_agi(settings, db, services)
    try:
        fake = FakeAsterisk(keys=[("2", False)], override=saying)
        await run_call(agi, fake, feedback_env(number))
    finally:
        await agi.stop(grace=1.0)
    assert asked == []
    assert fake.played[0] == prompt("feedback_intro", "ru")
    assert fake.played[-1] == prompt("feedback_reopened", "ru")
    with db.session() as session:
        assert store.get_request(session, number).feedback_score == 2


async def test_a_key_for_a_request_no_longer_done_changes_nothing_and_is_no_failure(
    server: AgiServer, db: Database
) -> None:
    # An operator moved the request on while the "is it fixed?" call rang: the key is refused
    # (the request is not done), which is no database failure to log with a traceback.
    number = make_request(db, state=life.ON_THE_WAY)
    fake = FakeAsterisk(keys=[("1", False)], override=saying)
    with capture_logs() as logs:
        await run_call(server, fake, feedback_env(number))
    assert fake.played[-1] == prompt("feedback_later", "ru")
    assert [e["event"] for e in logs if e.get("log_level") in ("warning", "error")] == [
        "feedback_not_recorded"
    ]
    with db.session() as session:
        request = store.get_request(session, number)
        assert (request.state, request.feedback_score) == (life.ON_THE_WAY, None)


async def test_a_feedback_call_for_no_request_hangs_up(server: AgiServer) -> None:
    fake = FakeAsterisk(override=saying)
    await run_call(server, fake, feedback_env("12a"))
    assert fake.played == [] and "HANGUP" in fake.commands


# --- the "is it fixed?" call: when it is placed -------------------------------------------------


def test_done_schedules_the_call_and_quiet_hours_hold_it(db: Database) -> None:
    number = make_request(db, state=life.DONE)
    with db.session() as session:
        assert store.get_request(session, number).feedback_due_at is not None
        assert feedback.due(session, NIGHT, rules()) == []
        assert [r.number for r in feedback.due(session, NOON, rules())] == [number]


def test_retries_are_bounded_and_never_at_night(db: Database) -> None:
    number = make_request(db, state=life.DONE)
    two = rules(max_attempts=2)
    evening = datetime(2026, 12, 7, 20, 50, tzinfo=MOSCOW).astimezone(UTC)
    first = take_due(db, two, evening)
    assert [(a.number, a.attempt, a.last, a.phone) for a in first] == [(number, 1, False, CALLER)]
    with db.session() as session:
        due_at = store.get_request(session, number).feedback_due_at
    # 15 minutes later would be 21:05, in quiet hours: the next morning instead.
    assert due_at == datetime(2026, 12, 8, 9, 0, tzinfo=MOSCOW)
    assert take_due(db, two, evening + timedelta(hours=1)) == []
    second = take_due(db, two, due_at)
    assert [(a.attempt, a.last) for a in second] == [(2, True)]
    with db.session() as session:
        request = store.get_request(session, number)
        assert request.feedback_due_at is None and request.feedback_attempts == 2
    assert take_due(db, two, due_at + timedelta(days=1)) == []


def test_a_number_outside_the_dial_out_plan_is_never_called(db: Database) -> None:
    number = make_request(db, state=life.DONE, caller="+442079460000")
    assert take_due(db, rules(), NOON) == []
    with db.session() as session:
        request = store.get_request(session, number)
        assert request.feedback_due_at is None
        assert request.events[-1].action == "feedback_skipped"


def test_leaving_done_otherwise_cancels_the_call(db: Database) -> None:
    number = make_request(db, state=life.DONE)
    with db.session() as session:
        store.change_state(session, number, life.CLOSED, actor="dispatcher", now=NOON)
    assert take_due(db, rules(), NOON) == []


def test_the_originate_goes_through_the_dialplans_checks(settings: Settings) -> None:
    attempt = feedback.Attempt("1001", CALLER, 1, False)
    fields = originate_fields(settings, attempt)
    assert fields["Channel"] == "Local/dial@request-feedback-out"
    assert (fields["Context"], fields["Exten"]) == ("request-feedback", "s")
    assert f"HOTLINE_FEEDBACK_NUMBER={CALLER}" in fields["Variable"]
    assert "HOTLINE_FEEDBACK_REQUEST=1001" in fields["Variable"]


def test_a_bad_key_or_a_request_not_done_is_refused(db: Database) -> None:
    number = make_request(db)
    with db.session() as session:
        with pytest.raises(store.RequestError) as bad:
            feedback.record_answer(session, number, "3")
        assert bad.value.code == "invalid"
        with pytest.raises(store.RequestError) as state:
            feedback.record_answer(session, number, "1")
        assert state.value.code == "state"


class UnansweredLink:
    """The AMI link's answer when the resident's phone only rang (OriginateResponse reason 3)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []

    async def connect(self) -> str:
        return "127.0.0.1"  # one box: the call's row names no node

    async def originate(self, fields: dict[str, object], timeout: float) -> dict[str, str]:
        self.sent.append(fields)
        return {"Response": "Failure", "Reason": "3", "ActionID": str(fields["ActionID"])}


async def test_a_try_nobody_answers_is_noted_and_the_next_one_stays_scheduled(
    settings: Settings, db: Database
) -> None:
    from call_router.request_feedback_dialer import place

    number = make_request(db, state=life.DONE)
    (attempt,) = take_due(db, rules(), NOON)
    link = UnansweredLink()
    assert await place(settings, db, link, attempt) is False  # type: ignore[arg-type]
    assert [f["ActionID"] for f in link.sent] == [f"hotline-feedback-{number}-1"]
    # The try's call-log row is the Originate's channel, ended as not answered.
    assert [f["ChannelId"] for f in link.sent] == [attempt.linkedid]
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.linkedid == attempt.linkedid)).one()
        assert (call.direction, call.outcome) == ("feedback", "feedback_no_answer")
        assert call.ended_at is not None
    with db.session() as session:
        request = store.get_request(session, number)
        assert request.events[-1].action == "feedback_no_answer"
        assert request.feedback_due_at == NOON + timedelta(seconds=900)
        assert request.state == life.DONE


def test_a_caller_s_open_requests_are_found_whatever_the_spelling_of_the_number(
    db: Database,
) -> None:
    number = make_request(db, caller="8 (916) 123-45-67")  # stored as +79161234567
    desk = CallerRequests(db, "RU", ttl=600)  # read once, then from memory
    for spelling in ("+79161234567", "89161234567", "+7 916 123-45-67", "0079161234567"):
        assert [r.number for r in desk.open_requests(spelling)] == [number], spelling
    assert desk.open_requests("+79161234568") == []
    assert desk.open_requests("anonymous") == []


@pytest.fixture
async def tenant_server(settings: Settings, db: Database) -> AsyncIterator[AgiServer]:
    """`server`, with the companies (tenants) of the database."""
    agi = await _requests_server(settings, db, with_tenants=True)
    yield agi
    await agi.stop(grace=1.0)


async def test_another_companys_request_is_neither_read_out_nor_a_way_into_its_queues(
    tenant_server: AgiServer, db: Database
) -> None:
    # Found by a tenant review (2026-12-06): the phone has an open request with Dom A and calls
    # Dom B's own number; B's call heard A's request, logged it, and the key put it into A's
    # own queue (A's operators answering B's caller).
    with db.session() as session:
        a = tenants.add_tenant(session, "Dom A", slug="dom-a").id
        b = tenants.add_tenant(session, "Dom B", slug="dom-b").id
        tenants.set_tenant_queues(session, "dom-a", ["heating"])
        tenants.add_number(session, "520002", "dom-b")
        theirs = store.create_request(
            session,
            store.NewRequest(category="heating", street="Lenina", house="5", caller_number=CALLER),
            categories=CATEGORIES,
            actor="op",
            tenant_id=a,
            now=NOON - timedelta(days=1),
        ).request.number
    fake = FakeAsterisk(keys=[("1", False)], override=saying)
    await run_call(tenant_server, fake, environment(agi_dnid="520002"))
    call = call_row(db, LINKEDID)
    assert call is not None and call.tenant_id == b
    assert prompt("request_yours") not in fake.played
    assert not any(theirs in command for command in fake.commands)
    assert "request_status" not in event_kinds(db)
    assert fake.set_vars[channel_vars.QUEUE] != f"t{a}_heating"
