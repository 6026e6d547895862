"""What the account pages share: `/admin/users` (the centre's accounts) and
`/admin/tenants/{slug}` (a tenant's accounts) create accounts from the same form fields, by the
same rules (call_router/accounts.py), and show a generated password once on a page that is
never cached; a redirect after a change may announce it (`?done=`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from call_router import accounts
from call_router.models import utcnow
from dashboard.deps import StateDep
from dashboard.i18n import render


@dataclass(frozen=True)
class NewAccount:
    """An account just made: `secret` is its password, to show once when `generated`."""

    name: str
    secret: str
    generated: bool

    @property
    def shown(self) -> dict[str, str]:
        return {"kind": "created", "name": self.name, "secret": self.secret}


def create_account(
    state: StateDep,
    *,
    username: str,
    password: str,
    role: str,
    operator: str,
    tenant: str | None = None,
) -> NewAccount:
    """An account from the form's fields (an empty password: one is generated); raises
    AccountError with the rule it broke."""
    name = username.strip()
    secret, generated = accounts.password_or_generated(password or None)
    with state.db.session() as writer:
        accounts.create_user(
            writer,
            name,
            secret,
            role,
            operator_login=operator.strip() or None,
            tenant=tenant,
            now=utcnow(),
        )
    return NewAccount(name, secret, generated)


def notice(request: Request, allowed: frozenset[str]) -> dict[str, str] | None:
    """What `?done=` announces, if it is one of `allowed` (anything else is ignored)."""
    done = request.query_params.get("done", "")
    if done not in allowed:
        return None
    return {"code": done, "name": request.query_params.get("name", "")[:64]}


def no_store_page(
    request: Request,
    state: StateDep,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> Response:
    """The page may hold a password or token shown once: no cache, no back-button copy."""
    response = render(
        state.templates,
        request,
        template,
        context,
        state.settings.default_language,
        status_code=status_code,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def notice_page(
    request: Request,
    state: StateDep,
    template: str,
    notices: frozenset[str],
    context: dict[str, Any],
    status_code: int = 200,
) -> Response:
    """An account page: `context`, and what `?done=` announces if it is one of `notices`."""
    shown = {"search": None, "notice": notice(request, notices), **context}
    return no_store_page(request, state, template, shown, status_code)


def redirect_done(request: Request, page: str, done: str, label: str, **params: str) -> Response:
    """After a change: back to the named page, announcing it (`?done=` and its name)."""
    target = request.app.url_path_for(page, **params)
    return RedirectResponse(f"{target}?{urlencode({'done': done, 'name': label})}", 303)
