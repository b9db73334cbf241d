"""Alembic, driven from code: the migrations ship inside the package, no alembic.ini to find."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Bring the schema to ``revision`` on an open (sync-facing) connection."""
    command.upgrade(alembic_config(connection), revision)


def pending(connection: Connection) -> list[str]:
    """The revisions this package has that the database lacks (empty: the schema is current)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(connection))
    current = set(MigrationContext.configure(connection).get_current_heads())
    if current >= set(script.get_heads()):
        return []
    applied: set[str] = set()
    for head in current:
        applied.update(r.revision for r in script.iterate_revisions(head, "base"))
    return [r.revision for r in script.walk_revisions() if r.revision not in applied]
