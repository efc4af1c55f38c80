"""The metadata database's Engine and session factory, bound by ``create_app`` and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def create_db_engine(url: str) -> sa.Engine:
    """An Engine for the metadata DB; SQLite gets WAL, foreign keys and a busy time-out."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
    db_engine = sa.create_engine(url, **kwargs)
    if db_engine.dialect.name == "sqlite":
        sa.event.listen(db_engine, "connect", _sqlite_pragmas)
    return db_engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def create_session_factory(db_engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(db_engine, expire_on_commit=False)


def migrations_config(connection: sa.Connection | None = None) -> Config:
    """Alembic config for migdash's own schema; the connection rides in ``attributes``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("version_table", "migdash_version")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_schema(db_engine: sa.Engine, revision: str = "head") -> None:
    """Bring the metadata DB's schema to *revision* (``migdash db upgrade``)."""
    with db_engine.begin() as connection:
        command.upgrade(migrations_config(connection), revision)


def schema_is_current(db_engine: sa.Engine) -> bool:
    """True when the metadata DB is at the newest shipped migration."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations_config())
    with db_engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": "migdash_version"}
        )
        return set(context.get_current_heads()) == set(script.get_heads())
