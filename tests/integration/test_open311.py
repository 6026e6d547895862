"""Open311 GeoReport v2 at /open311/v2/ through the real app (httpx + ASGI) on real SQLite and
PostgreSQL. Conformance is judged by the Open311 project's own JSON Schemas
(github.com/open311/schema-validation, schema/georeport-v2), not by our assertions alone; the
XML answers must carry the same documents as the JSON ones, element for element.

The schema files are copied unchanged into tests/data/open311-georeport-v2 (SOURCE.md there says
from where); $HOTLINE_OPEN311_SCHEMAS points elsewhere if set.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from defusedxml import ElementTree as SafeET
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from call_router import open311_keys, request_assignment, request_crews, tenants
from call_router import service_requests as store
from call_router.db import Database
from call_router.settings import Settings
from dashboard.main import create_app
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_NAMES = ("request", "requests", "service", "services", "service-definition")
BASE = "/open311/v2"


def _schema_dir() -> Path | None:
    candidates = [
        os.environ.get("HOTLINE_OPEN311_SCHEMAS"),
        str(ROOT / "tests" / "data" / "open311-georeport-v2"),
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "requests.json").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="module")
def schemas() -> dict[str, Draft4Validator]:
    folder = _schema_dir()
    require(folder is not None, "the Open311 JSON Schemas (open311/schema-validation) are missing")
    assert folder is not None
    docs = {name: json.loads((folder / f"{name}.json").read_text()) for name in SCHEMA_NAMES}
    registry: Registry[Any] = Registry().with_resources(
        (f"{name}.json", Resource.from_contents(doc, default_specification=DRAFT4))
        for name, doc in docs.items()
    )
    return {
        name: Draft4Validator(doc, registry=registry, format_checker=FormatChecker())
        for name, doc in docs.items()
    }


def conforms(validator: Draft4Validator, document: Any) -> None:
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


@pytest.fixture
async def client(database: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(state_dir=tmp_path / "state"), database, zone=ZoneInfo("UTC"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dashboard.test"
    ) as http:
        yield http


def _key(database: Database, tenant: str | None = None, name: str | None = None) -> str:
    with database.session() as session:
        tenant_id = tenants.require_tenant(session, tenant).id if tenant else None
        plain, _row = open311_keys.create_key(
            session, name or f"client-{uuid.uuid4().hex[:6]}", tenant_id=tenant_id
        )
    return plain


# --- XML: the same documents as JSON --------------------------------------------------------


def _from_xml(element: Any) -> Any:
    children = list(element)
    if not children:
        return element.text
    if (
        all(child.tag == children[0].tag for child in children)
        and len(children) > 1
        or (element.tag in ("attributes", "values", "services", "service_requests", "errors"))
    ):
        return [_from_xml(child) for child in children]
    return {child.tag: _from_xml(child) for child in children}


def _as_xml_text(value: Any) -> Any:
    """A JSON document as its XML reads: scalars become text, null stays empty."""
    if isinstance(value, list):
        return [_as_xml_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_xml_text(v) for k, v in value.items()}
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


async def same_in_xml(client: httpx.AsyncClient, json_path: str, root: str, **kw: Any) -> Any:
    as_json = await client.get(json_path, **kw)
    as_xml = await client.get(json_path.replace(".json", ".xml"), **kw)
    assert as_xml.headers["content-type"].startswith("text/xml")
    tree = SafeET.fromstring(as_xml.content)
    assert tree.tag == root
    assert _from_xml(tree) == _as_xml_text(as_json.json())
    return as_json.json()


# --- the tests ------------------------------------------------------------------------------


async def test_services_conform(client: httpx.AsyncClient, schemas: dict[str, Any]) -> None:
    services = await same_in_xml(client, f"{BASE}/services.json", "services")
    conforms(schemas["services"], services)
    assert {s["service_code"] for s in services} >= {"heating", "lift", "water_leak"}
    definition = await same_in_xml(client, f"{BASE}/services/heating.json", "service_definition")
    conforms(schemas["service-definition"], definition)
    assert [a["code"] for a in definition["attributes"]] == ["street", "house", "flat", "priority"]


async def test_post_and_read_requests_conform(
    client: httpx.AsyncClient, database: Database, schemas: dict[str, Any]
) -> None:
    key = _key(database)
    form = {
        "api_key": key,
        "service_code": "heating",
        "address_string": "Lenina St",
        "attribute[house]": "5",
        "attribute[flat]": "12",
        "lat": "55.75",
        "long": "37.61",
        "description": "No heating since <b>Monday</b> & counting",
        "first_name": "Anna",
        "phone": "+79001112233",
    }
    posted = await client.post(f"{BASE}/requests.json", data=form)
    assert posted.status_code == 200, posted.text
    [answer] = posted.json()
    number = answer["service_request_id"]
    assert "token" not in answer  # an id at once, never both
    # The same place reported through XML attaches to the open request.
    again = await client.post(f"{BASE}/requests.xml", data={**form, "address_string": "lenina st."})
    assert again.status_code == 200
    tree = SafeET.fromstring(again.content)
    assert tree.tag == "service_requests"
    assert tree.findtext("request/service_request_id") == number
    assert "Already reported" in (tree.findtext("request/service_notice") or "")

    one = await same_in_xml(client, f"{BASE}/requests/{number}.json", "service_requests")
    conforms(schemas["requests"], one)
    [doc] = one
    assert doc["status"] == "open" and doc["service_code"] == "heating"
    assert doc["address"] == "Lenina St 5"  # never the flat
    assert doc["description"] is None  # residents' words only for key holders
    assert doc["lat"] == 55.75
    with database.session() as session:
        deadline = store.get_request(session, number).sla_deadline
    assert datetime.fromisoformat(doc["expected_datetime"]) == deadline.replace(microsecond=0)
    keyed = (await client.get(f"{BASE}/requests/{number}.json", params={"api_key": key})).json()
    assert keyed[0]["description"] == form["description"]

    # Internal states map to open/closed, the state in words in status_notes.
    with database.session() as session:
        crew = request_crews.add_crew(
            session, "Heat", categories=[], districts=[], known_categories=store_categories()
        )
        request_assignment.assign(session, number, crew.id, actor="disp")
        store.change_state(session, number, "on_the_way", actor="crew")
    moving = (await client.get(f"{BASE}/requests/{number}.json")).json()[0]
    assert moving["status"] == "open" and moving["agency_responsible"] == "Heat"
    assert "on the way" in moving["status_notes"]
    with database.session() as session:
        store.change_state(session, number, "cannot_fix", actor="crew", note="no parts made")
    closed = (await client.get(f"{BASE}/requests/{number}.json")).json()[0]
    assert closed["status"] == "closed" and "no parts made" in closed["status_notes"]

    many = await same_in_xml(client, f"{BASE}/requests.json", "service_requests")
    conforms(schemas["requests"], many)
    assert [d["service_request_id"] for d in many] == [number]
    filters = {
        "status=closed": [number],
        "status=open": [],
        "service_code=lift": [],
        "service_code=heating,lift": [number],
        f"service_request_id={number}": [number],
        # With service_request_id the other filters are ignored (the spec).
        f"service_request_id={number}&status=open&service_code=lift": [number],
        "start_date=2001-01-01T00:00:00Z&end_date=2001-02-01T00:00:00Z": [],
    }
    for query, expected in filters.items():
        found = (await client.get(f"{BASE}/requests.json?{query}")).json()
        conforms(schemas["requests"], found)
        assert [d["service_request_id"] for d in found] == expected, query


def store_categories() -> Any:
    from call_router import request_lifecycle

    return request_lifecycle.load_categories()


async def _error(answer: httpx.Response, status: int, fmt: str = "json") -> str:
    assert answer.status_code == status, answer.text
    if fmt == "xml":
        tree = SafeET.fromstring(answer.content)
        assert tree.tag == "errors"
        assert tree.findtext("error/code") == str(status)
        return tree.findtext("error/description") or ""
    [error] = answer.json()
    assert set(error) == {"code", "description"} and error["code"] == status
    assert isinstance(error["description"], str) and error["description"]
    return str(error["description"])


async def test_bad_input_gets_the_spec_errors(
    client: httpx.AsyncClient, database: Database
) -> None:
    key = _key(database, name="portal")
    ok = {"api_key": key, "service_code": "lift", "address_string": "Mira 1"}
    for fmt in ("json", "xml"):
        url = f"{BASE}/requests.{fmt}"
        assert "service_code" in await _error(
            await client.post(url, data={**ok, "service_code": "teleport"}), 404, fmt
        )
        assert "location" in await _error(
            await client.post(url, data={k: v for k, v in ok.items() if k != "address_string"}),
            400,
            fmt,
        )
        assert "api_key" in await _error(
            await client.post(url, data={**ok, "api_key": "o311_x"}), 403, fmt
        )
        await _error(
            await client.post(url, data={k: v for k, v in ok.items() if k != "api_key"}), 403, fmt
        )
        await _error(await client.post(url, data={**ok, "description": "x" * 4001}), 400, fmt)
        await _error(await client.post(url, data={**ok, "lat": "north"}), 400, fmt)
        await _error(await client.post(url, data={**ok, "lat": "95", "long": "1"}), 400, fmt)
        await _error(await client.post(url, json=ok), 400, fmt)
        await _error(await client.get(f"{BASE}/requests/999999.{fmt}"), 404, fmt)
        await _error(await client.get(f"{BASE}/requests/abc.{fmt}"), 404, fmt)
        await _error(await client.get(f"{BASE}/services/teleport.{fmt}"), 404, fmt)
        await _error(await client.get(f"{BASE}/tokens/nope.{fmt}"), 404, fmt)
        await _error(await client.get(f"{BASE}/requests.{fmt}?start_date=yesterday"), 400, fmt)
        await _error(await client.get(f"{BASE}/requests.{fmt}?status=pending"), 400, fmt)
        await _error(await client.get(f"{BASE}/requests.{fmt}?api_key=o311_wrong"), 403, fmt)
    await _error(await client.get(f"{BASE}/services.yaml"), 404)
    # A hostile description comes back as data: escaped in XML, a string in JSON.
    hostile = "</description><status>closed</status>&amp;<!ENTITY x>"
    posted = await client.post(f"{BASE}/requests.xml", data={**ok, "description": hostile})
    assert posted.status_code == 200
    number = SafeET.fromstring(posted.content).findtext("request/service_request_id")
    as_xml = await client.get(f"{BASE}/requests/{number}.xml", params={"api_key": key})
    tree = SafeET.fromstring(as_xml.content)
    assert tree.findtext("request/description") == hostile
    assert tree.findtext("request/status") == "open"
    # A revoked key is refused from then on.
    with database.session() as session:
        open311_keys.revoke_key(session, "portal")
    await _error(await client.post(f"{BASE}/requests.json", data=ok), 403)


async def test_a_tenants_key_posts_and_reads_its_tenant_only(
    client: httpx.AsyncClient, database: Database
) -> None:
    with database.session() as session:
        tenants.add_tenant(session, "Company A", slug="a")
        tenants.add_tenant(session, "Company B", slug="b")
    key_a, key_b = _key(database, "a"), _key(database, "b")
    form = {"service_code": "lift", "address_string": "Mira 1"}
    a = (await client.post(f"{BASE}/requests.json", data={**form, "api_key": key_a})).json()
    b = (await client.post(f"{BASE}/requests.json", data={**form, "api_key": key_b})).json()
    # One address, two tenants: two requests.
    assert a[0]["service_request_id"] != b[0]["service_request_id"]
    seen_by_a = (await client.get(f"{BASE}/requests.json", params={"api_key": key_a})).json()
    assert [d["service_request_id"] for d in seen_by_a] == [a[0]["service_request_id"]]
    hidden = await client.get(
        f"{BASE}/requests/{b[0]['service_request_id']}.json", params={"api_key": key_a}
    )
    await _error(hidden, 404)
    with database.session() as session:
        row = store.get_request(session, a[0]["service_request_id"])
        assert row.tenant_id == tenants.require_tenant(session, "a").id
        assert row.source == "open311"
        assert row.created_at > datetime.now(UTC) - timedelta(minutes=5)
