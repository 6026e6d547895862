"""The areas table on both dialects: it matches its migration (0029), downgrades and comes
back, and an import with a code moved between districts keeps the code unique."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from call_router import areas
from call_router.db import Database, alembic_config
from call_router.models import Base


def test_the_areas_table_matches_its_migration_and_downgrades(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert not [d for d in diff if "areas" in repr(d)], diff
    config = alembic_config(database.url)
    command.downgrade(config, "0028")
    with database.engine.connect() as conn:
        assert "areas" not in conn.dialect.get_table_names(conn)
    command.upgrade(config, "head")
    with database.engine.connect() as conn:
        assert "areas" in conn.dialect.get_table_names(conn)


def test_a_code_moved_between_districts_stays_unique(database: Database) -> None:
    with database.session() as session:
        areas.import_rows(session, areas.parse_csv(b"Irkutsk,North,,,11\nIrkutsk,South,,,12\n"))
    with database.session() as session:
        areas.import_rows(session, areas.parse_csv(b"Irkutsk,North,,,12\nIrkutsk,South,,,11\n"))
    with database.session() as session:
        assert areas.load_index(session).codes == {"12": "irkutsk/north", "11": "irkutsk/south"}
