"""The metadata database's Engine and session factory, bound by ``create_app`` and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.orm import Session, sessionmaker

from migdash.store.audit import forbid_changes
from migdash.store.crypto import UrlCipher

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


def rows_changed(session: Session, statement: sa.Executable) -> int:
    """Run an UPDATE or DELETE and say how many rows it changed.

    Every compare-and-set in migdash (claiming a job, taking a lease,
    approving) decides on this count.
    """
    result = session.execute(statement)
    return int(cast("sa.CursorResult[Any]", result).rowcount)


def create_session_factory(db_engine: sa.Engine, cipher: UrlCipher) -> sessionmaker[Session]:
    """Sessions that carry the URL cipher and refuse to change audit rows."""
    factory = sessionmaker(db_engine, expire_on_commit=False, info={"cipher": cipher})
    sa.event.listen(factory, "before_flush", forbid_changes)
    return factory


def migrations_config(
    connection: sa.Connection | None = None, cipher: UrlCipher | None = None
) -> Config:
    """Alembic config for migdash's own schema; connection and cipher ride in ``attributes``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("version_table", "migdash_version")
    if connection is not None:
        config.attributes["connection"] = connection
    if cipher is not None:
        config.attributes["cipher"] = cipher
    return config


def upgrade_schema(
    db_engine: sa.Engine, revision: str = "head", cipher: UrlCipher | None = None
) -> None:
    """Bring the metadata DB's schema to *revision* (``migdash db upgrade``).

    The cipher is needed by the migration that encrypts stored target URLs.
    """
    with db_engine.begin() as connection:
        command.upgrade(migrations_config(connection, cipher), revision)
    if db_engine.dialect.name == "sqlite":
        db_engine.dispose()  # env.py turned foreign keys off on that connection; start afresh


def schema_is_current(db_engine: sa.Engine) -> bool:
    """True when the metadata DB is at the newest shipped migration."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations_config())
    with db_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": "migdash_version"})
        return set(context.get_current_heads()) == set(script.get_heads())
