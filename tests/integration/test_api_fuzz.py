"""The dashboard's HTTP API fuzzed from its own OpenAPI description (schemathesis, issue 10),
through the real app on the real PostgreSQL and Redis, as an operator and as a supervisor.

Every operation gets a few generated requests (valid and invalid shapes) from each role; none
may answer a server error (5xx), and an operator never gets a 2xx from a supervisor-only
route (its data). Bounded (MAX_EXAMPLES per operation, no shrinking) so it stays in the suite.
The description itself is fetched with credentials: it is staff-only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from call_router import accounts, callback_intake, callbacks
from call_router.db import Database
from call_router.models import Call
from call_router.operators import add_operator, parse_skills
from call_router.settings import Settings
from dashboard import auth
from dashboard.main import create_app
from tests.conftest import bearer_headers
from tests.integration.conftest import REDIS_URL, emptied_postgres

# ~1000 requests, about 30 s on a quiet 2-core machine.
MAX_EXAMPLES = 25
# Server-Sent Events never end; they are tested in test_live_streams.py.
ENDLESS = re.compile(r"/stream$")
OPERATOR_LOGIN = "3201"
PASSWORD = "a long enough secret"


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    db = emptied_postgres(postgres_url)
    try:
        yield db
    finally:
        db.dispose()


@dataclass
class Role:
    name: str
    headers: dict[str, str]
    cookies: dict[str, str] = field(default_factory=dict)


def _seed(db: Database) -> list[Role]:
    """A few rows for generated ids to land on, an operator account and a supervisor token."""
    now = datetime.now(UTC)
    with db.session() as session:
        add_operator(session, "Olga", parse_skills("heating"), login=OPERATOR_LOGIN)
        for n in range(1, 4):
            session.add(
                Call(
                    started_at=now - timedelta(minutes=n),
                    caller_number=f"+7495123000{n}",
                    linkedid=f"fuzz-{n}",
                    operator=OPERATOR_LOGIN,
                )
            )
            callback_intake.open_or_attach(
                session,
                caller_number=f"+7495765000{n}",
                reason="abandoned_in_queue",
                queue="heating",
                call_id=None,
                now=now,
                rules=callbacks.CallbackRules.from_settings(Settings()),
            )
        user = accounts.create_user(
            session, "olga", PASSWORD, "operator", operator_login=OPERATOR_LOGIN, now=now
        )
        cookie, row = accounts.start_session(session, user, now=now, lifetime=timedelta(hours=1))
        csrf = row.csrf_token
    return [
        Role("supervisor", bearer_headers(db, role="supervisor", name="fuzz")),
        Role("operator", {"X-CSRF-Token": csrf}, {"hotline_session": cookie}),
    ]


def test_fuzzing_the_api_finds_no_server_error_and_no_leak_to_operators(
    pg: Database, tmp_path: Path, redis_prefix: str
) -> None:
    roles = _seed(pg)
    app = create_app(
        Settings(
            state_dir=tmp_path / "state",
            ami_port=1,  # nothing listens: agent changes are stored as pending
            redis_url=REDIS_URL,
            redis_prefix=redis_prefix,
        ),
        pg,
        zone=ZoneInfo("UTC"),
    )
    supervisor_only = {
        info.path for info in auth.route_table(app) if info.rule in auth.SUPERVISOR_RULES
    }
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=roles[0].headers)
    problems: list[str] = []
    tried = 0
    fuzzed_supervisor_only = []

    for result in schema.get_all_operations():
        operation = result.ok()
        if ENDLESS.search(operation.path):
            continue
        tried += 1
        if operation.path in supervisor_only:
            fuzzed_supervisor_only.append(operation.path)  # /api/wallboard
        _fuzz(operation, roles, operation.path in supervisor_only, problems)

    assert tried > 20, f"only {tried} operations in the description"
    assert fuzzed_supervisor_only, "no supervisor-only operation was tried as an operator"
    assert not problems, "\n".join(sorted(set(problems)))


def _dependency_down(response: Any) -> bool:
    """The documented answer when Asterisk is away (this app has none): 503 with its code, not
    a server error (call control, dashboard/routes/api_control.py)."""
    if response.status_code != 503:
        return False
    try:
        return bool(response.json().get("code") == "asterisk_unavailable")
    except ValueError:
        return False


def _fuzz(operation: Any, roles: list[Role], supervisor_only: bool, problems: list[str]) -> None:
    """MAX_EXAMPLES generated requests to one operation, each sent by every role."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def exercise(case: Any) -> None:
        for role in roles:
            where = f"{role.name}: {case.method} {case.formatted_path}"
            try:
                response = case.call(headers=dict(role.headers), cookies=dict(role.cookies))
            except Exception as exc:  # an unhandled error inside the app: a 500 in production
                problems.append(f"{where} -> raised {exc!r}")
                continue
            if response.status_code >= 500 and not _dependency_down(response):
                problems.append(f"{where} -> {response.status_code} {response.text[:300]}")
            if role.name == "operator" and supervisor_only and response.status_code < 300:
                problems.append(f"{where} -> {response.status_code}: supervisor-only data")

    exercise()
