"""Which language a request gets, and the pages rendered in it: `render` gives a template its
translator `t`, `lang` and the switch to the other language; `install` gives the same to pages
rendered without it.

The language comes from `?lang=` (remembered in a cookie), else the cookie, else the browser's
Accept-Language, else the hotline's default language. The texts themselves are gettext
catalogues read by dashboard/translations.py (re-exported here: `translate`, `translator`,
`MESSAGES`, `LANGUAGES`, so code importing them from dashboard.i18n keeps working).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, pass_context

from dashboard.translations import FALLBACK, LANGUAGES, MESSAGES, Translate, translate, translator

__all__ = [
    "COOKIE",
    "FALLBACK",
    "LANGUAGES",
    "MESSAGES",
    "Translate",
    "from_accept_language",
    "install",
    "pick_language",
    "remember",
    "render",
    "request_language",
    "translate",
    "translator",
]

COOKIE = "hotline_lang"


def from_accept_language(header: str) -> str | None:
    """The first of our languages in an Accept-Language header, honouring q-values."""
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else None


def pick_language(
    query: str | None, cookie: str | None, accept: str | None, default: str
) -> tuple[str, bool]:
    """(language, whether to remember it in the cookie)."""
    if query in LANGUAGES:
        assert query is not None
        return query, query != cookie
    if cookie in LANGUAGES:
        assert cookie is not None
        return cookie, False
    from_header = from_accept_language(accept or "")
    if from_header:
        return from_header, False
    return (default if default in LANGUAGES else FALLBACK), False


def request_language(request: Request, default: str) -> tuple[str, bool]:
    return pick_language(
        request.query_params.get("lang"),
        request.cookies.get(COOKIE),
        request.headers.get("accept-language"),
        default,
    )


def remember(response: Response, lang: str) -> None:
    # Not HttpOnly-sensitive (a UI preference), but keep it same-site and out of scripts anyway.
    response.set_cookie(
        COOKIE, lang, max_age=365 * 24 * 3600, httponly=True, samesite="lax", path="/"
    )


def render(
    templates: Jinja2Templates,
    request: Request,
    name: str,
    context: Mapping[str, Any],
    default_language: str,
    *,
    status_code: int = 200,
) -> Response:
    """A template response with `t` (the translator) and `lang` in its context."""
    lang, set_cookie = request_language(request, default_language)
    other = "en" if lang == "ru" else "ru"
    response = templates.TemplateResponse(
        request=request,
        name=name,
        context={
            **context,
            "t": translator(lang),
            "lang": lang,
            "other_lang": other,
            # The same page in the other language (relative: no host from a Host header).
            "lang_url": _with_lang(request, other),
        },
        status_code=status_code,
    )
    if set_cookie:
        remember(response, lang)
    return response


def _with_lang(request: Request, lang: str) -> str:
    url = request.url.include_query_params(lang=lang)
    return f"{url.path}?{url.query}"


def _context_language(ctx: Any) -> str:
    """The language of the page being rendered: `lang` if the route set it, else the request's."""
    lang = ctx.get("lang")
    if lang in LANGUAGES:
        return str(lang)
    request = ctx.get("request")
    if request is None:
        return FALLBACK
    default = getattr(getattr(request.app.state, "dashboard", None), "settings", None)
    return request_language(request, getattr(default, "default_language", FALLBACK))[0]


def install(env: Environment) -> None:
    """Globals for templates rendered without `render` (pages other modules add): base.html
    then still finds its texts, the language and the switch link."""

    @pass_context
    def t(ctx: Any, key: str, **values: Any) -> str:
        return translate(_context_language(ctx), key, **values)

    @pass_context
    def ui_lang(ctx: Any) -> str:
        return _context_language(ctx)

    @pass_context
    def ui_other_lang(ctx: Any) -> str:
        return "en" if _context_language(ctx) == "ru" else "ru"

    @pass_context
    def ui_lang_url(ctx: Any) -> str:
        request = ctx.get("request")
        other = "en" if _context_language(ctx) == "ru" else "ru"
        return _with_lang(request, other) if request is not None else f"?lang={other}"

    env.globals.update(t=t, ui_lang=ui_lang, ui_other_lang=ui_other_lang, ui_lang_url=ui_lang_url)
