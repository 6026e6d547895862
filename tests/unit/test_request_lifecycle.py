"""The request lifecycle as plain values: transitions, open/closed, SLA deadlines, address
keys and the categories file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from call_router import request_lifecycle as life
from call_router.request_lifecycle import LifecycleError

T0 = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)


def test_every_state_has_a_row_in_the_one_table() -> None:
    assert set(life.TRANSITIONS) == set(life.STATES)
    for targets in life.TRANSITIONS.values():
        assert targets <= set(life.STATES)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("new", "assigned"),
        ("assigned", "on_the_way"),
        ("on_the_way", "in_progress"),
        ("in_progress", "waiting_for_parts"),
        ("waiting_for_parts", "done"),
        ("done", "closed"),
        ("done", "new"),  # the resident says it is not fixed
        ("closed", "new"),
    ],
)
def test_allowed_moves(current: str, target: str) -> None:
    life.check_move(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [("new", "done"), ("closed", "done"), ("done", "in_progress"), ("new", "new")],
)
def test_refused_moves_name_what_is_allowed(current: str, target: str) -> None:
    with pytest.raises(LifecycleError, match="allowed") as err:
        life.check_move(current, target)
    assert err.value.code == "transition"


def test_unknown_state_is_refused() -> None:
    with pytest.raises(LifecycleError) as err:
        life.check_move("new", "teleported")
    assert err.value.code == "state"


def test_open311_status_maps_every_state() -> None:
    opened = {s for s in life.STATES if life.open311_status(s) == "open"}
    assert opened == {"new", "assigned", "on_the_way", "in_progress", "waiting_for_parts"}
    assert all(life.STATUS_NOTES[s] for s in life.STATES)


def test_sla_deadline_from_the_category_and_emergency_hours() -> None:
    categories = life.load_categories()
    heating = categories["heating"]
    assert heating.deadline(T0, 0) == T0 + timedelta(hours=heating.sla_hours)
    assert heating.emergency_sla_hours is not None
    assert heating.deadline(T0, life.EMERGENCY) == T0 + timedelta(hours=heating.emergency_sla_hours)
    assert life.overdue("assigned", heating.deadline(T0, 0), T0 + timedelta(days=3))
    assert not life.overdue("done", heating.deadline(T0, 0), T0 + timedelta(days=3))


def test_address_key_ignores_case_punctuation_and_spaces() -> None:
    assert life.address_key("Lenina St.", "5", "12") == life.address_key(" lenina  st", "5", "12")
    assert life.address_key("Lenina", "5", "12") != life.address_key("Lenina", "5", "13")
    assert life.address_key("Ленина ул.", "5А", None) == life.address_key("ленина ул", "5а", "")


def test_category_for_intent() -> None:
    categories = life.load_categories()
    assert life.category_for_intent(categories, "heating") == "heating"
    assert life.category_for_intent(categories, "billing") is None


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"categories": []},
        {"categories": [{"code": "Bad Code", "name": "x", "sla_hours": 1}]},
        {"categories": [{"code": "a", "name": "x", "sla_hours": 0}]},
        {"categories": [{"code": "a", "name": "x", "sla_hours": True}]},
        {"categories": [{"code": "a", "name": "x", "sla_hours": 1}] * 2},
    ],
)
def test_bad_categories_file_is_refused(data: object) -> None:
    with pytest.raises(LifecycleError):
        life.parse_categories(data)


def test_priorities() -> None:
    assert life.priority_value("emergency") == 2
    assert life.priority_value(1) == 1
    with pytest.raises(LifecycleError):
        life.priority_value("urgent!!")


def test_overdue_requests_escalate_to_dispatcher_then_supervisor() -> None:
    deadline = T0 + timedelta(hours=24)
    assert life.escalation("assigned", T0, deadline, T0 + timedelta(hours=23)) is None
    assert life.escalation("assigned", T0, deadline, T0 + timedelta(hours=25)) == "dispatcher"
    assert life.escalation("assigned", T0, deadline, T0 + timedelta(hours=37)) == "supervisor"
    assert life.escalation("done", T0, deadline, T0 + timedelta(hours=99)) is None
    # A short SLA still gives the dispatcher at least an hour before the supervisor hears.
    short = T0 + timedelta(hours=1)
    assert life.escalation("new", T0, short, T0 + timedelta(minutes=100)) == "dispatcher"
    assert life.escalation("new", T0, short, T0 + timedelta(minutes=121)) == "supervisor"
