"""Write real Alembic projects from a compact description.

Used by ``migdash demo`` to build its workspace, by the test suite's project
factories and by the benchmarks.  The files are ordinary Alembic revision
files (the same shape ``alembic revision`` writes), so everything downstream
reads them through Alembic itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

ENV_PY = '''"""Alembic environment written by migdash's scaffold (online and offline modes)."""
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
target_metadata = None


def run_migrations_offline():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True,
                      target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    connectable = engine_from_config(config.get_section(config.config_ini_section, {}),
                                     prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

SCRIPT_MAKO = '''"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
'''


@dataclass(frozen=True)
class RevisionSpec:
    """One revision to write; ``table`` makes it create (and drop) a table."""

    revision: str
    down_revision: str | tuple[str, ...] | None
    message: str
    branch_labels: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    table: str | None = None
    upgrade_body: str | None = None
    extra_doc: str = ""
    columns: tuple[str, ...] = field(default=("id",))


def write_project(root: Path, revisions: Sequence[RevisionSpec]) -> Path:
    """Create an Alembic script directory at *root* holding *revisions*; return *root*."""
    versions = root / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (root / "env.py").write_text(ENV_PY)
    (root / "script.py.mako").write_text(SCRIPT_MAKO)
    for spec in revisions:
        write_revision(versions, spec)
    return root


def write_revision(versions: Path, spec: RevisionSpec) -> Path:
    """Write one revision file into *versions* and return its path."""
    upgrade, downgrade = _bodies(spec)
    labels = spec.branch_labels or None
    depends = spec.depends_on or None
    doc = spec.message + (f"\n\n{spec.extra_doc}" if spec.extra_doc else "")
    text = (
        f'"""{_doc_escape(doc)}\n\nRevision ID: {spec.revision}\n'
        f'Revises: {_revises(spec.down_revision)}\n\n"""\n'
        "from alembic import op\nimport sqlalchemy as sa\n\n"
        f"revision = {spec.revision!r}\n"
        f"down_revision = {spec.down_revision!r}\n"
        f"branch_labels = {labels!r}\n"
        f"depends_on = {depends!r}\n\n\n"
        f"def upgrade():\n{upgrade}\n\n\ndef downgrade():\n{downgrade}\n"
    )
    path = versions / f"{spec.revision}_{_slug(spec.message)}.py"
    path.write_text(text)
    return path


def migrate_database(location: Path | str, url: str, revision: str | None) -> None:
    """Create the database and, unless *revision* is None, ``alembic upgrade`` it there.

    A SQLite file left without a version table gets a ``keepalive`` table,
    so that it exists on disk: that is what an uninitialised target looks
    like.  A migrated one holds only what its revisions create, so its
    schema is exactly what its history gives.
    """
    db_engine = sa.create_engine(url)
    try:
        with db_engine.begin() as connection:
            if db_engine.dialect.name == "sqlite" and revision is None:
                connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS keepalive (id INTEGER)")
            if revision is not None:
                config = Config()
                config.set_main_option("script_location", str(location))
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
    finally:
        db_engine.dispose()


def _bodies(spec: RevisionSpec) -> tuple[str, str]:
    if spec.upgrade_body is not None:
        return _indent(spec.upgrade_body), "    pass"
    if spec.table is None:
        return "    pass", "    pass"
    columns = ",\n".join(
        f"        sa.Column({name!r}, sa.Integer(){', primary_key=True' if i == 0 else ''})"
        for i, name in enumerate(spec.columns)
    )
    upgrade = f"    op.create_table(\n        {spec.table!r},\n{columns},\n    )"
    return upgrade, f"    op.drop_table({spec.table!r})"


def _indent(body: str) -> str:
    return "\n".join("    " + line if line else "" for line in body.splitlines())


def _revises(down: str | tuple[str, ...] | None) -> str:
    if down is None:
        return ""
    return down if isinstance(down, str) else ", ".join(down)


def _doc_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _slug(message: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in message.lower())
    return "_".join(part for part in cleaned.split("_") if part)[:40] or "rev"
