"""SQL functions spelled for PostgreSQL and SQLite alike: epoch seconds, GREATEST, LEAST."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from call_router.models import UTCDateTime


def utc_at(value: datetime) -> Any:
    """A bound timestamp typed like the columns (naive UTC on the wire, both dialects)."""
    return literal(value, UTCDateTime())


class epoch_seconds(FunctionElement[float]):  # noqa: N801 - SQL function naming
    """Seconds since 1970 of a naive-UTC timestamp column, exact to the millisecond."""

    type = Float()
    name = "epoch_seconds"
    inherit_cache = True


@compiles(epoch_seconds)
def _epoch_postgresql(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS FLOAT)"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    # julianday() arithmetic loses ~50 µs; whole seconds plus the "%f" fraction does not.
    x = compiler.process(element.clauses, **kw)
    return (
        f"(CAST(strftime('%s', {x}) AS INTEGER)"
        f" + (strftime('%f', {x}) - CAST(strftime('%S', {x}) AS INTEGER)))"
    )


class greatest(FunctionElement[Any]):  # noqa: N801
    inherit_cache = True
    name = "greatest"


class least(FunctionElement[Any]):  # noqa: N801
    inherit_cache = True
    name = "least"


@compiles(greatest)
def _greatest(element: greatest, compiler: Any, **kw: Any) -> str:
    return f"GREATEST({compiler.process(element.clauses, **kw)})"


@compiles(least)
def _least(element: least, compiler: Any, **kw: Any) -> str:
    return f"LEAST({compiler.process(element.clauses, **kw)})"


@compiles(greatest, "sqlite")
def _greatest_sqlite(element: greatest, compiler: Any, **kw: Any) -> str:
    return f"max({compiler.process(element.clauses, **kw)})"


@compiles(least, "sqlite")
def _least_sqlite(element: least, compiler: Any, **kw: Any) -> str:
    return f"min({compiler.process(element.clauses, **kw)})"
