"""The centre's tenants administration: `/admin/tenants` (list, create) and
`/admin/tenants/{slug}` (its dialled numbers and its dashboard accounts).

Centre supervisors only (dashboard/main.py: a tenant's account never sees another tenant's
name). Every change goes through call_router/tenants.py and call_router/accounts.py, as
`hotline tenants add`, `hotline numbers add --tenant` and `hotline users add --tenant` do: the
same rules and messages. Forms are POSTs checked for CSRF by the access rule; a generated
password is shown once in the answer to its POST (`Cache-Control: no-store`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from call_router import accounts, tenants
from call_router.accounts import AccountError
from call_router.models import utcnow
from call_router.tenant_models import Tenant
from call_router.tenants import TenantError
from dashboard.deps import SessionDep, StateDep
from dashboard.routes.account_forms import create_account, notice_page, redirect_done

router = APIRouter(include_in_schema=False)

# What a redirect after a change may announce (`?done=`); anything else is ignored.
NOTICES = frozenset({"tenant", "number", "user"})


def _tenants_page(
    request: Request,
    session: Session,
    state: StateDep,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    numbers: dict[int | None, list[str]] = {}
    for row in tenants.list_numbers(session):
        numbers.setdefault(row.tenant_id, []).append(row.number)
    users: dict[int | None, int] = {}
    for user in accounts.list_users(session):
        users[user.tenant_id] = users.get(user.tenant_id, 0) + 1
    context = {
        "tenants": tenants.list_tenants(session),
        "numbers": numbers,
        "users": users,
        "error": error,
        "form": form or {"name": "", "slug": ""},
    }
    return notice_page(request, state, "admin_tenants.html", NOTICES, context, status_code)


@router.get("/admin/tenants", response_class=HTMLResponse, name="admin_tenants_page")
def admin_tenants_page(request: Request, session: SessionDep, state: StateDep) -> Response:
    return _tenants_page(request, session, state)


@router.post("/admin/tenants", response_class=HTMLResponse, name="admin_tenant_create")
def admin_tenant_create(
    request: Request,
    session: SessionDep,
    state: StateDep,
    name: Annotated[str, Form(max_length=256)] = "",
    slug: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    try:
        with state.db.session() as writer:
            created = tenants.add_tenant(writer, name, slug=slug.strip() or None, now=utcnow())
            label = created.slug
    except TenantError as exc:
        form = {"name": name, "slug": slug}
        return _tenants_page(request, session, state, error=str(exc), form=form, status_code=400)
    return redirect_done(request, "admin_tenant_page", "tenant", label, slug=label)


def _tenant(session: Session, slug: str) -> Tenant:
    tenant = tenants.get_tenant(session, slug)
    if tenant is None:
        raise HTTPException(404, detail="no such tenant")
    return tenant


def _tenant_page(
    request: Request,
    session: Session,
    state: StateDep,
    slug: str,
    *,
    error: str | None = None,
    shown: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    tenant = _tenant(session, slug)
    context = {
        "tenant": tenant,
        "numbers": [n for n in tenants.list_numbers(session) if n.tenant_id == tenant.id],
        "users": [u for u in accounts.list_users(session) if u.tenant_id == tenant.id],
        "roles": accounts.ROLES,
        "min_password": accounts.MIN_PASSWORD_LENGTH,
        "error": error,
        "shown": shown,
        "form": form or {"number": "", "username": "", "role": accounts.SUPERVISOR},
    }
    return notice_page(request, state, "admin_tenant.html", NOTICES, context, status_code)


@router.get("/admin/tenants/{slug}", response_class=HTMLResponse, name="admin_tenant_page")
def admin_tenant_page(
    slug: str, request: Request, session: SessionDep, state: StateDep
) -> Response:
    return _tenant_page(request, session, state, slug)


@router.post("/admin/tenants/{slug}/numbers", name="admin_tenant_number")
def admin_tenant_number(
    slug: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    number: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Point a dialled number at this tenant (a number already pointed elsewhere moves)."""
    _tenant(session, slug)
    try:
        with state.db.session() as writer:
            label = tenants.add_number(writer, number, slug, now=utcnow()).number
    except TenantError as exc:
        form = {"number": number, "username": "", "role": accounts.SUPERVISOR}
        return _tenant_page(
            request, session, state, slug, error=str(exc), form=form, status_code=400
        )
    return redirect_done(request, "admin_tenant_page", "number", label, slug=slug)


@router.post("/admin/tenants/{slug}/users", response_class=HTMLResponse, name="admin_tenant_user")
def admin_tenant_user(
    slug: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    username: Annotated[str, Form(max_length=64)] = "",
    role: Annotated[str, Form(max_length=16)] = "",
    operator: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """A dashboard account of this tenant: it sees this tenant's rows only."""
    _tenant(session, slug)
    try:
        made = create_account(
            state, username=username, password=password, role=role, operator=operator, tenant=slug
        )
    except AccountError as exc:
        form = {"number": "", "username": username, "role": role}
        return _tenant_page(
            request, session, state, slug, error=str(exc), form=form, status_code=400
        )
    if not made.generated:
        return redirect_done(request, "admin_tenant_page", "user", made.name, slug=slug)
    return _tenant_page(request, session, state, slug, shown=made.shown)
