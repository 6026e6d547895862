"""A coordinator sets the company of a call that arrived unknown: `POST /api/calls/{id}/tenant`
(JSON `{"tenant": SLUG}`) and the screen-pop's form (`POST /calls/{id}/tenant`).

Only the centre's staff (auth.CENTRE_STAFF: a tenant's account is 403 whatever it names), only
a call that is still the centre's (409 once it has a company); the work is
call_router/tenant_assign.py, on the call's timeline with who did it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from call_router import tenant_assign
from call_router.models import utcnow
from call_router.tenants import TenantError
from dashboard.deps import ActorDep, DashboardState, StateDep
from dashboard.routes.schemas import RowId

router = APIRouter(tags=["calls"])
pages = APIRouter(include_in_schema=False)

# Where the form may send the browser back to (its own pages, never another site).
BACK_PREFIXES = ("/operator", "/calls/")


class CompanyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(min_length=1, max_length=32, description="The company's slug.")


class CompanyOut(BaseModel):
    id: int
    tenant: str
    tenant_source: str


def _place(state: DashboardState, call_id: int, slug: str, by: str) -> dict[str, Any]:
    try:
        with state.db.session() as writer:
            call = tenant_assign.place_call(writer, call_id, slug, by=by, now=utcnow())
            return {"id": call.id, "tenant": slug, "tenant_source": call.tenant_source}
    except tenant_assign.CallNotFound:
        raise HTTPException(404, detail="no such call") from None
    except TenantError:
        raise HTTPException(422, detail="no such company") from None
    except tenant_assign.AlreadyPlaced as exc:
        raise HTTPException(409, detail=str(exc)) from None


@router.post("/api/calls/{call_id}/tenant", response_model=CompanyOut)
def set_call_tenant(
    call_id: RowId, body: CompanyIn, state: StateDep, actor: ActorDep
) -> dict[str, Any]:
    """Place a call that is still the centre's (it arrived unknown) with a company: the call
    and its open callbacks become that tenant's. 409 once the call has a company."""
    return _place(state, call_id, body.tenant, actor.by)


@pages.post("/calls/{call_id}/tenant", name="set_call_company")
def set_call_company(
    call_id: RowId,
    request: Request,
    state: StateDep,
    actor: ActorDep,
    tenant: Annotated[str, Form(min_length=1, max_length=32)],
    back: Annotated[str, Form(max_length=512)] = "",
) -> Response:
    _place(state, call_id, tenant, actor.by)
    target = back if back.startswith(BACK_PREFIXES) and "//" not in back else None
    url = target or str(request.url_for("call_page", call_id=call_id).path)
    return RedirectResponse(url, status_code=303)
