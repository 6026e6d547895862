"""Remembered caller languages on both databases: migration 0031's index matches the model and
downgrades, and the menu's read again takes only what changed (agi_scripts/flows/services.py)."""

from __future__ import annotations

from datetime import timedelta

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from agi_scripts.flows.services import DbLookups
from call_router.db import Database, alembic_config
from call_router.flow_models import CallerLanguage
from call_router.models import Base, utcnow

INDEX = "ix_caller_languages_updated_at"


def _indexes(database: Database) -> set[str]:
    with database.engine.connect() as conn:
        return {ix["name"] or "" for ix in inspect(conn).get_indexes("caller_languages")}


def test_the_updated_at_index_matches_its_migration_and_downgrades(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert not [d for d in diff if "caller_languages" in repr(d)], diff
    assert INDEX in _indexes(database)
    config = alembic_config(database.url)
    command.downgrade(config, "0030")
    assert INDEX not in _indexes(database)
    command.upgrade(config, "head")
    assert INDEX in _indexes(database)


def test_a_language_remembered_on_another_box_is_read_again_with_its_change(
    database: Database,
) -> None:
    long_ago = utcnow() - timedelta(days=30)
    with database.session() as session:
        session.add_all(
            CallerLanguage(caller_number=f"+7495100{n:04d}", language="en", updated_at=long_ago)
            for n in range(20)
        )
    here = DbLookups(database, "RU", languages_ttl=0.0)  # reads again at every look
    assert here.caller_language("+74951000003") == "en"
    elsewhere = DbLookups(database, "RU")
    elsewhere.remember_language("+74951000003", "ru")
    elsewhere.remember_language("+74957000000", "en")
    assert here.caller_language("+74951000003") == "ru"
    assert here.caller_language("+74957000000") == "en"
    assert here.caller_language("+74951000019") == "en"
