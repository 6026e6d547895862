"""Issue 19's last test through the real Asterisk and a real Chromium: two companies, each
with its own number, plumbing queue and plumber; a SIPp caller dials each company's number
and its plumber answers; company A's supervisor, signed in through the login form, sees A's
call in the call log and on its page, and B's call nowhere: not in the log, not by its id
(page, API, audio), not in the CSV export.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
import pytest

from call_router.settings import Settings
from tests.browser.conftest import Account, _browser_page, sign_in
from tests.conftest import run_hotline
from tests.integration.test_tenant_routing_e2e import WATER, Company, _call_to, _company

pytestmark = pytest.mark.asterisk

# Numbers of this module's own (the routing e2e tests point 510001/520001 at theirs).
A_NUMBER = "510101"
B_NUMBER = "520101"
A_CALLER = "+74951130001"
B_CALLER = "+74951130002"


@pytest.fixture(scope="module")
def companies(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Company, Company]:
    tmp = tmp_path_factory.mktemp("tenant-calls")
    base = uuid.uuid4().int % 900_000 + 100_000
    return (
        _company(tmp, "ba", A_NUMBER, str(base), "Lenina"),
        _company(tmp, "bb", B_NUMBER, str(base + 1), "Mira"),
    )


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def test_a_tenant_supervisor_sees_only_its_company_s_real_calls(
    stack: Settings,
    api: httpx.Client,
    chromium: Any,
    request: pytest.FixtureRequest,
    companies: tuple[Company, Company],
) -> None:
    a, b = companies
    a_call = _call_to(
        stack, api, a.plumber, to=A_NUMBER, caller=A_CALLER, schedule=[(1.0, WATER)], hold=8
    )
    b_call = _call_to(
        stack, api, b.plumber, to=B_NUMBER, caller=B_CALLER, schedule=[(1.0, WATER)], hold=8
    )
    assert (a_call["tenant"], a_call["queue"]) == (a.slug, a.plumbing_queue)
    assert (b_call["tenant"], b_call["queue"]) == (b.slug, b.plumbing_queue)

    account = Account(f"{a.slug}-boss", secrets.token_urlsafe(18))
    run_hotline(
        "users", "add", account.username, "--role", "supervisor", "--tenant", a.slug,
        "--password-stdin", stdin=account.password + "\n",
    )  # fmt: skip
    url = stack.dashboard_url
    with _browser_page(chromium, request) as holder:
        page = holder.page
        sign_in(page, url, account)
        page.goto(f"{url}/calls?lang=en")
        log = _digits(page.inner_text("table.calls"))
        assert _digits(A_CALLER)[-7:] in log and _digits(B_CALLER)[-7:] not in log

        own = page.goto(f"{url}/calls/{a_call['id']}?lang=en")
        assert own is not None and own.status == 200
        assert page.inner_text("#dialled-number").strip() == A_NUMBER
        assert page.inner_text("#call-tenant").startswith(a.slug)

        # B's call by its id, as a guess: the page, the API and its audio are "not found".
        other = page.goto(f"{url}/calls/{b_call['id']}?lang=en")
        assert other is not None and other.status == 404
        for path in (f"/api/calls/{b_call['id']}", f"/calls/{b_call['id']}/audio/recording"):
            assert page.request.get(f"{url}{path}").status == 404, path
        export = page.request.get(f"{url}/calls/export.csv")
        assert export.status == 200
        assert _digits(B_CALLER)[-7:] not in _digits(export.text())
        assert _digits(A_CALLER)[-7:] in _digits(export.text())
        assert holder.dialogs == []
