"""The `company` node and the decision before the menu, over the real TCP AGI protocol against
the fake Asterisk: which company a call is for, set on the channel before the route, and the
caller's keys and caller ID treated as hostile."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from agi_scripts.flows.services import DbLookups, FlowServices, TenantDirectory
from agi_scripts.server import AgiServer, RouteRegistry, build_app
from call_router import buildings, channel_vars, tenants
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.flows.loader import FlowRegistry
from call_router.models import Call
from call_router.settings import QUEUES, Settings
from tests.unit.conftest import menu_settings
from tests.unit.test_agi_protocol import LINKEDID, FakeAsterisk, environment, event_kinds, run_call
from tests.unit.test_flow_engine import PROMPTS

CENTRE_NUMBER = "500200"
A_NUMBER = "510001"

COMPANY_FLOW = """\
start: company
nodes:
  company: {type: company, code_var: code, ask: code, next: menu, on_failure: coordinator}
  code:
    type: collect
    prompt: account
    var: code
    max_length: 8
    retries: 1
    invalid_prompt: sorry
    next: said
    on_failure: coordinator
  said: {type: say, var: code, keys_to: confirm, next: confirm}
  confirm:
    type: menu
    prompt: confirm
    options:
      1: {next: company}
      2: {next: code}
    on_failure: coordinator
  menu:
    type: menu
    prompt: menu
    options:
      1: {next: water}
    on_failure: coordinator
  water: {type: route, queue: plumbing, intent: water}
  coordinator: {type: route, queue: coordinator}
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return menu_settings(tmp_path, flows_dir=tmp_path / "flows", default_language="en")


def two_companies(db: Database) -> tuple[int, int]:
    """Dom A (own plumbing queue, number 510001, building code 11), Dom B (code 22, no own
    queues), the centre's number 500200."""
    with db.session() as session:
        a = tenants.add_tenant(session, "Dom A", slug="dom-a").id
        b = tenants.add_tenant(session, "Dom B", slug="dom-b").id
        tenants.set_tenant_queues(session, "dom-a", ["plumbing"])
        tenants.add_number(session, A_NUMBER, "dom-a")
        tenants.add_number(session, CENTRE_NUMBER, None)
        buildings.import_buildings(session, "dom-a", buildings.parse_csv(b"Lenina,5,11\n"))
        buildings.import_buildings(session, "dom-b", buildings.parse_csv(b"Mira,1,22\n"))
    return a, b


@pytest.fixture
async def server(settings: Settings, db: Database) -> AsyncIterator[AgiServer]:
    folder = settings.flows_dir
    folder.mkdir(parents=True)
    (folder / "prompts.yaml").write_text(PROMPTS, encoding="utf-8")
    (folder / "hotline.yaml").write_text(textwrap.dedent(COMPANY_FLOW), encoding="utf-8")
    registry = FlowRegistry(folder, queues=QUEUES)
    assert registry.last_errors == [], registry.last_errors
    services = FlowServices(
        registry=registry,
        lookups=DbLookups(db, "RU"),
        # ttl 0: every call sees the store as the test left it.
        tenants=TenantDirectory(db, "RU", ttl=0.0),
    )
    app = build_app(settings, CallLog(db), services)
    assert isinstance(app, RouteRegistry)
    agi = AgiServer(app, env_timeout=0.5, command_timeout=2.0)
    await agi.start("127.0.0.1", 0)
    yield agi
    await agi.stop(grace=1.0)


def stored(db: Database) -> tuple[int | None, str | None, int | None]:
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.linkedid == LINKEDID)).one()
        return call.tenant_id, call.tenant_source, call.building_id


def vars_before_queue(fake: FakeAsterisk) -> list[str]:
    """The SET VARIABLE names in the order sent, up to HOTLINE_QUEUE."""
    names = [c.split(" ")[2] for c in fake.commands if c.startswith("SET VARIABLE ")]
    return names[: names.index(channel_vars.QUEUE) + 1]


async def test_without_tenants_the_menu_is_unchanged(server: AgiServer, db: Database) -> None:
    fake = FakeAsterisk(keys=[("1", False)])
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "plumbing"
    assert channel_vars.TENANT not in fake.set_vars
    assert "tenant" not in event_kinds(db)
    assert stored(db) == (None, None, None)


async def test_a_tenant_s_number_goes_to_its_own_queue(server: AgiServer, db: Database) -> None:
    a, _ = two_companies(db)
    fake = FakeAsterisk(keys=[("1", False)])
    await run_call(server, fake, environment(agi_dnid=A_NUMBER))
    assert fake.set_vars[channel_vars.QUEUE] == f"t{a}_plumbing"
    assert fake.set_vars[channel_vars.TENANT] == "dom-a"
    assert fake.set_vars[channel_vars.TENANT_SOURCE] == "number"
    # The decision is on the channel before the route (and before anything is written).
    assert vars_before_queue(fake)[:3] == [
        channel_vars.TENANT,
        channel_vars.TENANT_SOURCE,
        channel_vars.BUILDING,
    ]
    assert stored(db) == (a, "number", None)


async def test_a_house_code_keyed_and_confirmed_places_the_caller(
    server: AgiServer, db: Database
) -> None:
    _, b = two_companies(db)
    # Code 22, confirmed with 1, then 1 (water) in the menu.
    fake = FakeAsterisk(keys=[("22", False), ("1", False), ("1", False)])
    await run_call(server, fake, environment(agi_dnid=CENTRE_NUMBER))
    # Dom B has no own plumbers: the centre's plumbing queue serves it.
    assert fake.set_vars[channel_vars.QUEUE] == "plumbing"
    assert fake.set_vars[channel_vars.TENANT] == "dom-b"
    assert fake.set_vars[channel_vars.TENANT_SOURCE] == "keypad"
    tenant, source, building = stored(db)
    assert (tenant, source) == (b, "keypad") and building is not None
    assert fake.set_vars[channel_vars.BUILDING] == str(building)


@pytest.mark.parametrize(
    "keys",
    [
        # A code of no building, confirmed.
        [("33", False), ("1", False)],
        # Far more digits than any code, twice: refused by the collect node, never looked up.
        [("9" * 40, False), ("1" * 9, False)],
        # Keypad symbols that are not digits.
        [("1*2#", False), ("A1", False)],
        # Silence.
        [],
    ],
)
async def test_a_bad_or_unknown_code_goes_to_the_coordinator_as_the_centre_s(
    server: AgiServer, db: Database, keys: list[tuple[str, bool]]
) -> None:
    two_companies(db)
    fake = FakeAsterisk(keys=list(keys))
    await run_call(server, fake, environment(agi_dnid=CENTRE_NUMBER))
    assert fake.set_vars[channel_vars.QUEUE] == "coordinator"
    assert fake.set_vars.get(channel_vars.TENANT, "") == ""
    tenant, _, building = stored(db)
    assert tenant is None and building is None


@pytest.mark.parametrize(
    "caller_id",
    [
        *("anonymous", "", "'; DROP TABLE calls; --", "+7" + "9" * 60),
        *("<sip:evil@x>", "8 914 000 00 01"),
    ],
)
async def test_hostile_caller_ids_are_only_ever_looked_up_normalised(
    server: AgiServer, db: Database, caller_id: str
) -> None:
    a, _ = two_companies(db)
    with db.session() as session:
        lenina = buildings.building_by_code(session, "11")
        assert lenina is not None
        buildings.register_phone(session, "+79140000001", lenina[0], "RU")
    fake = FakeAsterisk(keys=[("1", False)])
    await run_call(server, fake, environment(agi_dnid=CENTRE_NUMBER, agi_callerid=caller_id))
    if caller_id == "8 914 000 00 01":  # the registered phone, as a carrier may spell it
        assert fake.set_vars[channel_vars.TENANT_SOURCE] == "phone"
        assert fake.set_vars[channel_vars.QUEUE] == f"t{a}_plumbing"
    else:  # nobody known: asked; the code is never confirmed - the coordinator, no error
        assert fake.set_vars[channel_vars.QUEUE] == "coordinator"
        assert stored(db)[0] is None
