"""Alembic environment for migdash's own metadata database.

The caller passes an open connection in ``config.attributes["connection"]``
(the Alembic cookbook pattern), so the same code runs from the CLI, from
``serve``/``demo`` and from tests without reading any ini file.
"""

from alembic import context

from migdash.store.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - misuse, not a runtime path
    raise RuntimeError("migdash's migrations need config.attributes['connection']")
if connection.dialect.name == "sqlite":
    # batch migrations copy and drop tables; SQLite would refuse while rows refer to them
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table="migdash_version",
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
if connection.dialect.name == "sqlite":
    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
