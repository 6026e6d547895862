"""`column IN (...)` over any number of values.

SQLAlchemy sends one bind parameter per value, and PostgreSQL's wire protocol takes at most
65 535 a statement (psycopg: "number of parameters must be between 0 and 65535"): a billing
export of 70 000 accounts could never be imported. A long list is asked a slice at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

T = TypeVar("T")

IN_SLICE = 10_000


def rows_in(
    session: Session, entity: type[T], column: InstrumentedAttribute[Any], values: Iterable[Any]
) -> list[T]:
    """The `entity` rows whose `column` is one of `values`, whatever the number of values."""
    found: list[T] = []
    for part in slices(values):
        found.extend(session.scalars(select(entity).where(column.in_(part))))
    return found


def slices(values: Iterable[T]) -> list[list[T]]:
    """`values` cut into lists of at most IN_SLICE, one `IN (...)` each."""
    wanted = list(values)
    return [wanted[start : start + IN_SLICE] for start in range(0, len(wanted), IN_SLICE)]
