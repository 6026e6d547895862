"""A caller's number cannot forge lines in Asterisk's own records (found by playing attacker,
2026-12-07).

res_pjsip takes the caller's number from the From header's user part, URI-unescaped: "%0A" is
a newline. app_queue (ENTERQUEUE) and cdr_csv write the number raw, and the router's catch-up
trusts those files (call_router/reconcile.py): one call's number could forge queue_log lines
and CDR records for other calls - a made-up call and callback entry, or another caller's
abandon. Every way in from the trunk now strips the number first (extensions.conf.j2).
"""

from __future__ import annotations

import time

import pytest

from call_router.settings import Settings
from hotline.sipua.testcall import place_call
from tests.conftest import wait_for

pytestmark = pytest.mark.asterisk


def test_a_newline_in_the_callers_number_forges_no_line_in_the_records(stack: Settings) -> None:
    # A forged line at a moment no genuine line has (2001), after this call's own digits.
    nonce = f"{time.time_ns() % 10**6:06d}"
    forged = "1000000000|1000000000.77|coordinator|NONE|HOTLINEAGIFAILED"
    result = place_call(stack, dtmf="3", from_number=f"+7495{nonce}\n{forged}", hold=6)
    assert result.answered, result.detail
    log_dir = stack.asterisk_dir / "log"
    cdr = log_dir / "cdr-csv" / "Master.csv"
    # The call's own CDR (written as the call ends), whatever became of its number.
    wait_for(lambda: f"+7495{nonce}" in cdr.read_text(errors="replace"), what="the call's CDR")
    for records in (cdr, log_dir / "queue_log"):
        lines = records.read_text(errors="replace").split("\n")
        assert not [line for line in lines if line.startswith("1000000000|")], records.name
    # The number is kept, stripped to what cannot end or split a line.
    stripped = f"+7495{nonce}1000000000100000000077coordinatorNONEHOTLINEAGIFAILED"
    assert stripped in cdr.read_text()
