"""The FastAGI server's in-memory incidents and caller languages (agi_scripts/flows/services.py
DbLookups): when they go stale, ONE caller reads them again; the callers meanwhile get what is
in memory instead of each reading the same rows in a thread (a burst of reads every few
seconds, each stalling the event loop's other calls)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agi_scripts.flows.services import DbLookups
from call_router.db import Database
from call_router.flow_models import CallerLanguage, Incident
from call_router.models import utcnow


def test_stale_incidents_are_read_again_by_one_caller_while_others_use_memory(
    db: Database,
) -> None:
    with db.session() as session:
        session.add(Incident(category="water", areas=[], message={}))
    lookups = DbLookups(db, "RU", incidents_ttl=0.0)  # stale at once, every time
    assert lookups.incidents_if_fresh(None) is None  # nothing in memory yet: read
    assert [i.category for i in lookups.active_incidents(None)] == ["water"]
    with db.session() as session:
        session.add(Incident(category="lift", areas=[], message={}))
    # Stale: the first caller is told to read...
    assert lookups.incidents_if_fresh(None) is None
    # ...the next ones, while that read is under way, get what memory has.
    assert [i.category for i in lookups.incidents_if_fresh(None) or []] == ["water"]
    assert [i.category for i in lookups.incidents_if_fresh(None) or []] == ["water"]
    assert [i.category for i in lookups.active_incidents(None)] == ["lift", "water"]
    # The read is done: the next stale look asks for a read again.
    assert lookups.incidents_if_fresh(None) is None


def test_a_failed_read_lets_the_next_caller_read_again(db: Database, tmp_path: Path) -> None:
    lookups = DbLookups(db, "RU", incidents_ttl=0.0)
    lookups.active_incidents(None)
    assert lookups.incidents_if_fresh(None) is None  # stale: this caller reads
    # A database without the tables fails the read (a path outside the test's own folder
    # would be created on the machine: SQLite makes its file's folder).
    lookups._db = Database(f"sqlite:///{tmp_path / 'no-tables.db'}")
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
        lookups.active_incidents(None)
    assert lookups.incidents_if_fresh(None) is None  # not stuck serving memory forever


def test_stale_languages_are_read_again_by_one_caller(db: Database) -> None:
    with db.session() as session:
        session.add(CallerLanguage(caller_number="+74951234567", language="en"))
    lookups = DbLookups(db, "RU", languages_ttl=0.0)
    assert lookups.language_if_fresh("+74951234567") == (False, None)
    assert lookups.caller_language("+74951234567") == "en"
    assert lookups.language_if_fresh("+74951234567") == (False, None)  # this one reads
    assert lookups.language_if_fresh("+74951234567") == (True, "en")  # meanwhile: memory
    assert lookups.caller_language("+74951234567") == "en"
    assert lookups.language_if_fresh("+74951234567") == (False, None)


def test_a_language_chosen_while_the_table_is_read_again_is_kept(db: Database) -> None:
    """The re-read's rows can predate a choice committed while it runs (another thread): the
    new table must not drop that choice, or the caller's next calls start in the old language
    until the next re-read."""
    with db.session() as session:
        session.add(CallerLanguage(caller_number="+74951234567", language="ru"))
    lookups = DbLookups(db, "RU", languages_ttl=0.0)
    assert lookups.caller_language("+74951234567") == "ru"

    real_session = db.session

    def session_that_lets_a_choice_in_after_the_read():  # type: ignore[no-untyped-def]
        context = real_session()
        session = context.__enter__()
        real_execute = session.execute

        def execute(statement, *args, **kwargs):  # type: ignore[no-untyped-def]
            rows = list(real_execute(statement, *args, **kwargs))
            db.session = real_session  # type: ignore[method-assign]
            lookups.remember_language("+74951234567", "en")  # commits after the SELECT
            return rows

        session.execute = execute  # type: ignore[method-assign]

        class Wrapped:
            def __enter__(self):  # type: ignore[no-untyped-def]
                return session

            def __exit__(self, *exc):  # type: ignore[no-untyped-def]
                return context.__exit__(*exc)

        return Wrapped()

    db.session = session_that_lets_a_choice_in_after_the_read  # type: ignore[method-assign]
    try:
        assert lookups.caller_language("+74951234567") == "en"
    finally:
        db.session = real_session  # type: ignore[method-assign]
    assert lookups.language_if_fresh("+74951234567") == (False, None)
    assert lookups.caller_language("+74951234567") == "en"  # the table has it now too


@contextlib.contextmanager
def rows_read(db: Database) -> Iterator[list[int]]:
    """How many rows each SELECT through `db.session` returned, meanwhile."""
    counts: list[int] = []
    real_session = db.session

    @contextlib.contextmanager
    def session() -> Iterator[Any]:
        with real_session() as opened:
            execute = opened.execute

            def counted(statement: Any, *args: Any, **kwargs: Any) -> list[Any]:
                rows = list(execute(statement, *args, **kwargs))
                counts.append(len(rows))
                return rows

            opened.execute = counted
            yield opened

    db.session = session  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        db.session = real_session  # type: ignore[method-assign]


def test_languages_are_read_again_by_what_changed_not_the_whole_table(db: Database) -> None:
    """A national service remembers hundreds of thousands of numbers' languages: every
    FastAGI process read the whole table again each minute (0.6 s of CPU for 300 000 rows on
    PostgreSQL, under the event loop's GIL). It reads what changed since, once it has it all."""
    long_ago = utcnow() - timedelta(days=30)
    with db.session() as session:
        session.add_all(
            CallerLanguage(
                caller_number=f"+7495100{n:04d}",
                language="en",
                updated_at=long_ago - timedelta(minutes=n),
            )
            for n in range(2000)
        )
    lookups = DbLookups(db, "RU", languages_ttl=0.0)  # stale at once, every time
    with rows_read(db) as counts:
        assert lookups.caller_language("+74951000001") == "en"
    assert counts == [2000]  # the whole table, once
    # Another box remembers a new caller's language and changes one.
    elsewhere = DbLookups(db, "RU")
    elsewhere.remember_language("+74959999999", "en")
    elsewhere.remember_language("+74951001500", "ru")
    with rows_read(db) as counts:
        assert lookups.caller_language("+74959999999") == "en"
    (changed,) = counts
    assert changed < 50  # the two changes, and the newest old rows within the overlap
    assert lookups.caller_language("+74951001500") == "ru"
    assert lookups.caller_language("+74951001999") == "en"  # old rows stay known
