"""Telling a restarted Asterisk from a reconnect, and when a call's Asterisk went away."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from call_router.listener_reconcile import ReconcileRequest, asterisk_started, dropped_at

T0 = datetime(2026, 12, 4, 22, 0, tzinfo=UTC)


def item(started: datetime | None, went_away: datetime | None) -> ReconcileRequest:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    return ReconcileRequest(frozenset(), T0, future, started, went_away)


def test_the_start_is_read_from_core_status() -> None:
    local = datetime(2026, 12, 4, 23, 4, 50).astimezone(UTC)
    assert asterisk_started("2026-12-04", "23:04:50") == local
    assert asterisk_started("", "") is None
    assert asterisk_started("2026-12-04", "not a time") is None


async def test_a_call_older_than_this_asterisk_was_dropped_when_the_link_went() -> None:
    restart, lost = T0 - timedelta(seconds=5), T0 - timedelta(seconds=20)
    assert dropped_at(T0 - timedelta(seconds=60), item(restart, lost)) == lost


async def test_without_the_moment_the_link_went_the_new_start_is_the_end() -> None:
    restart = T0 - timedelta(seconds=5)
    # Lost before the call began (an earlier outage): not this call's end.
    earlier = T0 - timedelta(hours=1)
    assert dropped_at(T0 - timedelta(seconds=60), item(restart, earlier)) == restart
    assert dropped_at(T0 - timedelta(seconds=60), item(restart, None)) == restart


@pytest.mark.parametrize("started", [None, T0 - timedelta(hours=2)])
async def test_a_call_of_the_same_asterisk_or_an_unknown_one_is_not_dropped(
    started: datetime | None,
) -> None:
    # Same Asterisk (it started before the call), or its start is unknown.
    assert dropped_at(T0 - timedelta(seconds=60), item(started, T0)) is None


async def test_a_call_begun_just_before_the_link_went_is_dropped_however_close_to_the_restart() -> (
    None
):
    """CoreStatus gives the new start in whole seconds; a caller who rang a moment before
    Asterisk died is still on the old one."""
    lost = T0 - timedelta(seconds=3)
    restart = T0 - timedelta(seconds=2)
    assert dropped_at(lost - timedelta(milliseconds=500), item(restart, lost)) == lost
    # Begun after the link went (on the new Asterisk), within the start's rounding: not dropped.
    assert dropped_at(restart - timedelta(milliseconds=500), item(restart, lost)) is None
