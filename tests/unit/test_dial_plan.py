"""The dial-out numbering plan: which numbers a call-back may dial (call_router/dial_plan.py)."""

from __future__ import annotations

import re

import pytest

from call_router.dial_plan import DialPlan, DialPlanError, expand, pattern_text


def asterisk_match(pattern: str, number: str) -> bool:
    """Asterisk's extension pattern semantics for the characters the plan renders."""
    body = pattern.removeprefix("_")
    regex = ""
    for token in re.findall(r"\[[0-9]+\]|[XNZ.]|\+|[0-9]", body):
        regex += {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "+": r"\+"}.get(token, token)
    return re.fullmatch(regex, number) is not None


RU = DialPlan.national("RU")


@pytest.mark.parametrize(
    ("number", "refusal"),
    [
        ("+74951234567", None),  # Moscow landline
        ("+78123456789", None),  # St Petersburg landline
        ("+79161234567", None),  # mobile
        ("+78091234567", "premium_rate"),
        ("+78031234567", "premium_rate"),
        ("+78001234567", "toll_free"),
        ("+78081234567", "personal_number"),
        ("+442079460000", "international"),
        ("+8821612345678", "international"),  # satellite: classic revenue-share fraud
        ("+77012345678", "international"),  # Kazakhstan shares +7
        ("+7958123", "invalid_number"),
        ("1001", "invalid_number"),
        ("anonymous", "invalid_number"),
    ],
)
def test_the_national_plan_allows_landlines_and_mobiles_only(
    number: str, refusal: str | None
) -> None:
    assert RU.refusal(number) == refusal


@pytest.mark.parametrize(
    "number",
    ["+74951234567", "+78123456789", "+79161234567", "+79301234567", "+73012345678"],
)
def test_the_dialplan_patterns_allow_what_python_allows(number: str) -> None:
    assert RU.refusal(number) is None
    assert any(asterisk_match(p, number) for p in RU.asterisk_patterns())
    assert not any(asterisk_match(p, number) for p in RU.asterisk_denied_patterns())


@pytest.mark.parametrize(
    "number",
    [
        "+78091234567",
        "+78031234567",
        "+78001234567",
        "+442079460000",
        "+8821612345678",
        "+749512345678",
        "+7495123456",
    ],
)
def test_the_dialplan_patterns_refuse_what_python_refuses(number: str) -> None:
    assert RU.refusal(number) is not None
    allowed = any(asterisk_match(p, number) for p in RU.asterisk_patterns())
    denied = any(asterisk_match(p, number) for p in RU.asterisk_denied_patterns())
    assert denied or not allowed


def test_settings_widen_and_narrow_the_plan() -> None:
    wider = DialPlan.build(["RU", "KZ"], ["FIXED_LINE", "MOBILE", "TOLL_FREE"], ["+7958"])
    assert wider.refusal("+77012345678") is None
    assert wider.refusal("+78001234567") is None
    assert wider.refusal("+79581234567") == "denied_prefix"
    assert "_+7958." in wider.asterisk_denied_patterns()
    assert any(asterisk_match(p, "+77012345678") for p in wider.asterisk_patterns())


@pytest.mark.parametrize(
    ("regions", "types", "prefixes"),
    [
        ([], ["MOBILE"], []),
        (["XX"], ["MOBILE"], []),
        (["RU"], ["CHEAP"], []),
        (["RU"], ["MOBILE"], ["7809"]),
        (["RU"], ["MOBILE"], ["+7,9"]),
    ],
)
def test_bad_plan_settings_are_refused(
    regions: list[str], types: list[str], prefixes: list[str]
) -> None:
    with pytest.raises(DialPlanError):
        DialPlan.build(regions, types, prefixes)


def test_phonenumbers_regexes_expand_into_asterisk_patterns() -> None:
    assert [pattern_text(d) for d in expand(r"80[39]\d{2}")] == ["80[39]XX"]
    expanded = sorted(pattern_text(d) for d in expand(r"9(?:[0-24-9]\d|3[1-9])\d?"))
    assert expanded == ["93Z", "93ZX", "9[012456789]X", "9[012456789]XX"]
    with pytest.raises(DialPlanError):
        expand(r"9\s")
