"""The metadata store: its own migrations on SQLite and PostgreSQL, registry rules, snapshots."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.fernet import Fernet

from migdash.engine.catalog import GraphCatalog
from migdash.engine.probe import ProbePool
from migdash.errors import Conflict, InvalidInput, NotFound
from migdash.status import cached_status, refresh_status
from migdash.store import registry
from migdash.store.crypto import UrlCipher
from migdash.store.models import Base, Snapshot
from migdash.store.queries import all_environments, find_targets, latest_snapshots
from migdash.store.session import (
    create_db_engine,
    create_session_factory,
    migrations_config,
    schema_is_current,
    upgrade_schema,
)


def _store_roundtrip(url: str, project: Path) -> None:
    db_engine = create_db_engine(url)
    assert not schema_is_current(db_engine)
    upgrade_schema(db_engine)
    assert schema_is_current(db_engine)
    tables = set(sa.inspect(db_engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    sessions = create_session_factory(db_engine, UrlCipher([Fernet.generate_key().decode()]))
    with sessions() as session:
        registry.add_project(session, "p", str(project))
        registry.add_target(session, "t1", project="p", environment="prod", url="sqlite:///x.db")
        session.commit()
        assert [t.name for t in find_targets(session, environment="prod")] == ["t1"]
    with db_engine.begin() as connection:
        command.downgrade(migrations_config(connection, sessions.kw["info"]["cipher"]), "base")
    assert not {"project", "target"} & set(sa.inspect(db_engine).get_table_names())
    db_engine.dispose()


def test_migrations_create_and_drop_the_schema_on_sqlite(
    tmp_path: Any, make_project: Callable[..., Any]
) -> None:
    _store_roundtrip(f"sqlite:///{tmp_path / 'meta.db'}", make_project().location)


@pytest.mark.server
def test_migrations_create_and_drop_the_schema_on_postgresql(
    postgres_url: str, make_project: Callable[..., Any]
) -> None:
    _store_roundtrip(postgres_url, make_project().location)


def test_models_match_the_shipped_migrations(tmp_path: Any) -> None:
    """Autogenerate against a migrated DB finds nothing: no model change without a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    db_engine = create_db_engine(f"sqlite:///{tmp_path / 'meta.db'}")
    upgrade_schema(db_engine)
    with db_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": "migdash_version"})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_environments_are_ordered_by_creation_unless_positioned(db_session: Any) -> None:
    registry.add_environment(db_session, "dev")
    registry.add_environment(db_session, "prod", protected=True)
    registry.add_environment(db_session, "staging", position=1)
    registry.edit_environment(db_session, registry.get_environment(db_session, "prod"), position=2)
    assert [e.name for e in all_environments(db_session)] == ["dev", "staging", "prod"]
    assert registry.get_environment(db_session, "prod").protected


def test_target_add_creates_a_missing_environment_and_validates(
    db_session: Any, make_project: Callable[..., Any]
) -> None:
    registry.add_project(db_session, "shop", str(make_project().location))
    target = registry.add_target(
        db_session,
        "eu-1",
        project="shop",
        environment="prod",
        url="postgresql+psycopg://u:p@db/x",
        tags=["eu", " eu ", "b"],
    )
    assert target.environment.name == "prod"
    assert target.tags == ["b", "eu"]
    with pytest.raises(Conflict):
        registry.add_target(db_session, "eu-1", project="shop", environment="prod", url="sqlite://")
    with pytest.raises(InvalidInput, match="not a database URL"):
        registry.add_target(db_session, "eu-2", project="shop", environment="prod", url="nope")
    with pytest.raises(InvalidInput, match="not allowed"):
        registry.add_target(db_session, "<b>", project="shop", environment="prod", url="sqlite://")
    with pytest.raises(NotFound):
        registry.add_target(db_session, "eu-3", project="nope", environment="prod", url="sqlite://")


def test_an_environment_holding_targets_cannot_be_removed(
    db_session: Any, make_project: Callable[..., Any]
) -> None:
    registry.add_project(db_session, "shop", str(make_project().location))
    registry.add_target(db_session, "t", project="shop", environment="prod", url="sqlite://")
    with pytest.raises(Conflict, match="still holds"):
        registry.remove_environment(db_session, registry.get_environment(db_session, "prod"))
    registry.remove_target(db_session, registry.get_target(db_session, "t"))
    registry.remove_environment(db_session, registry.get_environment(db_session, "prod"))
    assert all_environments(db_session) == []


def test_removing_a_project_removes_its_targets_and_snapshots(
    db_session: Any, make_project: Callable[..., Any], make_target: Callable[..., str]
) -> None:
    project = make_project("linear")
    registry.add_project(db_session, "p", str(project.location))
    registry.add_target(
        db_session, "t", project="p", environment="dev", url=make_target(project, at="b2")
    )
    pool = ProbePool(timeout=3)
    refresh_status(db_session, GraphCatalog(), pool, find_targets(db_session))
    pool.close()
    db_session.commit()
    registry.remove_project(db_session, registry.get_project(db_session, "p"))
    db_session.commit()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Snapshot)) == 0


def test_snapshots_record_changes_and_only_confirm_an_unchanged_state(
    db_session: Any, make_project: Callable[..., Any], make_target: Callable[..., str]
) -> None:
    project = make_project("linear")
    url = make_target(project, at="a1")
    registry.add_project(db_session, "p", str(project.location))
    registry.add_target(db_session, "t", project="p", environment="dev", url=url)
    catalog, pool = GraphCatalog(), ProbePool(timeout=3)
    targets = find_targets(db_session)
    (first,) = refresh_status(db_session, catalog, pool, targets)
    db_session.commit()
    assert first.status.state.value == "behind"
    assert first.status.pending == ("b2", "c3")
    (second,) = refresh_status(db_session, catalog, pool, targets)
    db_session.commit()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Snapshot)) == 1
    assert second.checked_at >= first.checked_at

    from tests.conftest import migrate_to

    migrate_to(project, url, "heads")
    (third,) = refresh_status(db_session, catalog, pool, targets)
    db_session.commit()
    pool.close()
    assert third.status.state.value == "up_to_date"
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Snapshot)) == 2
    snapshot = latest_snapshots(db_session, [targets[0].id])[targets[0].id]
    assert snapshot.current == ["c3"]
    (cached,) = cached_status(db_session, targets)
    assert cached.status == third.status


def test_refresh_with_max_age_skips_fresh_snapshots(
    db_session: Any, make_project: Callable[..., Any], make_target: Callable[..., str]
) -> None:
    project = make_project("linear")
    url = make_target(project, at="a1")
    registry.add_project(db_session, "p", str(project.location))
    registry.add_target(db_session, "t", project="p", environment="dev", url=url)
    catalog, pool = GraphCatalog(), ProbePool(timeout=3)
    targets = find_targets(db_session)
    refresh_status(db_session, catalog, pool, targets)
    db_session.commit()
    from tests.conftest import migrate_to

    migrate_to(project, url, "heads")
    (report,) = refresh_status(db_session, catalog, pool, targets, max_age=timedelta(hours=1))
    assert report.status.state.value == "behind", "a fresh snapshot must not be re-probed"
    (report,) = refresh_status(db_session, catalog, pool, targets, max_age=timedelta(0))
    pool.close()
    assert report.status.state.value == "up_to_date"
