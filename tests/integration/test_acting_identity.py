"""An operator cannot act as another (issue 10, item 2), through the real app on SQLite and
PostgreSQL with two signed-in operators and a supervisor.

The attack: operator Olga (3201) works on what operator Pavel (3202) holds, naming Pavel in a
body the old access rule did not read (`Application/JSON`, `application/vnd.x+json`: FastAPI
still parses both as JSON) or naming nobody (once a supervisor override). Each attempt must
be refused or done as Olga; Pavel's claims and dispositions stay his. A supervisor acting for
Pavel is recorded as the supervisor, on Pavel's behalf; every disposition save is kept.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from call_router import accounts, callback_intake, callbacks
from call_router.call_event_kinds import EVENT_CONNECT
from call_router.callback_models import CallbackAttempt
from call_router.db import Database
from call_router.models import Call, Callback, CallEvent
from call_router.operators import add_operator, parse_skills
from call_router.settings import Settings
from dashboard.main import create_app
from tests.integration.test_dashboard_auth import BASE, PASSWORD, _settings, sign_in

OLGA, PAVEL = "3201", "3202"


@dataclass(frozen=True)
class Variant:
    """How the attacker's body is sent: its Content-Type, and whether it names Pavel."""

    content_type: str
    names_pavel: bool

    def body(self, fields: dict[str, Any]) -> dict[str, Any]:
        return {**fields, "operator": PAVEL} if self.names_pavel else fields


VARIANTS = [
    Variant("Application/JSON", names_pavel=True),
    Variant("APPLICATION/JSON; charset=utf-8", names_pavel=True),
    Variant("application/vnd.x+json", names_pavel=True),
    Variant("application/json", names_pavel=True),
    Variant("application/json", names_pavel=False),
    Variant("application/vnd.x+json", names_pavel=False),
]


@pytest.fixture
def app_db(database: Database) -> Database:
    with database.session() as session:
        add_operator(session, "Olga", parse_skills("heating"), login=OLGA)
        add_operator(session, "Pavel", parse_skills("heating"), login=PAVEL)
        now = datetime.now(UTC)
        accounts.create_user(session, "sup", PASSWORD, "supervisor", now=now)
        accounts.create_user(session, "olga", PASSWORD, "operator", operator_login=OLGA, now=now)
        accounts.create_user(session, "pavel", PASSWORD, "operator", operator_login=PAVEL, now=now)
    return database


class Browser:
    """One signed-in browser: its cookie jar and the session's CSRF token."""

    def __init__(self, http: httpx.AsyncClient, csrf: str) -> None:
        self.http = http
        self.csrf = csrf

    async def post(
        self, path: str, body: dict[str, Any], content_type: str = "application/json"
    ) -> httpx.Response:
        return await self.http.post(
            path,
            content=json.dumps(body),
            headers={"Content-Type": content_type, "X-CSRF-Token": self.csrf},
        )


@pytest.fixture
async def browsers(app_db: Database, tmp_path: Path) -> AsyncIterator[dict[str, Browser]]:
    app = create_app(_settings(tmp_path), app_db, zone=ZoneInfo("UTC"))
    opened: dict[str, Browser] = {}
    try:
        for user in ("olga", "pavel", "sup"):
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
            opened[user] = Browser(http, await sign_in(http, user))
        yield opened
    finally:
        for browser in opened.values():
            await browser.http.aclose()


def _entry(db: Database, number: str) -> int:
    with db.session() as session:
        entry = callback_intake.open_or_attach(
            session,
            caller_number=number,
            reason="abandoned_in_queue",
            queue="heating",
            call_id=None,
            now=datetime.now(UTC),
            rules=callbacks.CallbackRules.from_settings(Settings()),
        )
        assert entry is not None
        return entry.id


def _call(db: Database, linkedid: str) -> int:
    with db.session() as session:
        call = Call(
            started_at=datetime.now(UTC),
            caller_number="+74953330001",
            linkedid=linkedid,
            operator=PAVEL,
        )
        session.add(call)
        session.flush()
        return call.id


def _callback(db: Database, callback_id: int) -> Callback:
    with db.session() as session:
        entry = session.get(Callback, callback_id)
        assert entry is not None
        session.expunge(entry)
        return entry


def _history_as(db: Database, callback_id: int, operator: str) -> list[str]:
    with db.session() as session:
        rows = session.query(CallbackAttempt).filter_by(callback_id=callback_id, operator=operator)
        return [row.action for row in rows]


async def test_operator_a_cannot_work_on_operator_bs_callbacks_or_dispositions(
    app_db: Database, browsers: dict[str, Browser]
) -> None:
    olga, pavel = browsers["olga"], browsers["pavel"]
    broken: list[str] = []
    numbers = itertools.count()

    def check(variant: Variant, action: str, response: httpx.Response, ok: bool) -> None:
        if not ok:
            broken.append(f"{action} via {variant}: {response.status_code} {response.text[:200]}")

    for n, variant in enumerate(VARIANTS):
        # 1. Claiming a free entry in Pavel's name.
        free = _entry(app_db, f"+7495444{n:04d}")
        response = await olga.post(
            f"/api/callbacks/{free}/claim", variant.body({}), variant.content_type
        )
        claimed_by = _callback(app_db, free).claimed_by
        check(
            variant,
            "claim as Pavel",
            response,
            claimed_by != PAVEL and (response.status_code in (403, 422) or claimed_by == OLGA),
        )

        # 2-4. Releasing, closing and calling what Pavel holds.
        for action, path, fields in (
            ("release Pavel's claim", "release", {}),
            ("close Pavel's claim", "outcome", {"outcome": "reached"}),
            ("click-to-call on Pavel's claim", "call", {}),
        ):
            held = _entry(app_db, f"+7495555{next(numbers):04d}")
            took = await pavel.post(f"/api/callbacks/{held}/claim", {"operator": PAVEL})
            assert took.status_code == 200, took.text
            response = await olga.post(
                f"/api/callbacks/{held}/{path}", variant.body(fields), variant.content_type
            )
            after = _callback(app_db, held)
            check(
                variant,
                action,
                response,
                response.status_code in (403, 409, 422)
                and after.status == "open"
                and after.claimed_by == PAVEL
                and after.active_call_id is None
                and _history_as(app_db, held, PAVEL) == ["claimed"],
            )

        # 5. Replacing Pavel's disposition (or signing one with his name).
        call_id = _call(app_db, f"acting-{n}")
        mine = await pavel.post(f"/api/calls/{call_id}/disposition", {"category": "consultation"})
        assert mine.status_code == 200, mine.text
        response = await olga.post(
            f"/api/calls/{call_id}/disposition",
            variant.body({"category": "complaint"}),
            variant.content_type,
        )
        detail = (await pavel.http.get(f"/api/calls/{call_id}")).json()
        check(
            variant,
            "replace Pavel's disposition",
            response,
            response.status_code == 403
            and detail["disposition"]["category"] == "consultation"
            and detail["disposition"]["operator"] == PAVEL,
        )
        fresh = _call(app_db, f"acting-fresh-{n}")
        response = await olga.post(
            f"/api/calls/{fresh}/disposition",
            variant.body({"category": "complaint"}),
            variant.content_type,
        )
        saved = (await olga.http.get(f"/api/calls/{fresh}")).json()["disposition"]
        check(
            variant,
            "sign a disposition as Pavel",
            response,
            response.status_code == 403 or (saved is not None and saved["operator"] == OLGA),
        )

    assert not broken, "operator Olga acted as Pavel:\n" + "\n".join(broken)


async def test_an_operator_changes_only_their_own_agent_state_in_any_spelling(
    browsers: dict[str, Browser],
) -> None:
    olga = browsers["olga"]
    for content_type in ("Application/JSON", "application/vnd.x+json"):
        response = await olga.post(f"/api/agents/{PAVEL}/pause", {"reason": "x"}, content_type)
        assert response.status_code == 403, response.text


async def test_a_supervisor_acting_for_an_operator_is_recorded_as_themself(
    app_db: Database, browsers: dict[str, Browser]
) -> None:
    sup = browsers["sup"]
    entry = _entry(app_db, "+74956660001")

    claimed = await sup.post(f"/api/callbacks/{entry}/claim", {"operator": PAVEL})
    nobody = await sup.post(f"/api/callbacks/{entry}/claim", {})

    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["claimed_by"] == PAVEL
    row = claimed.json()["history"][-1]
    assert (row["action"], row["operator"], row["data"]["by"]) == ("claimed", PAVEL, "sup")
    # Claiming needs someone to claim for: a supervisor must say whom.
    assert nobody.status_code == 422
    page = await sup.http.get(f"/callbacks/{entry}/history", params={"lang": "en"})
    assert f"claimed — {PAVEL} (by sup)" in page.text, page.text

    call_id = _call(app_db, "acting-sup")
    saved = await sup.post(
        f"/api/calls/{call_id}/disposition", {"category": "consultation", "operator": PAVEL}
    )
    assert saved.status_code == 200, saved.text
    assert (saved.json()["operator"], saved.json()["changed_by"]) == (PAVEL, "sup")


async def test_every_disposition_save_is_kept_with_who_and_when(
    app_db: Database, browsers: dict[str, Browser]
) -> None:
    pavel, sup = browsers["pavel"], browsers["sup"]
    call_id = _call(app_db, "acting-history")

    first = await pavel.post(
        f"/api/calls/{call_id}/disposition", {"category": "consultation", "note": "first"}
    )
    second = await sup.post(
        f"/api/calls/{call_id}/disposition",
        {"category": "complaint", "note": "second", "operator": PAVEL},
    )
    assert first.status_code == 200 and second.status_code == 200, second.text

    detail = (await pavel.http.get(f"/api/calls/{call_id}")).json()
    history = detail["disposition_history"]
    assert [(h["category"], h["note"], h["operator"], h["changed_by"]) for h in history] == [
        ("consultation", "first", PAVEL, "pavel"),
        ("complaint", "second", PAVEL, "sup"),
    ]
    assert history[0]["at"] <= history[1]["at"]  # fixed-width UTC strings order in time
    assert history[1]["at"] == detail["disposition"]["updated_at"]
    assert detail["disposition"]["category"] == "complaint"

    page = await pavel.http.get(f"/calls/{call_id}")
    table = re.search(
        r'<table class="timeline" id="disposition-history">.*?</table>', page.text, re.S
    )
    assert table, page.text
    assert table[0].count("<tr>") == 3  # the header and both saves
    assert "first" in table[0] and "second" in table[0] and "sup" in table[0]


async def test_an_operator_cannot_take_the_disposition_of_a_call_another_operator_answered(
    app_db: Database, browsers: dict[str, Browser]
) -> None:
    """Olga files her disposition on Pavel's call before he does: the call log would show
    her answer, and Pavel would be refused on his own call (`not_yours`). The call log names
    the operator by login (click-to-call) or by roster name (the queue's MemberName)."""
    olga, pavel = browsers["olga"], browsers["pavel"]
    for linkedid, named, phone in (
        ("squat-login", PAVEL, None),
        ("squat-name", "Pavel", None),
        # Renamed since the call: his phone's AgentConnect still says it was his.
        ("squat-renamed", "Pavel Old-Name", f"PJSIP/{PAVEL}"),
    ):
        call_id = _call(app_db, linkedid)
        with app_db.session() as session:
            row = session.get(Call, call_id)
            assert row is not None
            row.operator = named
            if phone is not None:
                session.add(
                    CallEvent(
                        call_id=call_id,
                        kind=EVENT_CONNECT,
                        key=f"{linkedid}-connect",
                        data={"interface": phone},
                    )
                )
        squat = await olga.post(f"/api/calls/{call_id}/disposition", {"category": "complaint"})
        assert squat.status_code == 403, f"{named}: {squat.status_code} {squat.text}"
        own = await pavel.post(f"/api/calls/{call_id}/disposition", {"category": "consultation"})
        assert own.status_code == 200, own.text
        detail = (await pavel.http.get(f"/api/calls/{call_id}")).json()
        assert [h["changed_by"] for h in detail["disposition_history"]] == ["pavel"]


async def test_an_operator_account_linked_to_nobody_cannot_open_another_operators_pages(
    app_db: Database, browsers: dict[str, Browser]
) -> None:
    """`?operator=LOGIN` is for supervisors; an operator account linked to no roster login
    (or an operator-role API token) must not get Pavel's page, his live feed or his claims
    shown as its own by naming him."""
    with app_db.session() as session:
        accounts.create_user(session, "loose", PASSWORD, "operator", now=datetime.now(UTC))
    sup = browsers["sup"]
    seen = await sup.http.get("/operator", params={"operator": PAVEL})
    assert f'data-login="{PAVEL}"' in seen.text  # the supervisor may (the marker is right)

    async with httpx.AsyncClient(transport=sup.http._transport, base_url=BASE) as http:
        await sign_in(http, "loose")
        page = await http.get("/operator", params={"operator": PAVEL})
        assert page.status_code == 200
        assert f'data-login="{PAVEL}"' not in page.text
        lists = await http.get("/callbacks/lists", params={"operator": PAVEL})
        assert lists.status_code == 200
        assert lists.text == (await http.get("/callbacks/lists")).text
        async with http.stream("GET", "/api/operator/stream", params={"operator": PAVEL}) as stream:
            assert stream.status_code in (403, 422)
