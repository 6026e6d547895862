"""Which company a call is for, and which queue serves it there (call_router/tenant_routing.py):
plain values in, a decision out."""

from __future__ import annotations

import pytest

from call_router.tenant_routing import (
    KnownBuilding,
    TenantDecision,
    clean_house_code,
    decide,
    is_known_queue,
    parse_tenant_queue,
    queue_for,
    tenant_queue_name,
)

CENTRE_QUEUES = ("plumbing", "electricity", "heating", "lift", "meters", "coordinator", "duty")
PHONE_B = KnownBuilding(building_id=7, tenant_id=2, source="phone")


def test_a_tenants_own_number_decides_whoever_calls() -> None:
    assert decide("tenant", 1, PHONE_B, codes_exist=True) == TenantDecision("number", 1)


def test_an_unregistered_number_is_the_centre_s_and_never_asks() -> None:
    # A single-company installation's own hotline number: the menu as it always was.
    for known in (None, PHONE_B):
        decision = decide("unregistered", None, known, codes_exist=True)
        assert decision == TenantDecision("centre") and not decision.must_ask


def test_on_a_centre_number_the_caller_s_known_building_decides() -> None:
    assert decide("centre", None, PHONE_B, codes_exist=True) == TenantDecision("phone", 2, 7)
    earlier = KnownBuilding(building_id=9, tenant_id=3, source="earlier_call")
    assert decide("centre", None, earlier, codes_exist=False) == TenantDecision(
        "earlier_call", 3, 9
    )


def test_an_unknown_caller_on_a_centre_number_is_asked_only_when_codes_exist() -> None:
    assert decide("centre", None, None, codes_exist=True).must_ask
    unknown = decide("centre", None, None, codes_exist=False)
    assert unknown == TenantDecision("unknown") and unknown.tenant_id is None


@pytest.mark.parametrize(
    ("keyed", "code"),
    [
        ("1234", "1234"),
        ("1", "1"),
        ("12345678", "12345678"),
        ("", None),
        ("123456789", None),  # longer than any code
        ("12*4", None),
        ("12#", None),
        ("１２３", None),  # full-width digits are digits to str.isdigit, not to us
        ("12\n3", None),
        ("-1", None),
    ],
)
def test_a_keyed_house_code_is_1_to_8_ascii_digits(keyed: str, code: str | None) -> None:
    assert clean_house_code(keyed) == code


def test_tenant_queue_names_round_trip_and_never_look_like_centre_queues() -> None:
    assert tenant_queue_name(3, "plumbing") == "t3_plumbing"
    assert parse_tenant_queue("t3_plumbing") == (3, "plumbing")
    not_tenant_queues = (
        *("plumbing", "coordinator", "t0_plumbing", "t3_coordinator", "t3_duty", "t3_"),
        *("x3_plumbing", "t3_plumbing\n", "t03_lift", "t1234567890_lift"),
    )
    for name in not_tenant_queues:
        assert parse_tenant_queue(name) is None, name
    with pytest.raises(ValueError):
        tenant_queue_name(3, "coordinator")
    assert is_known_queue("t12_lift", CENTRE_QUEUES)
    assert is_known_queue("duty", CENTRE_QUEUES)
    assert not is_known_queue("t12_gas", CENTRE_QUEUES)
    assert not is_known_queue("general", CENTRE_QUEUES)


def test_a_tenant_s_calls_go_to_its_own_queues_else_the_centre_s() -> None:
    own = {1: frozenset({"plumbing", "heating"})}
    assert queue_for(1, "plumbing", own) == "t1_plumbing"
    assert queue_for(1, "heating", own) == "t1_heating"
    # No own electricians: the centre's.
    assert queue_for(1, "electricity", own) == "electricity"
    # The coordinator and duty teams are always the centre's.
    assert queue_for(1, "coordinator", own) == "coordinator"
    assert queue_for(1, "duty", own) == "duty"
    # The centre's calls, and a tenant without own queues (the migrated `default`).
    assert queue_for(None, "plumbing", own) == "plumbing"
    assert queue_for(2, "plumbing", own) == "plumbing"
