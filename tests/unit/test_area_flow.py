"""The flow's `area` node and the incident node over the real AGI protocol (the fake Asterisk
of test_agi_protocol.py): a caller is placed by their open request's address or by a keyed
district code, hears only the incidents of their area, and an incident counts as heard only
once its prompt played."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from agi_scripts.flows.caller_areas import CallerAreas
from agi_scripts.flows.services import DbLookups, FlowServices
from agi_scripts.server import AgiServer
from call_router import areas
from call_router.db import Database
from call_router.flow_models import Incident
from call_router.flows.loader import FlowRegistry
from call_router.models import Call, CallEvent
from call_router.request_models import ServiceRequest
from call_router.settings import QUEUES, Settings
from tests.unit.conftest import started_agi
from tests.unit.test_agi_protocol import FakeAsterisk, event_kinds, run_call
from tests.unit.test_flow_engine import PROMPTS, prompt

CALLER = "+79161234567"  # the fake Asterisk's caller ID

AREA_FLOW = """\
start: area
nodes:
  area: {type: area, prompt: account, invalid_prompt: sorry, next: incidents}
  incidents: {type: incident, different_prompt: sorry, next: menu}
  menu:
    type: menu
    prompt: menu
    options: {1: {next: water}}
    on_failure: water
  water: {type: route, queue: plumbing, intent: water}
"""

CITY = b"""\
Irkutsk,Oktyabrsky,,,11
Irkutsk,Oktyabrsky,Lenina,14,
Irkutsk,Pravoberezhny,,,22
Irkutsk,Pravoberezhny,Karla Marksa,,
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        database_url=f"sqlite:///{tmp_path / 'calls.db'}",
        recordings_dir=tmp_path / "recordings",
        flows_dir=tmp_path / "flows",
        menu_timeout=1,
        menu_retries=1,
        default_language="ru",
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.db_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
async def server(settings: Settings, db: Database) -> AsyncIterator[AgiServer]:
    folder = settings.flows_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompts.yaml").write_text(PROMPTS, encoding="utf-8")
    (folder / "hotline.yaml").write_text(AREA_FLOW, encoding="utf-8")
    registry = FlowRegistry(folder, queues=QUEUES)
    assert registry.last_errors == [], registry.last_errors
    services = FlowServices(
        registry=registry, lookups=DbLookups(db, "RU"), areas=CallerAreas(db, "RU", ttl=0)
    )
    agi = await started_agi(settings, db, services)
    with db.session() as session:
        areas.import_rows(session, areas.parse_csv(CITY))
    yield agi
    await agi.stop(grace=1.0)


def add_incident(db: Database, *targets: str) -> int:
    with db.session() as session:
        incident = Incident(category="water", areas=list(targets), message={"en": "x"})
        session.add(incident)
        session.flush()
        return incident.id


def open_request(db: Database, street: str, house: str) -> None:
    now = datetime.now(UTC)
    with db.session() as session:
        session.add(
            ServiceRequest(
                category="water",
                street=street,
                house=house,
                caller_number=CALLER,
                state="new",
                sla_deadline=now + timedelta(days=1),
            )
        )


def announced(db: Database) -> list[int]:
    with db.session() as session:
        rows = session.scalars(select(CallEvent).where(CallEvent.kind == "incident_announced"))
        return [i for row in rows for i in row.data["incidents"]]


def area_step(db: Database) -> dict[str, object]:
    with db.session() as session:
        steps = [s for call in session.scalars(select(Call)) for s in call.timeline]
        return next(
            dict(s.data) for s in steps if s.kind == "flow_step" and s.data["node"] == "area"
        )


async def test_a_caller_placed_by_their_request_hears_their_districts_incident_only(
    server: AgiServer,
    db: Database,
) -> None:
    ours = add_incident(db, "irkutsk/oktyabrsky")
    theirs = add_incident(db, "irkutsk/pravoberezhny")
    city = add_incident(db)
    open_request(db, "ул. Lenina", "14")
    fake = FakeAsterisk(keys=[("1", False)])
    await run_call(server, fake)
    assert prompt(f"incident_{ours}") in fake.played
    assert prompt(f"incident_{theirs}") not in fake.played
    assert prompt("account") not in fake.played  # known: not asked
    assert sorted(announced(db)) == sorted([ours, city])
    step = area_step(db)
    assert (step["source"], step["area"]) == ("known", "irkutsk/oktyabrsky/lenina/14")


async def test_an_unknown_caller_keys_the_district_code(
    server: AgiServer,
    db: Database,
) -> None:
    ours = add_incident(db, "irkutsk/pravoberezhny")
    other = add_incident(db, "irkutsk/oktyabrsky/lenina")
    # A wrong code first: "no such district", asked again; then 22.
    fake = FakeAsterisk(keys=[("99", False), ("22#", False), ("", True), ("1", False)])
    await run_call(server, fake)
    assert fake.played[:4] == [
        prompt("account"),
        prompt("sorry"),
        prompt("account"),
        prompt(f"incident_{ours}"),
    ]
    assert prompt(f"incident_{other}") not in fake.played
    assert announced(db) == [ours]
    assert area_step(db)["source"] == "keypad"


async def test_nobody_is_asked_while_no_incident_targets_a_known_area(
    server: AgiServer,
    db: Database,
) -> None:
    label = add_incident(db, "Lenina 5")  # a free label: no code can name it, so no asking
    city = add_incident(db)
    fake = FakeAsterisk(keys=[("", True), ("1", False)])
    await run_call(server, fake)
    assert prompt("account") not in fake.played
    assert fake.played[0] == prompt(f"incident_{city}")
    assert prompt(f"incident_{label}") not in fake.played
    assert area_step(db)["source"] == "not_needed"


async def test_a_caller_who_hangs_up_during_the_announcement_has_not_heard_it(
    server: AgiServer,
    db: Database,
) -> None:
    add_incident(db)
    fake = FakeAsterisk(hangup_on=("STREAM FILE", 1))  # gone while it plays
    await run_call(server, fake)
    assert announced(db) == []
    assert event_kinds(db)["hangup_in_menu"]["node"] == "incidents"


async def test_an_announcement_with_no_recording_is_not_heard(
    server: AgiServer,
    db: Database,
) -> None:
    missing = add_incident(db)

    def no_file(cmd: str) -> list[str] | None:
        # Asterisk 22 answers -1 to STREAM FILE of a missing file on a live channel.
        return ["200 result=-1 endpos=0"] if f"incident_{missing}" in cmd else None

    fake = FakeAsterisk(keys=[("1", False)], override=no_file)
    await run_call(server, fake)
    assert announced(db) == []
    assert prompt("sorry") not in fake.played  # no "if yours is different" after nothing
