"""The centre's tenants administration (/admin/tenants) through the real app (httpx + ASGI) on
SQLite and PostgreSQL, with the real forms (session cookie and CSRF token): a tenant, its
dialled number and its supervisor are created, the new account signs in and sees its tenant's
calls only; a form without the CSRF token and a tenant's own supervisor are refused."""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime

from call_router import accounts, tenants
from call_router.db import Database
from call_router.models import Call
from tests.integration.test_admin_pages import (
    HOSTILE,
    PASSWORD,
    Client,
    app,
    app_db,
    clients,
    page_csrf,
    shown_secret,
    sign_in,
    supervisor,
)

__all__ = ["app", "app_db", "clients"]  # fixtures, used by name


async def test_a_centre_supervisor_creates_a_tenant_its_number_and_its_supervisor(
    clients: Client, app_db: Database
) -> None:
    http, csrf = await supervisor(clients)
    csrf = await page_csrf(http, "/admin/tenants")
    created = await http.post(
        "/admin/tenants", data={"name": "Dom Service", "slug": "", "csrf_token": csrf}
    )
    assert created.status_code == 303, created.text
    assert created.headers["location"].startswith("/admin/tenants/dom-service?done=tenant")
    page = await http.get("/admin/tenants/dom-service")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"

    number = await http.post(
        "/admin/tenants/dom-service/numbers", data={"number": "8 800 100-20-30", "csrf_token": csrf}
    )
    assert number.status_code == 303, number.text
    bad = await http.post(
        "/admin/tenants/dom-service/numbers", data={"number": HOSTILE, "csrf_token": csrf}
    )
    assert bad.status_code == 400 and HOSTILE not in bad.text

    user = await http.post(
        "/admin/tenants/dom-service/users",
        data={"username": "ds-boss", "role": "supervisor", "password": "", "csrf_token": csrf},
    )
    assert user.status_code == 200, user.text
    secret = shown_secret(user)
    listing = await http.get("/admin/tenants")
    assert 'id="tenant-dom-service"' in listing.text and "88001002030" in listing.text
    # A tenant whose name is markup is shown as text.
    hostile = await http.post(
        "/admin/tenants", data={"name": HOSTILE, "slug": "evil", "csrf_token": csrf}
    )
    assert hostile.status_code == 303
    listing = await http.get("/admin/tenants")
    assert HOSTILE not in listing.text and html.escape(HOSTILE, quote=False)[:10] in listing.text

    with app_db.session() as session:
        tenant = tenants.require_tenant(session, "dom-service")
        assert tenants.tenant_for_number(session, "88001002030") == tenant.id
        account = accounts.get_user(session, "ds-boss")
        assert account is not None and account.tenant_id == tenant.id
        session.add_all(
            [
                Call(
                    linkedid=uuid.uuid4().hex,
                    caller_number=number,
                    started_at=datetime.now(UTC),
                    operator=f"op-{number}",
                    tenant_id=tenant_id,
                )
                for number, tenant_id in (("79140000011", tenant.id), ("79140000022", None))
            ]
        )

    # The new account signs in, sees its tenant's calls only and no centre page.
    boss = clients()
    assert await sign_in(boss, "ds-boss", secret) == 303
    calls = (await boss.get("/api/calls")).json()
    assert [row["caller_number"] for row in calls] == ["79140000011"]
    assert (await boss.get("/admin/tenants")).status_code == 403
    nav = await boss.get("/calls")
    assert 'id="nav-tenants"' not in nav.text and 'id="nav-admin"' not in nav.text


async def test_forms_without_csrf_and_tenant_supervisors_are_refused(
    clients: Client, app_db: Database
) -> None:
    with app_db.session() as session:
        tenants.add_tenant(session, "Dom A", slug="dom-a")
        accounts.create_user(
            session, "a-boss", PASSWORD, "supervisor", tenant="dom-a", now=datetime.now(UTC)
        )
    http, _csrf = await supervisor(clients)
    forged = await http.post("/admin/tenants", data={"name": "Forged", "slug": "forged"})
    assert forged.status_code == 403
    tenant_boss = clients()
    assert await sign_in(tenant_boss, "a-boss") == 303
    csrf = await page_csrf(tenant_boss, "/calls")
    for path, data in (
        ("/admin/tenants", {"name": "Mine", "slug": "mine"}),
        ("/admin/tenants/dom-a/numbers", {"number": "500100"}),
        ("/admin/tenants/dom-a/users", {"username": "x1", "role": "supervisor"}),
    ):
        refused = await tenant_boss.post(path, data={**data, "csrf_token": csrf})
        assert refused.status_code == 403, path
    with app_db.session() as session:
        assert [t.slug for t in tenants.list_tenants(session)] == ["dom-a"]
        assert tenants.list_numbers(session) == []
    # An unknown tenant's page: 404.
    assert (await http.get("/admin/tenants/nobody")).status_code == 404
