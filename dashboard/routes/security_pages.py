"""The supervisor's `/admin/security` page: SIP addresses banned for failed authentications
(call_router/sip_bans.py), each with a button to lift the ban.

Lifting only ends the ban in the database, as `hotline security unban` does; the router, which
keeps Asterisk's ACL equal to the active bans, lets the address in again within seconds. The
supervisor router checks the role and the CSRF token of the form.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from call_router import sip_bans
from call_router.models import utcnow
from dashboard.deps import PrincipalDep, SessionDep, StateDep
from dashboard.i18n import render

router = APIRouter(include_in_schema=False)

NOTICES = frozenset({"lifted", "not_banned"})


@router.get("/admin/security", response_class=HTMLResponse, name="admin_security_page")
def admin_security_page(request: Request, session: SessionDep, state: StateDep) -> Response:
    done = request.query_params.get("done", "")
    notice = (
        {"code": done, "name": request.query_params.get("address", "")[:45]}
        if done in NOTICES
        else None
    )
    context = {
        "search": None,
        "bans": sip_bans.active_bans(session, utcnow()),
        "notice": notice,
        "error": None,
    }
    response = render(
        state.templates, request, "admin_security.html", context, state.settings.default_language
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/admin/security/{address}/lift", name="admin_security_lift")
def admin_security_lift(
    address: str, request: Request, state: StateDep, principal: PrincipalDep
) -> Response:
    try:
        normal = str(ipaddress.ip_address(address))
    except ValueError:
        normal = ""
    lifted = 0
    if normal:
        with state.db.session() as writer:
            lifted = sip_bans.lift(writer, normal, by=principal.name, now=utcnow())
    done = "lifted" if lifted else "not_banned"
    target = request.app.url_path_for("admin_security_page")
    return RedirectResponse(f"{target}?{urlencode({'done': done, 'address': normal})}", 303)
