"""The supervisor's accounts pages: `/admin/users` (dashboard accounts) and `/admin/tokens`
(API tokens).

Every change goes through call_router/accounts.py, as `hotline users …` and `hotline tokens …`
do: the same rules and messages. A password or token made here is shown once, in the answer to
the POST that made it (never in a URL; `Cache-Control: no-store`), and only its hash is kept.
The supervisor router checks the role and the CSRF token of every form.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from call_router import accounts
from call_router.accounts import AccountError
from call_router.models import utcnow
from call_router.operators import list_operators
from dashboard.deps import PrincipalDep, SessionDep, StateDep
from dashboard.routes.account_forms import create_account, notice_page, redirect_done
from dashboard.routes.login import throttle
from dashboard.routes.schemas import RowId

router = APIRouter(include_in_schema=False)

FORM_MAX = 1024
# What a redirect after a change may announce (`?done=`); anything else is ignored.
USER_NOTICES = frozenset({"created", "password", "disabled", "enabled", "linked"})
TOKEN_NOTICES = frozenset({"revoked"})


def _error(exc: AccountError) -> dict[str, Any]:
    return {"code": exc.code, "values": exc.values}


def _users_page(
    request: Request,
    session: SessionDep,
    state: StateDep,
    *,
    shown: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "users": accounts.list_users(session),
        "operators": list_operators(session),
        "roles": accounts.ROLES,
        "min_password": accounts.MIN_PASSWORD_LENGTH,
        "shown": shown,
        "error": error,
        "form": form or {"username": "", "role": accounts.OPERATOR, "operator": ""},
    }
    return notice_page(request, state, "admin_users.html", USER_NOTICES, context, status_code)


@router.get("/admin/users", response_class=HTMLResponse, name="admin_users_page")
def admin_users_page(request: Request, session: SessionDep, state: StateDep) -> Response:
    return _users_page(request, session, state)


@router.post("/admin/users", response_class=HTMLResponse, name="admin_user_create")
def admin_user_create(
    request: Request,
    session: SessionDep,
    state: StateDep,
    username: Annotated[str, Form(max_length=64)] = "",
    role: Annotated[str, Form(max_length=16)] = "",
    operator: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=FORM_MAX)] = "",
) -> Response:
    """Create an account; an empty password field means "generate one and show it once"."""
    try:
        made = create_account(
            state, username=username, password=password, role=role, operator=operator
        )
    except AccountError as exc:
        form = {"username": username, "role": role, "operator": operator}
        return _users_page(request, session, state, error=_error(exc), form=form, status_code=400)
    if not made.generated:
        return redirect_done(request, "admin_users_page", "created", made.name)
    return _users_page(request, session, state, shown=made.shown)


@router.post(
    "/admin/users/{username}/password", response_class=HTMLResponse, name="admin_user_password"
)
def admin_user_password(
    username: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    password: Annotated[str, Form(max_length=FORM_MAX)] = "",
) -> Response:
    """A new password (typed, or generated and shown once); the account's sessions end and
    its failed sign-ins are forgiven."""
    secret, generated = accounts.password_or_generated(password or None)
    try:
        with state.db.session() as writer:
            accounts.set_password(writer, username, secret)
    except AccountError as exc:
        return _users_page(request, session, state, error=_error(exc), status_code=400)
    throttle(request, state).forget_account(username)
    if not generated:
        return redirect_done(request, "admin_users_page", "password", username)
    shown = {"kind": "password", "name": username, "secret": secret}
    return _users_page(request, session, state, shown=shown)


@router.post("/admin/users/{username}/active", name="admin_user_active")
def admin_user_active(
    username: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    principal: PrincipalDep,
    active: Annotated[bool, Form()],
) -> Response:
    """Disable (its sessions end at once) or enable an account."""
    if not active and principal.kind == "user" and principal.name == username:
        # Would lock the one person at this page out of it.
        error = {"code": "self_disable", "values": {}}
        return _users_page(request, session, state, error=error, status_code=400)
    try:
        with state.db.session() as writer:
            accounts.set_active(writer, username, active)
    except AccountError as exc:
        return _users_page(request, session, state, error=_error(exc), status_code=400)
    return redirect_done(request, "admin_users_page", "enabled" if active else "disabled", username)


@router.post("/admin/users/{username}/operator", name="admin_user_operator")
def admin_user_operator(
    username: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    operator: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Link the account to a roster operator (empty: unlink)."""
    try:
        with state.db.session() as writer:
            accounts.link_operator(writer, username, operator or None)
    except AccountError as exc:
        return _users_page(request, session, state, error=_error(exc), status_code=400)
    return redirect_done(request, "admin_users_page", "linked", username)


# --- API tokens -----------------------------------------------------------------------------


def _tokens_page(
    request: Request,
    session: SessionDep,
    state: StateDep,
    *,
    shown: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "tokens": accounts.list_tokens(session),
        "roles": accounts.ROLES,
        "shown": shown,
        "error": error,
        "form": form or {"name": "", "role": accounts.SUPERVISOR},
    }
    return notice_page(request, state, "admin_tokens.html", TOKEN_NOTICES, context, status_code)


@router.get("/admin/tokens", response_class=HTMLResponse, name="admin_tokens_page")
def admin_tokens_page(request: Request, session: SessionDep, state: StateDep) -> Response:
    return _tokens_page(request, session, state)


@router.post("/admin/tokens", response_class=HTMLResponse, name="admin_token_create")
def admin_token_create(
    request: Request,
    session: SessionDep,
    state: StateDep,
    role: Annotated[str, Form(max_length=16)] = "",
    name: Annotated[str, Form(max_length=FORM_MAX)] = "",
) -> Response:
    """A new API token, shown once in this answer."""
    try:
        with state.db.session() as writer:
            token, row = accounts.create_token(writer, role, name=name, now=utcnow())
            label = row.name
    except AccountError as exc:
        form = {"name": name, "role": role}
        return _tokens_page(request, session, state, error=_error(exc), form=form, status_code=400)
    shown = {"kind": "token", "name": label, "secret": token}
    return _tokens_page(request, session, state, shown=shown)


@router.post("/admin/tokens/{token_id}/revoke", name="admin_token_revoke")
def admin_token_revoke(
    token_id: RowId, request: Request, session: SessionDep, state: StateDep
) -> Response:
    try:
        with state.db.session() as writer:
            accounts.revoke_token(writer, token_id, now=utcnow())
    except AccountError as exc:
        return _tokens_page(request, session, state, error=_error(exc), status_code=404)
    return redirect_done(request, "admin_tokens_page", "revoked", str(token_id))
