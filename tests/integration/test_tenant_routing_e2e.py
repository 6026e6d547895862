"""Many management companies behind one centre, through the real Asterisk: SIPp callers on the
carrier trunk, baresip operators registered with the roster's credentials, the real call log.

Two tenants, each with its own number, its own plumbing queue, its own plumber and a building
with a house code. A call to tenant A's number reaches A's plumber; a call to the centre's
number from a phone registered at B's building reaches B's plumber; an unknown caller on the
centre's number keys a house code, confirms it and reaches that building's company; a code of
no building reaches the centre's coordinator.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.conftest import add_operator, finished_call, run_hotline

pytestmark = pytest.mark.asterisk

CENTRE_NUMBER = "500200"
A_NUMBER = "510001"
B_NUMBER = "520001"
# Key "1" (water and plumbing) pressed during the greeting: handed to the menu.
WATER = "1"


def cli(*args: str) -> Any:
    out = run_hotline(*args, "--json").stdout
    return json.loads(out.strip().splitlines()[-1])


@dataclass(frozen=True)
class Company:
    slug: str
    plumbing_queue: str
    plumber: dict[str, Any]
    code: str
    building: int


@dataclass(frozen=True)
class Centre:
    a: Company
    b: Company
    coordinator: dict[str, Any]


def _company(tmp: Path, name: str, number: str, code: str, street: str) -> Company:
    slug = f"e2e-{name}-{uuid.uuid4().hex[:6]}"
    tenant = cli("tenants", "add", f"Dom {name}", "--slug", slug, "--queues", "plumbing")
    assert tenant["applied"] is True, "the running Asterisk should have reloaded its queues"
    queue = tenant["queues"]["plumbing"]
    assert cli("numbers", "add", number, "--tenant", slug)["applied"] is True
    csv = tmp / f"{slug}.csv"
    csv.write_text(f"street,house,code\n{street},5,{code}\n{street},7,\n", encoding="utf-8")
    imported = cli("buildings", "import", str(csv), "--tenant", slug)
    assert (imported["added"], imported["updated"]) == (2, 0)
    building = next(b["id"] for b in imported["buildings"] if b["code"] == code)
    out = run_hotline(
        "operators", "add", f"Plumber {name}", "--queues", "plumbing", "--tenant", slug, "--json"
    ).stdout
    plumber = json.loads(out.strip().splitlines()[-1])
    assert plumber["tenant"] == slug
    assert [q["queue"] for q in plumber["queues"]] == [queue]
    return Company(slug, queue, plumber, code, building)


@pytest.fixture(scope="module")
def centre(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    tmp = tmp_path_factory.mktemp("tenants")
    # Codes unique to this run: the stack's database may outlive one test session's names.
    base = uuid.uuid4().int % 900_000 + 100_000
    a = _company(tmp, "a", A_NUMBER, str(base), "Lenina")
    b = _company(tmp, "b", B_NUMBER, str(base + 1), "Mira")
    assert cli("numbers", "add", CENTRE_NUMBER, "--centre")["tenant"] is None
    coordinator = add_operator("Centre Coordinator", "coordinator")
    yield Centre(a, b, coordinator)


def _call_to(
    stack: Settings,
    api: httpx.Client,
    phone: dict[str, Any],
    *,
    to: str,
    caller: str,
    schedule: list[tuple[float, str]],
    hold: float,
    answered: bool = True,
) -> dict[str, Any]:
    with Softphone(stack, phone["sip_login"], phone["sip_password"]) as softphone:
        result = place_call(
            stack, to=to, from_number=caller, dtmf_schedule=schedule, hold=hold, dtmf_delay=1.0
        )
        assert result.answered, result.detail
        call = finished_call(api, caller)
        if answered:
            assert softphone.calls_answered() >= 1, f"{phone['name']} was not reached: {call}"
    return api.get(f"/api/calls/{call['id']}").json()  # type: ignore[no-any-return]


def _tenant_event(call: dict[str, Any]) -> dict[str, Any] | None:
    found = [e["data"] for e in call["events"] if e["kind"] == "tenant"]
    return found[-1] if found else None


def test_a_call_to_tenant_a_s_number_reaches_a_s_own_plumber(
    stack: Settings, api: httpx.Client, centre: Centre
) -> None:
    caller = "+74951120001"
    call = _call_to(
        stack, api, centre.a.plumber, to=A_NUMBER, caller=caller,
        schedule=[(1.0, WATER)], hold=8,
    )  # fmt: skip
    assert call["dialed_number"] == A_NUMBER
    assert call["tenant"] == centre.a.slug
    assert call["tenant_source"] == "number"
    assert call["queue"] == centre.a.plumbing_queue
    assert call["outcome"] == "answered"
    assert call["operator"] == centre.a.plumber["name"]
    # The call page shows both.
    page = api.get(f"/calls/{call['id']}").text
    assert f'id="dialled-number">{A_NUMBER}<' in page
    assert f'id="call-tenant">{centre.a.slug} (' in page


def test_a_centre_call_from_a_phone_registered_at_b_s_building_reaches_b_s_plumber(
    stack: Settings, api: httpx.Client, centre: Centre
) -> None:
    caller = "+74951120002"
    registered = cli("buildings", "phone", caller, "--building", str(centre.b.building))
    assert registered == {"phone": caller, "building": centre.b.building, "tenant": centre.b.slug}
    call = _call_to(
        stack, api, centre.b.plumber, to=CENTRE_NUMBER, caller=caller,
        schedule=[(1.0, WATER)], hold=8,
    )  # fmt: skip
    assert call["dialed_number"] == CENTRE_NUMBER
    assert call["tenant"] == centre.b.slug
    assert call["tenant_source"] == "phone"
    assert call["queue"] == centre.b.plumbing_queue
    assert call["operator"] == centre.b.plumber["name"]
    event = _tenant_event(call)
    assert event is not None and event["building_id"] == centre.b.building


def test_an_unknown_caller_keys_a_house_code_confirms_and_reaches_that_company(
    stack: Settings, api: httpx.Client, centre: Centre
) -> None:
    caller = "+74951120003"
    # The house code (asked first), "1" to confirm it while it is read back or asked, then
    # the plumbing key during the greeting.
    schedule = [(1.5, centre.a.code + "#"), (7.0, "1"), (13.0, WATER)]
    call = _call_to(
        stack, api, centre.a.plumber, to=CENTRE_NUMBER, caller=caller, schedule=schedule, hold=25
    )
    assert call["tenant"] == centre.a.slug, call["events"]
    assert call["tenant_source"] == "keypad"
    assert call["queue"] == centre.a.plumbing_queue
    assert call["operator"] == centre.a.plumber["name"]
    nodes = [e["data"]["node"] for e in call["events"] if e["kind"] == "flow_step"]
    assert nodes[:4] == ["hours", "company", "house_code", "house_code_said"], nodes

    # Next time the same caller is known by that call's building: not asked again. (The
    # plumber may still be in after-call work: where the call goes is what counts here.)
    again = _call_to(
        stack, api, centre.a.plumber, to=CENTRE_NUMBER, caller=caller,
        schedule=[(1.0, WATER)], hold=6, answered=False,
    )  # fmt: skip
    assert (again["tenant"], again["tenant_source"]) == (centre.a.slug, "earlier_call")
    assert again["queue"] == centre.a.plumbing_queue


def test_a_code_of_no_building_goes_to_the_centre_s_coordinator(
    stack: Settings, api: httpx.Client, centre: Centre
) -> None:
    caller = "+74951120004"
    schedule = [(1.5, "99999999#"), (7.0, "1")]
    call = _call_to(
        stack, api, centre.coordinator, to=CENTRE_NUMBER, caller=caller, schedule=schedule,
        hold=14,
    )  # fmt: skip
    assert call["tenant"] is None
    assert call["tenant_source"] == "unknown"
    assert call["queue"] == "coordinator"
    assert call["operator"] == centre.coordinator["name"]
