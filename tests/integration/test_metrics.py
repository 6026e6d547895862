"""`/metrics` scraped like Prometheus does (a supervisor's Bearer token) and parsed with the
Prometheus client's own parser, on SQLite and PostgreSQL with the real Redis live state and a
router health report; no token is 401, an operator's or a tenant's token is 403."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from call_router import accounts, health, tenants
from call_router.call_event_kinds import EVENT_AGI_FAILED
from call_router.db import Database
from call_router.models import Call, CallEvent, Operator
from call_router.settings import Settings
from dashboard.main import create_app
from tests.conftest import PORT_BASE, bearer_headers, midday_zone
from tests.integration.conftest import REDIS_URL, router_heartbeat


def add_call(db: Database, started_at: datetime, **fields: Any) -> int:
    with db.session() as session:
        call = Call(
            started_at=started_at, caller_number="+74951234567", linkedid=uuid.uuid4().hex, **fields
        )
        session.add(call)
        session.flush()
        return call.id


@pytest.fixture
async def app_settings(
    database: Database, tmp_path: Path, redis_client: Redis, redis_prefix: str
) -> AsyncIterator[Settings]:
    await router_heartbeat(redis_client, redis_prefix)
    settings = Settings(
        state_dir=tmp_path / "state",
        country_code="RU",
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        service_level_seconds=20,
        # Nothing listens here (the test's own ports): both are reported down.
        ami_port=PORT_BASE + 43,
        agi_port=PORT_BASE + 44,
    )
    yield settings


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_scraped_and_parsed(
    database: Database, app_settings: Settings, redis_client: Redis, redis_prefix: str
) -> None:
    now = datetime.now(UTC)
    add_call(
        database, now - timedelta(minutes=10), queue="heating",
        queue_joined_at=now - timedelta(minutes=10),
        answered_at=now - timedelta(minutes=10) + timedelta(seconds=8),
        ended_at=now - timedelta(minutes=5), outcome="answered", wait_seconds=8, talk_seconds=292,
        operator="Anna",
    )  # fmt: skip
    add_call(
        database, now - timedelta(minutes=8), queue="heating",
        queue_joined_at=now - timedelta(minutes=8), ended_at=now - timedelta(minutes=7),
        outcome="abandoned_in_queue", wait_seconds=60,
    )  # fmt: skip
    waiting = add_call(
        database, now - timedelta(seconds=90), queue="heating",
        queue_joined_at=now - timedelta(seconds=75),
    )  # fmt: skip
    failed = add_call(database, now - timedelta(minutes=3), ended_at=now - timedelta(minutes=2))
    with database.session() as session:
        session.add(
            CallEvent(call_id=failed, at=now, kind=EVENT_AGI_FAILED, key="agi_failed", data={})
        )
        session.add(Operator(name="Anna", sip_login="1001", sip_password="x" * 16))
    await redis_client.hset(
        f"{redis_prefix}:live:calls",
        "L1",
        json.dumps(
            {
                "call_id": waiting,
                "caller_number": "+74951234567",
                "stage": "queue",
                "queue": "heating",
            }
        ),
    )
    await redis_client.hset(f"{redis_prefix}:live:queues", "heating", 1)
    health.write_router_health(
        health.router_health_path(app_settings),
        health.RouterReport(
            updated_at=now, ami_connected=True, asterisk_started_at=now - timedelta(hours=1),
            lag_seconds=0.25, pending_events=3, spool_depth=7, database_reachable=False, backlog=11,
            failed_events=2,
        ),
    )  # fmt: skip
    # The "_today" figures count from local midnight: a zone where it is midday keeps the calls
    # of ten minutes ago in today whatever the hour the suite runs at.
    app = create_app(app_settings, database, zone=midday_zone())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dashboard.test"
    ) as http:
        scraped = await http.get("/metrics", headers=bearer_headers(database))
        assert scraped.status_code == 200, scraped.text
        assert scraped.headers["content-type"].startswith("text/plain; version=")
        found = samples(scraped.text)

        assert found[("hotline_queue_waiting", (("queue", "heating"),))] == 1
        assert found[("hotline_queue_longest_wait_seconds", (("queue", "heating"),))] >= 75
        assert found[("hotline_queue_offered_today", (("queue", "heating"),))] == 3
        assert found[("hotline_queue_answered_today", (("queue", "heating"),))] == 1
        assert found[("hotline_queue_abandoned_today", (("queue", "heating"),))] == 1
        # The caller waiting 75 s already counts against the 20 s service level.
        level = found[("hotline_queue_service_level_today", (("queue", "heating"),))]
        assert level == pytest.approx(1 / 3)
        assert found[("hotline_queue_waiting", (("queue", "plumbing"),))] == 0
        assert found[("hotline_calls_in_progress", ())] == 1
        assert found[("hotline_live_state_ok", ())] == 1
        assert found[("hotline_router_up", ())] == 1
        assert found[("hotline_ami_connected", ())] == 1
        assert found[("hotline_ami_lag_seconds", ())] == 0.25
        assert found[("hotline_router_pending_events", ())] == 3
        assert found[("hotline_router_backlog_events", ())] == 11
        assert found[("hotline_router_spool_depth", ())] == 7
        # Errors: events the router could not write, a counter for rate() in Grafana.
        assert found[("hotline_router_failed_events_total", ())] == 2
        assert found[("hotline_database_reachable", ())] == 0
        assert found[("hotline_agi_failsafe_calls_today", ())] == 1
        assert found[("hotline_dependency_up", (("dependency", "redis"),))] == 1
        # Nothing listens on the test's AMI/FastAGI ports: said, not hidden.
        assert found[("hotline_dependency_up", (("dependency", "asterisk"),))] == 0
        assert found[("hotline_dependency_up", (("dependency", "fastagi"),))] == 0

        # Without a token: 401, and no figure leaks.
        anonymous = await http.get("/metrics")
        assert anonymous.status_code == 401 and "hotline_" not in anonymous.text
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer not-a-token"})
        assert wrong.status_code == 401
        # An operator's token, and a tenant's supervisor token: 403.
        operator = await http.get("/metrics", headers=bearer_headers(database, role="operator"))
        assert operator.status_code == 403
        with database.session() as session:
            tenants.add_tenant(session, "Other company", slug="other")
            token, _ = accounts.create_token(
                session, "supervisor", name="tenant", now=now, tenant="other"
            )
        tenant_scrape = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert tenant_scrape.status_code == 403 and "hotline_" not in tenant_scrape.text
