"""The `company` node and the decision before the menu, over the real TCP AGI protocol against
the fake Asterisk: which company a call is for, set on the channel before the route, and the
caller's keys and caller ID treated as hostile."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from agi_scripts.address_speech import AddressHeard
from agi_scripts.agi import AgiChannel
from agi_scripts.flows.runtime import AddressSpeech
from agi_scripts.flows.services import DbLookups, FlowServices, TenantDirectory
from agi_scripts.server import AgiServer
from call_router import buildings, channel_vars, tenants
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.db import Database
from call_router.flows.loader import FlowRegistry
from call_router.models import Call
from call_router.settings import QUEUES, Settings
from call_router.spoken_addresses import SpokenBuilding
from tests.unit.conftest import menu_settings, started_agi
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


@asynccontextmanager
async def serving(
    settings: Settings, db: Database, flow: str, address_speech: AddressSpeech | None = None
) -> AsyncIterator[AgiServer]:
    folder = settings.flows_dir
    folder.mkdir(parents=True)
    (folder / "prompts.yaml").write_text(PROMPTS, encoding="utf-8")
    (folder / "hotline.yaml").write_text(textwrap.dedent(flow), encoding="utf-8")
    registry = FlowRegistry(folder, queues=QUEUES)
    assert registry.last_errors == [], registry.last_errors
    services = FlowServices(
        registry=registry,
        lookups=DbLookups(db, "RU"),
        # ttl 0: every call sees the store as the test left it.
        tenants=TenantDirectory(db, "RU", ttl=0.0),
        address_speech=address_speech,
    )
    agi = await started_agi(settings, db, services)
    try:
        yield agi
    finally:
        await agi.stop(grace=1.0)


@pytest.fixture
async def server(settings: Settings, db: Database) -> AsyncIterator[AgiServer]:
    async with serving(settings, db, COMPANY_FLOW) as agi:
        yield agi


def stored(db: Database) -> tuple[int | None, str | None, int | None]:
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.linkedid == LINKEDID)).one()
        return call.tenant_id, call.tenant_source, call.building_id


def vars_before_queue(fake: FakeAsterisk) -> list[str]:
    """The channel variables' names in the order set, up to HOTLINE_QUEUE."""
    names = fake.set_order
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


# The same flow, asking first for the address in words (where the language has a model).
SPOKEN_FLOW = COMPANY_FLOW.replace(
    "company: {type: company, code_var: code, ask: code,",
    "company: {type: company, code_var: code, ask: code, speech_prompt: problem, heard: said,",
)


class SaidAddress:
    """The recogniser's answer, scripted (tests/integration/test_spoken_address_vosk.py
    recognises real speech): the building of `code`, a key, nothing understood, or no speech."""

    def __init__(self, code: str | None = None, *, key: str = "", speech: bool = True) -> None:
        self.code, self.key, self.speech = code, key, speech
        self.asked: list[list[SpokenBuilding]] = []

    async def __call__(
        self,
        agi: AgiChannel,
        *,
        prompt: str,
        language: str,
        buildings: list[SpokenBuilding],
        timeout: float,
    ) -> AddressHeard | None:
        self.asked.append(buildings)
        if not self.speech:
            return None
        named = next((b for b in buildings if b.code == self.code), None)
        return AddressHeard(named, text="mira one" if named else "", key=self.key)


async def test_an_address_said_read_back_and_confirmed_places_the_caller(
    settings: Settings, db: Database
) -> None:
    _, b = two_companies(db)
    said = SaidAddress("22")
    async with serving(settings, db, SPOKEN_FLOW, said) as server:
        # 1: the code read back is right; 1: water in the menu.
        fake = FakeAsterisk(keys=[("1", False), ("1", False)])
        await run_call(server, fake, environment(agi_dnid=CENTRE_NUMBER))
    # The buildings a caller may name: those with a house code.
    assert [[(x.code, x.street, x.house) for x in asked] for asked in said.asked] == [
        [("11", "Lenina", "5"), ("22", "Mira", "1")]
    ]
    assert fake.set_vars[channel_vars.TENANT] == "dom-b"
    assert fake.set_vars[channel_vars.TENANT_SOURCE] == "speech"
    assert any(c.startswith("SAY DIGITS 22 ") for c in fake.commands), fake.commands
    tenant, source, building = stored(db)
    assert (tenant, source) == (b, "speech") and building is not None
    assert "speech" in event_kinds(db)


@pytest.mark.parametrize(
    "said",
    [
        SaidAddress(None),  # words, but no building understood
        SaidAddress(None, key="1"),  # a key pressed instead of speaking
        SaidAddress("22", speech=False),  # no model for the language, or no audio
    ],
    ids=["not-understood", "key", "no-speech"],
)
async def test_without_an_address_understood_the_keypad_asks(
    settings: Settings, db: Database, said: SaidAddress
) -> None:
    a, _ = two_companies(db)
    async with serving(settings, db, SPOKEN_FLOW, said) as server:
        fake = FakeAsterisk(keys=[("11", False), ("1", False), ("1", False)])
        await run_call(server, fake, environment(agi_dnid=CENTRE_NUMBER))
    assert len(said.asked) == 1
    assert fake.set_vars[channel_vars.TENANT_SOURCE] == "keypad"
    assert fake.set_vars[channel_vars.QUEUE] == f"t{a}_plumbing"


async def test_a_misheard_address_is_refused_and_keyed_instead(
    settings: Settings, db: Database
) -> None:
    a, _ = two_companies(db)
    said = SaidAddress("22")
    async with serving(settings, db, SPOKEN_FLOW, said) as server:
        # 2: "not my building" when 22 is read back; then code 11 keyed, 1, then water.
        keys = [("2", False), ("11", False), ("1", False), ("1", False)]
        fake = FakeAsterisk(keys=keys)
        await run_call(server, fake, environment(agi_dnid=CENTRE_NUMBER))
    # Asked in words once only: the second time is the keypad's.
    assert len(said.asked) == 1
    assert fake.set_vars[channel_vars.TENANT] == "dom-a"
    assert fake.set_vars[channel_vars.TENANT_SOURCE] == "keypad"
    assert stored(db)[:2] == (a, "keypad")


def _request_of(db: Database, tenant_id: int, caller: str, street: str, house: str) -> None:
    """A service request the caller made for an address of `tenant_id` (as the desk typed
    their number)."""
    with db.session() as session:
        store.create_request(
            session,
            store.NewRequest(
                category="heating", street=street, house=house, caller_number=caller, source="cli"
            ),
            categories=life.load_categories(),
            actor="desk",
            tenant_id=tenant_id,
        )


async def test_a_caller_with_a_request_of_a_company_is_placed_with_it(
    server: AgiServer, db: Database
) -> None:
    _, b = two_companies(db)
    # Stored nationally; the call's caller ID is E.164.
    _request_of(db, b, "89140000005", "Mira", "1")
    fake = FakeAsterisk(keys=[("1", False)])
    await run_call(server, fake, environment(agi_dnid=CENTRE_NUMBER, agi_callerid="+79140000005"))
    assert fake.set_vars[channel_vars.TENANT] == "dom-b"
    assert fake.set_vars[channel_vars.TENANT_SOURCE] == "request"
    with db.session() as session:
        mira = buildings.building_by_code(session, "22")
    assert mira is not None
    assert stored(db) == (b, "request", mira[0])


async def test_a_request_at_an_address_without_a_building_still_names_its_company(
    server: AgiServer, db: Database
) -> None:
    a, _ = two_companies(db)
    _request_of(db, a, "+79140000006", "Lenina", "99")
    fake = FakeAsterisk(keys=[("1", False)])
    await run_call(server, fake, environment(agi_dnid=CENTRE_NUMBER, agi_callerid="+79140000006"))
    assert fake.set_vars[channel_vars.QUEUE] == f"t{a}_plumbing"
    assert stored(db) == (a, "request", None)
