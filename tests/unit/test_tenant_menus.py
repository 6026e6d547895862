"""A tenant's own calendar, prompts and flows (ivr_flows/tenants/<slug>/), over the real TCP AGI
protocol against the fake Asterisk: what it overrides serves its callers only, the centre's
defaults serve everyone else, and the files are read once per reload, never per call."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agi_scripts.flows.services import DbLookups, FlowServices, TenantDirectory
from agi_scripts.server import AgiServer
from call_router import buildings, channel_vars, tenants
from call_router.db import Database
from call_router.flows.loader import FlowRegistry, load_flows
from call_router.settings import QUEUES, Settings
from tests.unit.conftest import started_agi
from tests.unit.test_agi_protocol import FakeAsterisk, environment, event_kinds, run_call
from tests.unit.test_company_flow import settings  # noqa: F401 (a fixture)
from tests.unit.test_flow_engine import PROMPTS

CENTRE_NUMBER = "500200"
A_NUMBER = "510001"
B_NUMBER = "520001"
C_NUMBER = "530001"

CLOSED = "week: {mon: closed, tue: closed, wed: closed, thu: closed, fri: closed, sat: closed, " \
    "sun: closed}\n"  # fmt: skip
FLOW = """\
start: hours
nodes:
  hours:
    type: condition
    branches:
      - {if: {business_hours: true}, next: company}
    else: night
  company: {type: company, code_var: code, ask: code, next: company_hours, on_failure: coord}
  company_hours:
    type: condition
    branches:
      - {if: {business_hours: true}, next: hello}
    else: night
  code:
    type: collect
    prompt: account
    var: code
    max_length: 8
    retries: 0
    next: company
    on_failure: coord
  hello: {type: play, prompt: hello, next: water}
  water: {type: route, queue: plumbing, intent: water}
  night: {type: route, queue: duty, intent: emergency}
  coord: {type: route, queue: coordinator}
"""
# Dom B's own version: straight to its heating queue after its own greeting.
B_FLOW = """\
start: company
nodes:
  company: {type: company, code_var: code, ask: coord, next: hello, on_failure: coord}
  hello: {type: play, prompt: b_welcome, next: heating}
  heating: {type: route, queue: heating, intent: heating}
  coord: {type: route, queue: coordinator}
"""


def write_flows(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "prompts.yaml").write_text(PROMPTS, encoding="utf-8")
    (folder / "hotline.yaml").write_text(textwrap.dedent(FLOW), encoding="utf-8")
    a = folder / "tenants" / "dom-a"
    a.mkdir(parents=True)
    (a / "calendar.yaml").write_text(CLOSED, encoding="utf-8")
    c = folder / "tenants" / "dom-c"
    c.mkdir(parents=True)
    (c / "prompts.yaml").write_text('prompts:\n  hello: {en: "Dom C says hello"}\n', "utf-8")
    b = folder / "tenants" / "dom-b"
    b.mkdir(parents=True)
    (b / "hotline.yaml").write_text(textwrap.dedent(B_FLOW), encoding="utf-8")
    (b / "prompts.yaml").write_text('prompts:\n  b_welcome: {en: "Dom B", ru: "Дом Б"}\n', "utf-8")


def companies(db: Database) -> tuple[int, int]:  # noqa: F811
    with db.session() as session:
        a = tenants.add_tenant(session, "Dom A", slug="dom-a").id
        b = tenants.add_tenant(session, "Dom B", slug="dom-b").id
        tenants.add_tenant(session, "Dom C", slug="dom-c")
        tenants.add_number(session, A_NUMBER, "dom-a")
        tenants.add_number(session, B_NUMBER, "dom-b")
        tenants.add_number(session, C_NUMBER, "dom-c")
        tenants.add_number(session, CENTRE_NUMBER, None)
        buildings.import_buildings(session, "dom-a", buildings.parse_csv(b"Lenina,5,11\n"))
        buildings.import_buildings(session, "dom-b", buildings.parse_csv(b"Mira,1,22\n"))
    return a, b


@pytest.fixture
async def server(settings: Settings, db: Database) -> AsyncIterator[AgiServer]:  # noqa: F811
    write_flows(settings.flows_dir)
    registry = FlowRegistry(settings.flows_dir, queues=QUEUES)
    assert registry.last_errors == [], registry.last_errors
    services = FlowServices(
        registry=registry,
        lookups=DbLookups(db, "RU"),
        tenants=TenantDirectory(db, "RU", ttl=0.0),
    )
    agi = await started_agi(settings, db, services)
    yield agi
    await agi.stop(grace=1.0)


def streamed(fake: FakeAsterisk) -> list[str]:
    return [c.split(" ")[2].strip('"') for c in fake.commands if c.startswith("STREAM FILE")]


def test_the_loader_reads_each_tenant_s_folder(tmp_path: Path) -> None:
    write_flows(tmp_path / "flows")
    loaded = load_flows(tmp_path / "flows", queues=QUEUES)
    assert loaded.errors == []
    assert set(loaded.tenants) == {"dom-a", "dom-b", "dom-c"}
    a, b, c = (loaded.tenants[f"dom-{x}"] for x in "abc")
    assert a.calendar is not None and a.flows == {} and a.prompts == frozenset()
    assert b.calendar is None and set(b.flows) == {"hotline"}
    assert b.prompts == {("b_welcome", "en"), ("b_welcome", "ru")}
    assert c.calendar is None and c.flows == {} and c.prompts == {("hello", "en")}


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("calendar.yaml", "week: {mon: 25:00-26:00}\n", "tenants/dom-d/calendar.yaml"),
        ("meters2.yaml", FLOW, "not a centre flow"),
        ("hotline.yaml", FLOW.replace("queue: duty", "queue: nowhere"), "unknown queue"),
        ("prompts.yaml", "prompts:\n  hello: 5\n", "expected {language: text}"),
    ],
)
def test_a_broken_tenant_file_is_refused_and_its_last_good_menu_kept(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    folder = tmp_path / "flows"
    write_flows(folder)
    own = folder / "tenants" / "dom-d"
    own.mkdir()
    (own / "prompts.yaml").write_text('prompts:\n  hello: {en: "C"}\n', "utf-8")
    registry = FlowRegistry(folder, queues=QUEUES)
    assert registry.tenant("dom-d") is not None
    (own / name).write_text(text, encoding="utf-8")
    errors = registry.reload()
    assert any(problem in str(e) for e in errors), errors
    kept = registry.tenant("dom-d")
    assert kept is not None and kept.prompts == {("hello", "en")}
    # Other tenants and the centre are untouched.
    assert registry.tenant("dom-a") is not None and registry.get("hotline") is not None


async def test_a_tenant_closed_while_the_centre_is_open_sends_its_caller_to_its_night_path(
    server: AgiServer,
    db: Database,  # noqa: F811
) -> None:
    companies(db)
    tenant_call = FakeAsterisk()
    await run_call(server, tenant_call, environment(agi_dnid=A_NUMBER))
    assert tenant_call.set_vars[channel_vars.QUEUE] == "duty"
    centre_call = FakeAsterisk()
    await run_call(server, centre_call, environment(agi_dnid="999", agi_uniqueid="2.1"))
    assert centre_call.set_vars[channel_vars.QUEUE] == "plumbing"


async def test_a_code_that_places_the_caller_with_a_closed_tenant_goes_to_its_night_path(
    server: AgiServer,
    db: Database,  # noqa: F811
) -> None:
    companies(db)
    fake = FakeAsterisk(keys=[("11", False)])
    await run_call(server, fake, environment(agi_dnid=CENTRE_NUMBER))
    assert fake.set_vars[channel_vars.TENANT] == "dom-a"
    assert fake.set_vars[channel_vars.QUEUE] == "duty"
    # The last step (the night route) was taken in Dom A's menu.
    assert event_kinds(db)["flow_step"]["tenant_menu"] == "dom-a"


async def test_a_tenant_prompt_is_played_to_its_callers_only(
    server: AgiServer,
    db: Database,  # noqa: F811
) -> None:
    companies(db)
    tenant_call = FakeAsterisk()
    await run_call(server, tenant_call, environment(agi_dnid=C_NUMBER))
    assert tenant_call.set_vars[channel_vars.QUEUE] == "plumbing"
    assert any(p.endswith("/prompts/tenants/dom-c/en/hello") for p in streamed(tenant_call))
    centre_call = FakeAsterisk()
    await run_call(server, centre_call, environment(agi_dnid="999", agi_uniqueid="2.1"))
    assert any(p.endswith("/prompts/en/hello") for p in streamed(centre_call))
    assert not any("tenants/" in p for p in streamed(centre_call))


async def test_a_tenant_s_own_flow_takes_over_once_a_code_places_the_caller(
    server: AgiServer,
    db: Database,  # noqa: F811
) -> None:
    _, b = companies(db)
    own_number = FakeAsterisk()
    await run_call(server, own_number, environment(agi_dnid=B_NUMBER))
    assert own_number.set_vars[channel_vars.QUEUE] == "heating"
    assert any(p.endswith("/prompts/tenants/dom-b/en/b_welcome") for p in streamed(own_number))
    keyed = FakeAsterisk(keys=[("22", False)])
    await run_call(server, keyed, environment(agi_dnid=CENTRE_NUMBER, agi_uniqueid="2.1"))
    assert keyed.set_vars[channel_vars.TENANT] == "dom-b"
    assert keyed.set_vars[channel_vars.QUEUE] == "heating"
