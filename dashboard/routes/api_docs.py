"""The API's description for staff: `/openapi.json`, `/docs` (Swagger UI), `/redoc`.

FastAPI serves these publicly by default; the description maps every route and field, which
is reconnaissance for an outsider, so create_app turns FastAPI's own off and mounts these
behind the staff rule instead (a sign-in or a Bearer token).

The viewers' scripts and styles come from the `fastapi-offline` package, served from here
(`/docs/assets/<file>`, staff only like the pages): a page of the dashboard's origin never
loads a script from a CDN, and the dashboard works without outside network. No inline script
either (the dashboard's Content-Security-Policy forbids it): Swagger UI is started by
dashboard/static/api-docs.js. The viewers set inline styles as they draw, so these two pages
alone allow them (`style-src 'unsafe-inline'`; ReDoc's search also runs in a blob: worker).
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse

router = APIRouter(include_in_schema=False)

OPENAPI_PATH = "/openapi.json"
ASSETS = Path(str(files("fastapi_offline") / "static"))
ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
VIEWER_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


@router.get(OPENAPI_PATH, name="openapi")
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs/assets/{name}", name="api_docs_asset")
def asset(name: str) -> FileResponse:
    if name not in ASSET_TYPES:
        raise HTTPException(status_code=404, detail="no such asset")
    return FileResponse(
        ASSETS / name,
        media_type=ASSET_TYPES[name],
        headers={"Cache-Control": "private, max-age=86400"},
    )


def _page(request: Request, title: str, body: str, head: str = "") -> HTMLResponse:
    icon = request.url_for("api_docs_asset", name="favicon.png").path
    html = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<title>{escape(title)}</title><link rel="icon" href="{icon}">{head}</head>'
        f"<body>{body}</body></html>\n"
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": VIEWER_CSP})


@router.get("/docs", response_class=HTMLResponse, name="api_docs")
def swagger(request: Request) -> HTMLResponse:
    css = request.url_for("api_docs_asset", name="swagger-ui.css").path
    bundle = request.url_for("api_docs_asset", name="swagger-ui-bundle.js").path
    start = request.url_for("static", path="api-docs.js").path
    return _page(
        request,
        f"{request.app.title} — API",
        f'<div id="swagger-ui" data-openapi="{OPENAPI_PATH}"></div>'
        f'<script src="{bundle}"></script><script src="{start}"></script>',
        head=f'<link rel="stylesheet" href="{css}">',
    )


@router.get("/redoc", name="api_redoc")
def redoc(request: Request) -> RedirectResponse:
    """One viewer: ReDoc's bundle always fetches its vendor's logo from the vendor's CDN."""
    return RedirectResponse(request.url_for("api_docs").path, status_code=307)
