"""Drift against the models: ``alembic check`` per target, in a child, with nothing written.

The projects here are what a team has: revision files written by the
scaffold, and an ``env.py`` that imports a ``models`` module from the project
folder and hands its ``MetaData`` to ``context.configure(target_metadata=...)``.
The models hold one change no revision has yet (``accounts.note``).  Targets
are real SQLite, PostgreSQL and MariaDB databases upgraded by Alembic itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask

from migdash.jobs.drift import DriftKind, check_model_drift, latest_drift_checks
from migdash.scaffold import ENV_PY, RevisionSpec, migrate_database, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Project, utcnow

REVISIONS = [
    RevisionSpec("a1", None, "create accounts", table="accounts"),
    RevisionSpec("b2", "a1", "create orders", table="orders"),
]
MODELS_PY = '''"""The shop's models: what env.py gives Alembic as target_metadata."""
import sqlalchemy as sa

metadata = sa.MetaData()
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
{columns}
)
orders = sa.Table("orders", metadata, sa.Column("id", sa.Integer, primary_key=True))
{extra}
'''
NOTE = '    sa.Column("note", sa.String(200), nullable=True),'
"""The model change no revision has yet."""
NOTE_OPERATION = (
    "op.add_column('accounts', sa.Column('note', sa.String(length=200), nullable=True))"
)
IMPORT_MODELS = """import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from models import metadata as target_metadata
"""


def models_project(
    root: Path,
    *,
    columns: str = NOTE,
    extra: str = "",
    configure: str = "",
    prelude: str = "",
) -> Path:
    """A project at ``root/migrations`` whose env.py imports ``root/models.py``.

    *configure* is appended to each ``context.configure(...)`` call's
    arguments; *prelude* is code env.py runs after importing the models.
    """
    location = write_project(root / "migrations", REVISIONS)
    (root / "models.py").write_text(MODELS_PY.format(columns=columns, extra=extra))
    env = ENV_PY.replace("target_metadata = None\n", IMPORT_MODELS + prelude)
    env = env.replace(
        "target_metadata=target_metadata)", f"target_metadata=target_metadata{configure})"
    )
    assert env.count(configure) >= 3 or not configure
    (location / "env.py").write_text(env)
    return location


def models_metadata(columns: str = NOTE, extra: str = "") -> sa.MetaData:
    """The same models, built in this process (for Alembic's unfiltered answer only)."""
    namespace: dict[str, Any] = {}
    exec(MODELS_PY.format(columns=columns, extra=extra), namespace)  # noqa: S102 - test source
    metadata: sa.MetaData = namespace["metadata"]
    return metadata


@pytest.fixture
def add_target(app: Flask) -> Callable[..., str]:
    """Register *location* (once) and a target on *url* upgraded to *at*; returns its name."""

    def factory(project: str, location: Path, name: str, url: str, at: str | None = "heads") -> str:
        migrate_database(location, url, at)
        with services_of(app).sessions() as session:
            if session.scalar(sa.select(Project).where(Project.name == project)) is None:
                registry.add_project(session, project, str(location))
            registry.add_target(session, name, project=project, environment="dev", url=url)
            session.commit()
        return name

    return factory


@pytest.fixture
def check(app: Flask) -> Callable[[str], dict[str, Any]]:
    """Run a check of target *name* against its models, commit, and return what was stored."""

    def run(name: str) -> dict[str, Any]:
        services = services_of(app)
        with services.sessions() as session:
            target = registry.get_target(session, name)
            row = check_model_drift(session, services.jobs, target, utcnow())
            session.commit()
            stored = latest_drift_checks(session, [target.id])[target.id]
            assert stored.id == row.id
            return {"outcome": row.outcome, "summary": row.summary, "detail": row.detail}

    return run


def sqlite_url(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / f'{name}.db'}"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh PostgreSQL or MariaDB database."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path, "target")
    fixture = {"postgresql": "postgres_url", "mariadb": "mariadb_url"}[request.param]
    url: str = request.getfixturevalue(fixture)
    return url


def kinds(result: dict[str, Any]) -> list[str]:
    return [f"{d['kind']} {d['subject']}" for d in result["detail"].get("diffs", [])]


# --- drift on every target ------------------------------------------------------------------


def test_a_model_change_not_in_any_revision_is_drift_on_every_target(
    tmp_path: Path,
    postgres_url: str,
    mariadb_url: str,
    add_target: Callable[..., str],
    check: Callable[[str], dict[str, Any]],
) -> None:
    location = models_project(tmp_path / "shop")
    targets = [
        add_target("shop", location, "shop-sqlite", sqlite_url(tmp_path, "shop")),
        add_target("shop", location, "shop-pg", postgres_url),
        add_target("shop", location, "shop-maria", mariadb_url),
    ]
    for name in targets:
        result = check(name)
        assert result["outcome"] == "drift", result
        assert kinds(result) == ["add_column accounts.note"]
        assert result["summary"] == "1 difference: add_column accounts.note"
        assert NOTE_OPERATION in result["detail"]["operations"], result["detail"]["operations"]
        assert result["detail"]["revisions"] == ["b2"]


@pytest.mark.parametrize("include_schemas", [False, True], ids=["default", "include_schemas"])
def test_unmanaged_tables_and_views_give_no_drops_and_a_second_run_agrees(
    tmp_path: Path,
    database: str,
    add_target: Callable[..., str],
    check: Callable[[str], dict[str, Any]],
    include_schemas: bool,
) -> None:
    location = models_project(tmp_path / "shop", configure=f", include_schemas={include_schemas}")
    name = add_target("shop", location, "shop-db", database)
    db_engine = sa.create_engine(database)
    with db_engine.begin() as connection:
        for statement in unmanaged_objects(db_engine.dialect.name):
            connection.exec_driver_sql(statement)
    with db_engine.connect() as connection:  # Alembic alone would drop what it does not know
        plain = compare_metadata(MigrationContext.configure(connection), models_metadata())
    db_engine.dispose()
    assert ("remove_table", "legacy") in [(d[0], getattr(d[1], "name", None)) for d in plain]

    first, second = check(name), check(name)
    assert first["outcome"] == "drift"
    assert kinds(first) == ["add_column accounts.note"]
    assert "drop" not in first["detail"]["operations"]
    assert NOTE_OPERATION in first["detail"]["operations"]
    assert second == first


def unmanaged_objects(dialect: str) -> list[str]:
    """Tables, an index and views no model knows (on PostgreSQL also a schema of its own)."""
    statements = [
        "CREATE TABLE legacy (id INTEGER PRIMARY KEY, name VARCHAR(20))",
        "CREATE INDEX ix_legacy_name ON legacy (name)",
        "CREATE VIEW account_ids AS SELECT id FROM accounts",
        "CREATE VIEW legacy_names AS SELECT name FROM legacy",
    ]
    if dialect == "postgresql":
        statements += [
            "CREATE SCHEMA reporting",
            "CREATE TABLE reporting.daily (id INTEGER PRIMARY KEY, total NUMERIC(10, 2))",
            "CREATE VIEW reporting.totals AS SELECT sum(total) AS total FROM reporting.daily",
            "CREATE MATERIALIZED VIEW account_counts AS SELECT count(*) AS n FROM accounts",
        ]
    return statements


def test_everything_the_models_know_is_compared_and_the_projects_filter_still_applies(
    tmp_path: Path, add_target: Callable[..., str], check: Callable[[str], dict[str, Any]]
) -> None:
    """A hand-made column and index on a model's table are drift; env.py's own filter holds."""
    audit = 'audit_log = sa.Table("audit_log", metadata, sa.Column("id", sa.Integer))'
    prelude = (
        "\n\ndef project_filter(obj, name, type_, reflected, compare_to):\n"
        '    return name != "audit_log"\n'
    )
    location = models_project(
        tmp_path / "shop", extra=audit, prelude=prelude, configure=", include_object=project_filter"
    )
    url = sqlite_url(tmp_path, "shop")
    name = add_target("shop", location, "shop-db", url)
    db_engine = sa.create_engine(url)
    with db_engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE accounts ADD COLUMN legacy_flag INTEGER")
        connection.exec_driver_sql("CREATE INDEX ix_orders_id ON orders (id)")
        connection.exec_driver_sql("CREATE TABLE legacy (id INTEGER)")
    db_engine.dispose()

    result = check(name)
    assert result["outcome"] == "drift"
    assert sorted(kinds(result)) == [
        "add_column accounts.note",
        "remove_column accounts.legacy_flag",
        "remove_index ix_orders_id on orders(id)",
    ]
    operations = result["detail"]["operations"]
    assert "op.drop_column('accounts', 'legacy_flag')" in operations
    assert "audit_log" not in operations
    assert "'legacy'" not in operations


def test_an_ini_project_finds_its_models_through_prepend_sys_path(
    tmp_path: Path, app: Flask, check: Callable[[str], dict[str, Any]]
) -> None:
    """The layout ``alembic init`` gives: the ini beside the code, ``prepend_sys_path = .``."""
    root = tmp_path / "service"
    location = write_project(root / "db" / "migrations", REVISIONS)
    (root / "app").mkdir()
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "models.py").write_text(MODELS_PY.format(columns=NOTE, extra=""))
    env = ENV_PY.replace(
        "target_metadata = None\n", "from app.models import metadata as target_metadata\n"
    )
    (location / "env.py").write_text(env)
    (root / "alembic.ini").write_text(
        "[alembic]\nscript_location = %(here)s/db/migrations\nprepend_sys_path = .\n"
    )
    url = sqlite_url(tmp_path, "service")
    db_engine = sa.create_engine(url)
    with db_engine.begin() as connection:  # built by hand: this process cannot import app
        for name in ("accounts", "orders"):
            connection.exec_driver_sql(f"CREATE TABLE {name} (id INTEGER NOT NULL PRIMARY KEY)")
        connection.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('b2')")
    db_engine.dispose()
    with services_of(app).sessions() as session:
        registry.add_project(session, "service", str(root / "alembic.ini"))
        registry.add_target(session, "service-db", project="service", environment="dev", url=url)
        session.commit()
    result = check("service-db")
    assert result["outcome"] == "drift", result
    assert kinds(result) == ["add_column accounts.note"]


def test_models_that_match_are_no_drift(
    tmp_path: Path, database: str, add_target: Callable[..., str], check: Callable[..., Any]
) -> None:
    location = models_project(tmp_path / "shop", columns="")
    result = check(add_target("shop", location, "shop-db", database))
    assert result["outcome"] == "none", result
    assert result["detail"]["diffs"] == []
    assert result["detail"]["operations"] is None


# --- when the check does not apply, or fails --------------------------------------------------


def test_a_project_without_target_metadata_is_not_applicable(
    tmp_path: Path, add_target: Callable[..., str], check: Callable[..., Any]
) -> None:
    location = write_project(tmp_path / "plain" / "migrations", REVISIONS)  # target_metadata = None
    result = check(add_target("plain", location, "plain-db", sqlite_url(tmp_path, "plain")))
    assert result["outcome"] == "not_applicable"
    assert "no models to compare with" in result["summary"]
    assert "target_metadata" in result["summary"]
    assert result["detail"]["reason"] == "no_models"


@pytest.mark.parametrize(("at", "pending"), [("a1", 1), (None, 2)], ids=["behind", "no-version"])
def test_a_target_not_at_its_heads_is_not_applicable_and_nothing_is_written(
    tmp_path: Path,
    add_target: Callable[..., str],
    check: Callable[..., Any],
    at: str | None,
    pending: int,
) -> None:
    location = models_project(tmp_path / "shop")
    url = sqlite_url(tmp_path, "shop")
    name = add_target("shop", location, "shop-db", url, at=at)
    before = database_state(url)
    result = check(name)
    assert result["outcome"] == "not_applicable"
    assert f"not at the project's heads ({pending} revision(s) pending)" in result["summary"]
    assert result["detail"]["reason"] == "not_at_heads"
    # Alembic's own check would have created the version table of the uninitialised one
    assert database_state(url) == before


def database_state(url: str) -> tuple[set[str], list[Any]]:
    """The tables of a SQLite database and its version rows (none without a version table)."""
    tables = table_names(url)
    if "alembic_version" not in tables:
        return tables, []
    db_engine = sa.create_engine(url)
    with db_engine.connect() as connection:
        rows = [tuple(r) for r in connection.exec_driver_sql("SELECT * FROM alembic_version")]
    db_engine.dispose()
    return tables, rows


def table_names(url: str) -> set[str]:
    db_engine = sa.create_engine(url)
    try:
        return set(sa.inspect(db_engine).get_table_names())
    finally:
        db_engine.dispose()


def test_an_env_py_that_raises_is_an_error_with_the_password_scrubbed(
    tmp_path: Path, app: Flask, check: Callable[..., Any]
) -> None:
    location = models_project(
        tmp_path / "shop",
        prelude='raise RuntimeError("cannot start: " + config.get_main_option("sqlalchemy.url"))\n',
    )
    url = "postgresql+psycopg://app:Pa55-drift@127.0.0.1:1/shop"
    with services_of(app).sessions() as session:
        registry.add_project(session, "shop", str(location))
        registry.add_target(session, "shop-db", project="shop", environment="dev", url=url)
        session.commit()
    result = check("shop-db")
    assert result["outcome"] == "error"
    assert result["summary"].startswith("the check failed: RuntimeError: cannot start: ")
    assert "127.0.0.1:1/shop" in result["detail"]["error"]
    assert "Pa55-drift" not in repr(result)
    assert "Traceback" in result["detail"]["traceback"]


def test_an_env_py_that_writes_is_refused_before_the_statement_runs(
    tmp_path: Path, add_target: Callable[..., str], check: Callable[..., Any]
) -> None:
    location = models_project(tmp_path / "shop")
    url = sqlite_url(tmp_path, "shop")
    name = add_target("shop", location, "shop-db", url)
    env = location / "env.py"
    env.write_text(
        env.read_text().replace(
            "        with context.begin_transaction():",
            '        connection.exec_driver_sql("CREATE TABLE sneaky (id INTEGER)")\n'
            "        with context.begin_transaction():",
        )
    )
    result = check(name)
    assert result["outcome"] == "error"
    assert (
        "WriteRefused: a drift check only reads; refused 'CREATE TABLE sneaky"
        in (result["summary"])
    )
    assert "sneaky" not in table_names(url)


def test_a_broken_project_is_an_error_without_a_child(
    tmp_path: Path, add_target: Callable[..., str], check: Callable[..., Any]
) -> None:
    location = models_project(tmp_path / "shop")
    url = sqlite_url(tmp_path, "shop")
    name = add_target("shop", location, "shop-db", url)
    (location / "versions" / "c3_broken.py").write_text("revision = 'c3'\ndown_revision = (\n")
    result = check(name)
    assert result["outcome"] == "error"
    assert "the project cannot be loaded" in result["summary"]


def test_latest_checks_are_per_target_and_per_kind(
    tmp_path: Path, app: Flask, add_target: Callable[..., str], check: Callable[..., Any]
) -> None:
    drifting = models_project(tmp_path / "shop")
    matching = models_project(tmp_path / "calm", columns="")
    add_target("shop", drifting, "shop-db", sqlite_url(tmp_path, "shop"))
    add_target("calm", matching, "calm-db", sqlite_url(tmp_path, "calm"))
    check("shop-db")
    check("calm-db")
    check("shop-db")
    services = services_of(app)
    with services.sessions() as session:
        ids = {t: registry.get_target(session, t).id for t in ("shop-db", "calm-db")}
        latest = latest_drift_checks(session, list(ids.values()))
        assert {t: latest[i].outcome for t, i in ids.items()} == {
            "shop-db": "drift",
            "calm-db": "none",
        }
        every = session.scalars(
            sa.text("SELECT id FROM drift_check WHERE target_id = :t"), {"t": ids["shop-db"]}
        ).all()
        assert len(every) == 2
        assert latest[ids["shop-db"]].id == max(every)
        assert latest_drift_checks(session, list(ids.values()), DriftKind.HISTORY) == {}
