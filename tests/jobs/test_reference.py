"""Drift against history on real databases: references built on scratch servers, cached, compared.

A small project (accounts; an index on accounts.name; orders) is applied to
real PostgreSQL (and MariaDB, and SQLite) targets.  What is proved:

- two PostgreSQL targets at one revision, one changed by hand (a column
  added, an index dropped): the changed one drifts with exactly those two,
  the other has no drift;
- ``alembic stamp head`` on a database never upgraded, and a stamp at a
  middle revision after an upgrade to an earlier one, are "stamped but not
  applied", naming the revision whose schema the database really has;
- a second check is a cache hit that starts no process at all, and an
  edited revision file (or env.py) gives a new key, while a file outside
  the chain does not;
- with no scratch server for the dialect the reference is built on SQLite,
  and the check says so;
- an env.py that fails in the scratch build gives an ``error`` check with
  the scrubbed message and caches nothing;
- the scratch child never sees the target's URL nor any ``MIGDASH_*``
  variable, and none of the scratch databases the build created is left on
  the server (other builds may share it meanwhile).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask

from migdash.config import load_settings
from migdash.engine.graph import build_graph
from migdash.engine.launch import ForkServer
from migdash.engine.reference import (
    SCRATCH_PREFIX,
    ScratchServers,
    earlier_states,
    env_py_digest,
    reference_key,
    scratch_databases,
)
from migdash.errors import ConfigError
from migdash.scaffold import RevisionSpec, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Project, utcnow
from migdash.store.schema_models import DriftCheck, ReferenceSchema

REVISIONS = [
    RevisionSpec("a1", None, "create accounts", table="accounts", columns=("id", "name")),
    RevisionSpec(
        "b2",
        "a1",
        "index account names",
        upgrade_body="op.create_index('ix_accounts_name', 'accounts', ['name'])",
    ),
    RevisionSpec("c3", "b2", "create orders", table="orders"),
    RevisionSpec(
        "d4",
        "c3",
        "order notes",
        upgrade_body="op.add_column('orders', sa.Column('note', sa.String(50)))",
    ),
]
HAND_CHANGES = (
    "ALTER TABLE accounts ADD COLUMN note VARCHAR(20)",
    "DROP INDEX ix_accounts_name",
)


# --- databases and projects -----------------------------------------------------------------


def alembic(location: Path, url: str, verb: str, revision: str) -> None:
    """Alembic's own ``upgrade``/``stamp`` on *url* (setting targets up, in this test process)."""
    db_engine = sa.create_engine(url)
    try:
        with db_engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(location))
            config.attributes["connection"] = connection
            getattr(command, verb)(config, revision)
    finally:
        db_engine.dispose()


def execute(url: str, *statements: str) -> None:
    db_engine = sa.create_engine(url)
    try:
        with db_engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        db_engine.dispose()


@pytest.fixture
def databases() -> Iterator[Callable[[str], str]]:
    """``make(server_url)``: a fresh database on that server; all dropped at teardown."""
    made: list[tuple[str, str]] = []

    def make(server_url: str) -> str:
        name = f"mdtest_{uuid.uuid4().hex[:10]}"
        execute_autocommit(server_url, f"CREATE DATABASE {name}")
        made.append((server_url, name))
        return sa.engine.make_url(server_url).set(database=name).render_as_string(False)

    yield make
    for server_url, name in made:
        force = " WITH (FORCE)" if server_url.startswith("postgresql") else ""
        execute_autocommit(server_url, f"DROP DATABASE IF EXISTS {name}{force}")


def execute_autocommit(server_url: str, statement: str) -> None:
    db_engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with db_engine.connect() as connection:
            connection.exec_driver_sql(statement)
    finally:
        db_engine.dispose()


def scratch_names(server_url: str) -> set[str]:
    db_engine = sa.create_engine(server_url)
    try:
        with db_engine.connect() as connection:
            return set(scratch_databases(connection))
    finally:
        db_engine.dispose()


_CREATE_SCRATCH = re.compile(rf"^\s*CREATE DATABASE ({SCRATCH_PREFIX}\w+)", re.IGNORECASE)


@pytest.fixture
def created_scratch() -> Iterator[set[str]]:
    """The name of every scratch database this process creates from here on, on any server.

    Read from the statements themselves (every SQLAlchemy engine), so a build
    is judged by its own databases only: other builds on the shared server
    (another pytest-xdist worker, a benchmark) come and go meanwhile.
    """
    created: set[str] = set()

    def spy(connection: Any, cursor: Any, statement: str, *rest: Any) -> None:
        match = _CREATE_SCRATCH.match(statement)
        if match:
            created.add(match.group(1))

    sa.event.listen(sa.Engine, "before_cursor_execute", spy)
    yield created
    sa.event.remove(sa.Engine, "before_cursor_execute", spy)


def assert_all_dropped(server_url: str, created: set[str]) -> None:
    """Every scratch database in *created* was made and is gone from *server_url*."""
    assert created, "the build created a scratch database"
    left = created & scratch_names(server_url)
    assert not left, f"scratch databases left behind: {sorted(left)}"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "projects" / "shop", REVISIONS)


@pytest.fixture
def add_target(app: Flask, project: Path) -> Callable[..., str]:
    """Register *url* as a target of the project at *location* (``shop`` by default)."""

    def add(name: str, url: str, location: Path | None = None) -> str:
        location = location or project
        with services_of(app).sessions() as session:
            known = session.scalar(sa.select(Project).where(Project.name == location.name))
            if known is None:
                registry.add_project(session, location.name, str(location))
            registry.add_target(session, name, project=location.name, environment="dev", url=url)
            session.commit()
        return name

    return add


@pytest.fixture
def check(app: Flask) -> Callable[..., dict[str, Any]]:
    """Run ``check_history_drift`` on a target and commit (what a boundary does)."""
    from migdash.jobs.reference import check_history_drift

    def run(target: str, scratch: ScratchServers) -> dict[str, Any]:
        with services_of(app).sessions() as session:
            row = registry.get_target(session, target)
            result = check_history_drift(
                session, services_of(app).jobs, row, utcnow(), scratch=scratch
            )
            session.commit()
            return {"outcome": result.outcome, "summary": result.summary, **result.detail}

    return run


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every child process started from here on (module and argv), whatever started it.

    Children running project code are all forked by a fork server
    (:meth:`ForkServer.start`); any other process would go through ``subprocess.run``.
    """
    started: list[list[str]] = []
    real_run, real_start = subprocess.run, ForkServer.start

    def spy_run(argv: Any, *args: Any, **kwargs: Any) -> Any:
        started.append([str(a) for a in argv])
        return real_run(argv, *args, **kwargs)

    def spy_start(server: ForkServer, module: str, args: Any, cwd: str) -> Any:
        started.append([module, *map(str, args)])
        return real_start(server, module, args, cwd)

    monkeypatch.setattr(subprocess, "run", spy_run)
    monkeypatch.setattr(ForkServer, "start", spy_start)
    return started


@pytest.fixture
def scratch_dbs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URL of every scratch database a reference build opens from here on."""
    from migdash.jobs import reference_build

    opened: list[str] = []
    real = reference_build.scratch_database

    @contextmanager
    def counting(site: Any) -> Iterator[str]:
        with real(site) as url:
            opened.append(url)
            yield url

    monkeypatch.setattr(reference_build, "scratch_database", counting)
    return opened


def upgrades(children: list[list[str]]) -> int:
    return sum(1 for argv in children if "migdash.jobs.runner" in argv)


def real_items(result: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (item["change"], item["kind"], f"{item['table']}.{item['name']}")
        for item in result["diff"]["items"]
        if not item["cosmetic"]
    }


def stored(app: Flask) -> tuple[list[str], int]:
    with services_of(app).sessions() as session:
        checks = session.scalars(sa.select(DriftCheck.outcome).order_by(DriftCheck.id)).all()
        references = session.scalar(sa.select(sa.func.count()).select_from(ReferenceSchema))
        return list(checks), int(references or 0)


# --- PostgreSQL: the acceptance pair, stamps ------------------------------------------------


def test_two_postgres_targets_at_one_revision_only_the_changed_one_drifts(
    app: Flask,
    children: list[list[str]],
    scratch_dbs: list[str],
    postgres_server: str,
    databases: Callable[[str], str],
    project: Path,
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
) -> None:
    scratch = ScratchServers(postgresql=postgres_server)
    calm, changed = databases(postgres_server), databases(postgres_server)
    for url in (calm, changed):
        alembic(project, url, "upgrade", "c3")
    execute(changed, *HAND_CHANGES)
    add_target("calm", calm)
    add_target("changed", changed)

    drifted = check("changed", scratch)
    assert drifted["outcome"] == "drift", drifted["summary"]
    assert upgrades(children) == 3, "c3; then b2, a1 and base in one pass: a1 and b2 one step each"
    assert len(scratch_dbs) == 2, "one database for c3, one for the whole walk"
    assert stored(app)[1] == 4
    assert real_items(drifted) == {
        ("added", "column", "accounts.note"),
        ("removed", "index", "accounts.ix_accounts_name"),
    }
    assert "column accounts.note added" in drifted["summary"]
    assert "index ix_accounts_name dropped" in drifted["summary"]
    assert drifted["reference"]["dialect"] == "postgresql"
    assert drifted["reference"]["revisions"] == ["c3"]
    assert drifted["reference"]["note"] is None

    children.clear()
    calm_result = check("calm", scratch)
    assert children == [], "the pair shares one reference"
    assert calm_result["outcome"] == "none", calm_result["summary"]
    assert calm_result["diff"]["real_count"] == 0
    assert calm_result["reference"]["cache_hit"] is True


def test_stamp_head_on_a_database_never_upgraded_is_stamped_not_applied(
    postgres_server: str,
    databases: Callable[[str], str],
    project: Path,
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
) -> None:
    url = databases(postgres_server)
    alembic(project, url, "stamp", "head")
    add_target("stamped", url)
    result = check("stamped", ScratchServers(postgresql=postgres_server))
    assert result["outcome"] == "stamped_not_applied", result["summary"]
    assert result["schema_of"] == []
    assert result["summary"].startswith(
        "stamped but not applied: the version table says d4, but the schema is empty (base)"
    )


def test_a_stamp_above_an_earlier_upgrade_names_the_revision_really_applied(
    postgres_server: str,
    databases: Callable[[str], str],
    project: Path,
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
) -> None:
    url = databases(postgres_server)
    alembic(project, url, "upgrade", "a1")
    alembic(project, url, "stamp", "c3")  # b2 (the index) and c3 (orders) never ran
    add_target("half", url)
    result = check("half", ScratchServers(postgresql=postgres_server))
    assert result["outcome"] == "stamped_not_applied", result["summary"]
    assert result["schema_of"] == ["a1"], "the nearest match is a1: b2 has the index"
    assert "says c3, but the schema is what a1 gives" in result["summary"]


# --- the cache --------------------------------------------------------------------------------


def test_the_second_check_is_a_cache_hit_and_starts_no_process(
    app: Flask,
    postgres_server: str,
    databases: Callable[[str], str],
    project: Path,
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
    children: list[list[str]],
) -> None:
    scratch = ScratchServers(postgresql=postgres_server)
    url = databases(postgres_server)
    alembic(project, url, "upgrade", "heads")
    add_target("cached", url)
    first = check("cached", scratch)
    assert first["outcome"] == "none", first["summary"]
    assert first["reference"]["cache_hit"] is False
    assert upgrades(children) == 1
    _, references = stored(app)

    children.clear()
    second = check("cached", scratch)
    assert second["outcome"] == "none"
    assert second["reference"]["cache_hit"] is True
    assert second["reference"]["key"] == first["reference"]["key"]
    assert children == [], "a cache hit starts no child process"
    assert stored(app)[1] == references


def test_an_edited_revision_file_changes_the_key_and_one_outside_the_chain_does_not(
    project: Path,
) -> None:
    def keys() -> dict[str, str]:
        graph = build_graph(ScriptDirectory.from_config(config), str(project))
        env = env_py_digest(str(project))
        return {
            rev: reference_key(graph, (rev,), env, "postgresql", 16) for rev in ("b2", "c3", "d4")
        }

    config = Config()
    config.set_main_option("script_location", str(project))
    before = keys()
    assert len(set(before.values())) == 3
    c3 = next((project / "versions").glob("c3_*.py"))
    c3.write_text(c3.read_text() + "\n# edited after it ran\n")
    after = keys()
    assert after["b2"] == before["b2"], "c3 is not in b2's chain"
    assert after["c3"] != before["c3"]
    assert after["d4"] != before["d4"], "c3 is in d4's chain"
    (project / "env.py").write_text((project / "env.py").read_text() + "\n# edited\n")
    assert keys()["b2"] != after["b2"], "env.py runs around every step"
    graph = build_graph(ScriptDirectory.from_config(config), str(project))
    env = env_py_digest(str(project))
    assert reference_key(graph, ("b2",), env, "postgresql", 16) != reference_key(
        graph, ("b2",), env, "postgresql", 15
    ), "another server major is another reference"


def test_an_edited_revision_file_is_built_again(
    postgres_server: str,
    databases: Callable[[str], str],
    project: Path,
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
    children: list[list[str]],
) -> None:
    scratch = ScratchServers(postgresql=postgres_server)
    url = databases(postgres_server)
    alembic(project, url, "upgrade", "heads")
    add_target("edited", url)
    first = check("edited", scratch)
    a1 = next((project / "versions").glob("a1_*.py"))
    a1.write_text(a1.read_text() + "\n# a comment is an edit too\n")
    children.clear()
    second = check("edited", scratch)
    assert second["reference"]["cache_hit"] is False
    assert second["reference"]["key"] != first["reference"]["key"]
    assert upgrades(children) == 1


# --- dialects -----------------------------------------------------------------------------------


def test_no_scratch_server_builds_on_sqlite_and_says_so(
    postgres_server: str,
    databases: Callable[[str], str],
    project: Path,
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
) -> None:
    calm, changed = databases(postgres_server), databases(postgres_server)
    for url in (calm, changed):
        alembic(project, url, "upgrade", "heads")
    execute(changed, *HAND_CHANGES)
    add_target("calm", calm)
    add_target("changed", changed)

    result = check("calm", ScratchServers())
    assert result["outcome"] == "none", result["summary"]
    assert result["reference"]["dialect"] == "sqlite"
    assert "MIGDASH_SCRATCH_POSTGRES_URL" in result["reference"]["note"]
    assert "built on SQLite" in result["summary"]
    cosmetic = {item["detail"] for item in result["diff"]["items"] if item["cosmetic"]}
    assert result["diff"]["cosmetic_count"] == len(result["diff"]["items"]), cosmetic

    drifted = check("changed", ScratchServers())
    assert drifted["outcome"] == "drift", drifted["summary"]
    assert real_items(drifted) == {
        ("added", "column", "accounts.note"),
        ("removed", "index", "accounts.ix_accounts_name"),
    }


RICH = """op.create_table(
    'events',
    sa.Column('id', sa.Integer(), primary_key=True),
    sa.Column('account_id', sa.Integer(), sa.ForeignKey('accounts.id'), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column('payload', sa.JSON()),
    sa.Column('created', sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column('code', sa.String(50), nullable=False),
    sa.Column('amount', sa.Numeric(10, 2), server_default='0'),
    sa.Column('big', sa.BigInteger()),
)
op.create_index('ix_events_code', 'events', ['code'], unique=True)"""


@pytest.mark.parametrize("server", ["postgres_server", "mariadb_server"])
def test_the_sqlite_fallback_leaves_only_cosmetic_differences_for_portable_types(
    request: pytest.FixtureRequest,
    server: str,
    databases: Callable[[str], str],
    tmp_path: Path,
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
) -> None:
    """Boolean, JSON, now(), Numeric, a foreign key and a unique index, built on SQLite."""
    server_url = request.getfixturevalue(server)
    location = write_project(
        tmp_path / "projects" / "rich",
        [REVISIONS[0], RevisionSpec("e1", "a1", "events", upgrade_body=RICH)],
    )
    url = databases(server_url)
    alembic(location, url, "upgrade", "heads")
    add_target("rich-db", url, location)
    result = check("rich-db", ScratchServers())
    assert result["outcome"] == "none", result["summary"]
    assert result["reference"]["dialect"] == "sqlite"
    cosmetic = [item["detail"] for item in result["diff"]["items"] if item["cosmetic"]]
    # PostgreSQL: TIMESTAMP WITH TIME ZONE against SQLite's DATETIME (one affinity);
    # MariaDB: the index it creates for the foreign key on its own.
    assert len(cosmetic) == 1, cosmetic
    assert "what e1 gives; 1 cosmetic difference (" in result["summary"]
    execute(url, "ALTER TABLE events ADD COLUMN extra INTEGER")
    drifted = check("rich-db", ScratchServers())
    assert drifted["outcome"] == "drift"
    assert real_items(drifted) == {("added", "column", "events.extra")}


def test_mariadb_targets_against_a_mariadb_scratch_server(
    mariadb_server: str,
    created_scratch: set[str],
    databases: Callable[[str], str],
    project: Path,
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
) -> None:
    scratch = ScratchServers(mysql=mariadb_server)
    calm, changed = databases(mariadb_server), databases(mariadb_server)
    for url in (calm, changed):
        alembic(project, url, "upgrade", "heads")
    execute(changed, "ALTER TABLE accounts ADD COLUMN note VARCHAR(20)")
    add_target("calm", calm)
    add_target("changed", changed)
    assert check("calm", scratch)["outcome"] == "none"
    drifted = check("changed", scratch)
    assert drifted["outcome"] == "drift", drifted["summary"]
    assert drifted["reference"]["dialect"] == "mysql"
    assert real_items(drifted) == {("added", "column", "accounts.note")}
    assert_all_dropped(mariadb_server, created_scratch)
    fallback = check("calm", ScratchServers())
    assert fallback["outcome"] == "none", fallback["summary"]
    assert "MIGDASH_SCRATCH_MYSQL_URL" in fallback["reference"]["note"]


def test_sqlite_targets_need_no_configuration(
    tmp_path: Path,
    project: Path,
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
) -> None:
    url = f"sqlite:///{tmp_path / 'lite.db'}"
    alembic(project, url, "upgrade", "b2")
    add_target("lite", url)
    assert check("lite", ScratchServers())["outcome"] == "none"
    execute(url, "DROP INDEX ix_accounts_name")
    result = check("lite", ScratchServers())
    assert result["outcome"] == "stamped_not_applied", "without the index it is what a1 gives"
    assert result["schema_of"] == ["a1"]
    assert result["reference"]["note"] is None


def test_a_walk_across_a_merge_starts_another_database_where_ancestry_forks(
    tmp_path: Path,
    make_project: Callable[..., Any],
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
    scratch_dbs: list[str],
) -> None:
    merged = make_project("merged")  # a1, b2, then c3 (lefty) | d4 (righty), e5 merge, f6
    url = f"sqlite:///{tmp_path / 'merged.db'}"
    alembic(merged.location, url, "upgrade", "d4")
    alembic(merged.location, url, "stamp", "f6")
    add_target("merged-db", url, merged.location)
    result = check("merged-db", ScratchServers())
    assert result["outcome"] == "stamped_not_applied", result["summary"]
    assert result["schema_of"] == ["d4"], "righty is there, lefty is not"
    assert len(scratch_dbs) == 3, "f6; base, a1, b2, c3 on one; d4 and e5 on another"


# --- failures -----------------------------------------------------------------------------------


FAILING_ENV = """
from alembic import context
raise RuntimeError("scratch env.py refuses " + context.config.get_main_option("sqlalchemy.url"))
"""


def test_env_py_failing_in_the_scratch_build_is_an_error_and_caches_nothing(
    app: Flask,
    postgres_server: str,
    created_scratch: set[str],
    databases: Callable[[str], str],
    project: Path,
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
) -> None:
    url = databases(postgres_server)
    alembic(project, url, "upgrade", "heads")
    (project / "env.py").write_text(FAILING_ENV)
    add_target("broken-env", url)
    result = check("broken-env", ScratchServers(postgresql=postgres_server))
    assert result["outcome"] == "error"
    assert "scratch env.py refuses" in result["summary"]
    assert "RuntimeError" in result["error"]
    password = sa.engine.make_url(postgres_server).password
    assert f":{password}@" not in json.dumps(result), "the scratch URL's password is scrubbed"
    assert stored(app) == (["error"], 0), "no reference is cached"
    assert_all_dropped(postgres_server, created_scratch)


def test_an_unreadable_target_and_an_unversioned_one(
    app: Flask,
    tmp_path: Path,
    project: Path,
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
) -> None:
    add_target("gone", f"sqlite:///{tmp_path / 'missing.db'}")
    gone = check("gone", ScratchServers())
    assert gone["outcome"] == "error"
    assert gone["summary"].startswith("the check failed: the target cannot be read")
    bare = f"sqlite:///{tmp_path / 'bare.db'}"
    execute(bare, "CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
    add_target("bare", bare)
    unversioned = check("bare", ScratchServers())
    assert unversioned["outcome"] == "not_applicable"
    assert unversioned["reason"] == "no_version_table"
    assert stored(app) == (["error", "not_applicable"], 0)


# --- isolation and clean-up ---------------------------------------------------------------------


SPY = """
import json as _json, os as _os
from alembic import context as _context
try:
    _url = _context.config.get_main_option("sqlalchemy.url")  # set while env.py runs
except AttributeError:
    _url = None  # imported to read the graph: no environment is running
with open({log!r}, "a") as _log:
    _log.write(_json.dumps({{"env": dict(_os.environ), "url": _url}}) + "\\n")
"""


def test_the_scratch_child_sees_only_the_scratch_database(
    postgres_server: str,
    created_scratch: set[str],
    databases: Callable[[str], str],
    tmp_path: Path,
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = tmp_path / "spy.log"
    location = write_project(tmp_path / "projects" / "spied", REVISIONS)
    spied = next((location / "versions").glob("c3_*.py"))
    head, _, rest = spied.read_text().partition("\nrevision = ")
    spied.write_text(head + SPY.format(log=str(log)) + "\nrevision = " + rest)
    target_url = databases(postgres_server)
    alembic(location, target_url, "upgrade", "heads")
    execute(target_url, *HAND_CHANGES)  # drift: the walk builds b2, a1 and base too
    add_target("spied-db", target_url, location)
    log.unlink()  # setting the target up ran the spy in this process; from here on it must not
    for name, value in {
        "MIGDASH_SECRET_KEY": "never-in-a-child",
        "MIGDASH_DATABASE_URL": target_url,
        "MIGDASH_SCRATCH_POSTGRES_URL": postgres_server,
    }.items():
        monkeypatch.setenv(name, value)

    result = check("spied-db", ScratchServers(postgresql=postgres_server))
    assert result["outcome"] == "drift", result["summary"]

    builds = [json.loads(line) for line in log.read_text().splitlines()]
    urls = [record["url"] for record in builds if record["url"]]
    assert urls, "the spy ran in a scratch build"
    target_db = sa.engine.make_url(target_url).database
    assert target_db
    for record in builds:
        assert target_db not in json.dumps(record), "the child saw the target's database"
        assert not [name for name in record["env"] if name.startswith("MIGDASH_")]
    scratch_dbs = {sa.engine.make_url(url).database for url in urls}
    assert scratch_dbs <= created_scratch, "the child saw only databases this build created"
    assert_all_dropped(postgres_server, created_scratch)


def test_an_abandoned_scratch_database_is_swept_by_the_next_build(
    postgres_server: str,
    databases: Callable[[str], str],
    project: Path,
    add_target: Callable[..., str],
    check: Callable[..., dict[str, Any]],
) -> None:
    old = f"{SCRATCH_PREFIX}{int(time.time()) - 7200}_{uuid.uuid4().hex[:10]}"
    recent = f"{SCRATCH_PREFIX}{int(time.time())}_{uuid.uuid4().hex[:10]}"
    for name in (old, recent):
        execute_autocommit(postgres_server, f"CREATE DATABASE {name}")
    try:
        url = databases(postgres_server)
        alembic(project, url, "upgrade", "heads")
        add_target("sweeper", url)
        assert check("sweeper", ScratchServers(postgresql=postgres_server))["outcome"] == "none"
        left = scratch_names(postgres_server)
        assert old not in left, "a scratch database two hours old was abandoned: dropped"
        assert recent in left, "one created a moment ago may be another build's: kept"
    finally:
        for name in (old, recent):
            execute_autocommit(postgres_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- pure parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["linear", "merged", "two_heads", "labels", "depends"])
def test_earlier_states_are_strictly_below_nearest_first_and_end_at_base(
    make_project: Callable[..., Any], shape: str
) -> None:
    fixture = make_project(shape)
    graph = build_graph(
        ScriptDirectory.from_config(fixture.alembic_config()), str(fixture.location)
    )
    for rows in [tuple(sorted(graph.real_heads)), *[(rev,) for rev in graph.nodes]]:
        applied = graph.ancestor_mask(rows)
        states = earlier_states(graph, rows, limit=20)
        assert states[-1] == (), "base is always the last candidate"
        sizes = []
        for state in states:
            mask = graph.ancestor_mask(state)
            assert mask & ~applied == 0, (rows, state)
            assert mask != applied, (rows, state)
            sizes.append(bin(mask).count("1"))
        assert len(set(states)) == len(states)
        if len(rows) == 1 and shape == "linear":
            assert sizes == sorted(sizes, reverse=True), "nearest first"
    many = earlier_states(graph, tuple(sorted(graph.real_heads)), limit=1)
    assert len(many) <= 2


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MIGDASH_SCRATCH_POSTGRES_URL", "not a url", "not a database URL"),
        ("MIGDASH_SCRATCH_POSTGRES_URL", "mysql+pymysql://u:p@h/db", "names a mysql server"),
        ("MIGDASH_SCRATCH_MYSQL_URL", "postgresql://u:p@h/db", "names a postgresql server"),
        ("MIGDASH_SCRATCH_MYSQL_URL", "sqlite:///x.db", "names a sqlite server"),
    ],
)
def test_scratch_settings_are_parsed_strictly(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as excinfo:
        load_settings({"MIGDASH_INSTANCE": str(tmp_path), name: value})
    assert ":p@" not in str(excinfo.value), "a refused URL is not echoed with its password"


def test_scratch_settings_accept_server_urls_and_empty(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "MIGDASH_INSTANCE": str(tmp_path),
            "MIGDASH_SCRATCH_POSTGRES_URL": "postgresql+psycopg://s:p@scratch/postgres",
            "MIGDASH_SCRATCH_MYSQL_URL": "",
        }
    )
    assert settings["MIGDASH_SCRATCH_POSTGRES_URL"] == "postgresql+psycopg://s:p@scratch/postgres"
    assert settings["MIGDASH_SCRATCH_MYSQL_URL"] is None
    mariadb = load_settings(
        {"MIGDASH_INSTANCE": str(tmp_path), "MIGDASH_SCRATCH_MYSQL_URL": "mariadb://s:p@h/mysql"}
    )
    assert mariadb["MIGDASH_SCRATCH_MYSQL_URL"] == "mariadb://s:p@h/mysql"
