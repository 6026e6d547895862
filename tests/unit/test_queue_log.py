"""The queue_log line check (call_router/queue_log.py) on lines in Asterisk's documented shape
(https://docs.asterisk.org/Operation/Logging/Queue-Logs/) and on broken ones."""

from __future__ import annotations

import pytest

from call_router.queue_log import check_line, parse_line

GOOD = [
    "1366720340|1366720340.303267|MYQUEUE|SIP/8007|RINGNOANSWER|1000",  # the page's example
    "1764921600|1764921590.12|lift|NONE|ENTERQUEUE||74951110061|1",
    "1764921605|1764921590.12|lift|Olga Smena|CONNECT|5|1764921600.14|4",
    "1764921611|1764921590.12|lift|Olga Smena|COMPLETECALLER|5|6|1",
    "1764921600|NONE|lift|Olga Smena|ADDMEMBER|",
    "1764921600|NONE|lift|Olga Smena|PAUSE|lunch",
    "1764921600|1764921590.12|lift|NONE|ABANDON|1|1|14",
    "1764921600|1764921590.12|coordinator|NONE|HOTLINECALLBACK|virtual_hold",
]


@pytest.mark.parametrize("line", GOOD)
def test_documented_lines_pass(line: str) -> None:
    assert check_line(line) == []


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("1764921600|x|lift|NONE", "fewer than 5 fields"),
        ("1764921600|1.2|lift|NONE|ABANDON|1|1|14|9", "parameters"),
        ("1764921600|1.2|lift|Ann|CONNECT|five|1.3|4", "whole number"),
        ("1764921600|NONE|lift|Ann|CONNECT|5|1.3|4", "without a call id"),
        ("1764921600||lift|Ann|CONNECT|5|1.3|4", "empty"),
        ("1764921600|1.2|lift|Ann|connect|5", "upper-case"),
    ],
)
def test_broken_lines_are_named(line: str, problem: str) -> None:
    assert any(problem in p for p in check_line(line))


def test_a_timestamp_that_is_not_a_number_is_a_problem() -> None:
    assert check_line("yesterday|1.2|lift|NONE|ENTERQUEUE||1")


def test_parameters_by_name() -> None:
    row = parse_line("1764921600|1764921590.12|lift|NONE|ENTERQUEUE||74951110061|1")
    assert row.param("callerid") == "74951110061" and row.param("url") == ""
    assert row.param("ringtime") is None
