"""The dial-out numbering plan on the real databases (SQLite and PostgreSQL): an entry for a
number outside the plan is kept and shown with its reason, but virtual hold never dials it and
click-to-call refuses it before Asterisk is asked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from call_router import callback_claims, callback_intake, callbacks, click_to_call
from call_router.callback_models import CallbackAttempt
from call_router.db import Database
from call_router.models import Call, Callback, Operator
from call_router.virtual_hold_dispatch import release_held
from tests.integration.test_callbacks_claim import RULES, T0


def _held(db: Database, number: str, placed_minutes_ago: int) -> int:
    with db.session() as session:
        entry = callback_intake.open_or_attach(
            session,
            caller_number=number,
            reason="virtual_hold",
            queue="lift",
            call_id=None,
            now=T0,
            placed_at=T0 - timedelta(minutes=placed_minutes_ago),
            rules=RULES,
        )
        assert entry is not None
        return entry.id


def test_a_premium_rate_caller_is_listed_refused_and_never_dialled(database: Database) -> None:
    with database.session() as session:
        for login in ("1001", "1002"):
            session.add(Operator(name=login, sip_login=login, sip_password="x" * 12))
    # The premium-rate caller holds the earlier place in the queue.
    premium = _held(database, "+78091234567", placed_minutes_ago=10)
    resident = _held(database, "+74953000100", placed_minutes_ago=1)
    with database.session() as session:
        entry = session.get(Callback, premium)
        assert entry is not None and entry.refused_reason == "premium_rate"
        assert entry.status == "open"  # on the list, for an operator to see
        ok = session.get(Callback, resident)
        assert ok is not None and ok.refused_reason is None
        created = session.scalars(
            select(CallbackAttempt).where(CallbackAttempt.callback_id == premium)
        ).one()
        assert created.data == {"reason": "virtual_hold", "refused": "premium_rate"}

    # One free operator: virtual hold passes over the refused entry to the next resident.
    placed = release_held(database, {"lift": ["1001"]}, rules=RULES, now=T0)
    assert [p.callback_id for p in placed] == [resident]
    # A second free operator: still nobody dials the premium number.
    again = release_held(database, {"lift": ["1002"]}, rules=RULES, now=T0)
    assert again == []

    # Click-to-call by hand: refused before a call row is written or Asterisk is asked.
    with database.session() as session:
        callback_claims.claim(session, premium, "1002", T0, timeout=600)
        calls_before = session.scalar(select(func.count()).select_from(Call))
    with pytest.raises(callbacks.CallbackError) as refused:
        click_to_call.prepare(database, premium, "1002", rules=RULES, now=T0)
    assert refused.value.code == "number_refused"
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == calls_before
        entry = session.get(Callback, premium)
        assert entry is not None and entry.active_call_id is None


def test_the_plan_in_force_at_dial_time_decides(database: Database) -> None:
    """An entry created before the plan was narrowed is still refused at dial time."""
    with database.session() as session:
        session.add(Operator(name="op", sip_login="1003", sip_password="x" * 12))
    entry_id = _held(database, "+79161234567", placed_minutes_ago=1)
    from call_router.dial_plan import DialPlan

    landlines_only = callbacks.CallbackRules(
        **{**RULES.__dict__, "dial_plan": DialPlan.build(["RU"], ["FIXED_LINE"])}
    )
    with database.session() as session:
        callback_claims.claim(session, entry_id, "1003", T0, timeout=600)
    with pytest.raises(callbacks.CallbackError) as refused:
        click_to_call.prepare(database, entry_id, "1003", rules=landlines_only, now=T0)
    assert refused.value.code == "number_refused"
