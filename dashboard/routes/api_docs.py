"""The API's description for staff: `/openapi.json`, `/docs` (Swagger UI), `/redoc`.

FastAPI serves these publicly by default; the description maps every route and field, which
is reconnaissance for an outsider, so create_app turns FastAPI's own off and mounts these
behind the staff rule instead (a sign-in or a Bearer token).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

router = APIRouter(include_in_schema=False)

OPENAPI_PATH = "/openapi.json"


@router.get(OPENAPI_PATH, name="openapi")
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", response_class=HTMLResponse, name="api_docs")
def swagger(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_PATH, title=f"{request.app.title} — API")


@router.get("/redoc", response_class=HTMLResponse, name="api_redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI_PATH, title=f"{request.app.title} — API")
