"""Hypothesis settings shared by the protocol fuzz tests (tests/unit/test_fuzz_*.py).

Derandomised and without an example database, so CI and a developer see the same examples
and a failure reproduces; example counts are modest so the fuzz modules stay well under a
minute on a shared machine. Server-level tests run a real asyncio server that lives across
the examples on purpose (one hostile session must not harm the next), hence the suppressed
function-scoped-fixture health check.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Pure parsers and codecs: cheap, so many examples.
PURE = settings(max_examples=300, derandomize=True, database=None, deadline=None)
# A real socket per example: fewer.
SOCKETS = settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# The richest socket property (hostile AGI replies deep into the menu): a few more.
SOCKETS_DEEP = settings(SOCKETS, max_examples=40)
# Pure functions over a store that lives across the examples (e.g. a SQLite call log).
SHARED_STORE = settings(
    PURE, max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
