"""A stateful property test of the job lifecycle on a protected environment.

Hypothesis interleaves what people and machines do to jobs: requests (web
form, API, CLI; duplicates included), approvals (by the requester, by others,
with the plan they read, a stale plan or none), rejections, cancellations,
the target moved by Alembic run outside migdash, a revision file edited, the
environment made protected or not and its required approvals changed, target
removal, worker passes and reaper passes.  After every step:

- no response was a 5xx;
- every job has exactly one ``job.request`` audit row;
- a target has at most one pending (awaiting, queued, running) job;
- every job that started during a worker pass while the environment was
  protected had the required number of distinct approvals, from people
  other than the requester, of exactly the plan it ran; and what it ran
  (the ``Running upgrade a -> b`` lines of its log) is its plan's steps.

Everything is real: a SQLite metadata DB, SQLite targets upgraded by
Alembic, plans and runs in child processes, the in-process Worker a
``migdash worker`` thread uses.  Each example starts from a copy of one
prepared world, so examples are independent and cheap.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migdash import create_app
from migdash.cli import main
from migdash.config import ensure_instance
from migdash.errors import Conflict
from migdash.jobs import removal
from migdash.jobs.consumer import build_worker
from migdash.jobs.gate import approvals_for
from migdash.jobs.records import PENDING_STATES, TARGET_ACTIONS
from migdash.jobs.worker import Worker, WorkerSettings
from migdash.scaffold import RevisionSpec, migrate_database, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import AuditEvent, Environment, Job, JobLogLine, JobState, Role, utcnow
from migdash.store.tokens import create_token
from migdash.store.users import create_user, get_user

REVISIONS = [
    RevisionSpec("a1", None, "create accounts", table="accounts"),
    RevisionSpec("b2", "a1", "create orders", table="orders"),
    RevisionSpec("c3", "b2", "create items", table="items"),
]
TARGETS = ("prod-1", "prod-2")
PEOPLE = {"olga": Role.OPERATOR, "amir": Role.APPROVER, "bea": Role.APPROVER}
PASSWORD = "lifecycle-password"  # noqa: S105 - a throwaway test world
ACTIONS = [
    ("upgrade", "heads"),
    ("upgrade", "+1"),
    ("downgrade", "-1"),
    ("downgrade", "base"),
    ("stamp", "heads"),
]
RUNNING = re.compile(r"Running (upgrade|downgrade) (.*?) -> (.*?)(?:, |$)")
_WORLDS = itertools.count()
STARTED = (JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.INTERRUPTED)


@dataclass
class Template:
    root: Path
    tokens: dict[str, str] = field(default_factory=dict)
    server: str | None = None
    """With a PostgreSQL server URL, the metadata DB is the database ``database``, cloned per
    example with ``CREATE DATABASE ... TEMPLATE``; without, a SQLite file copied per example."""
    database: str | None = None

    def metadata_url(self, database: str) -> str:
        assert self.server is not None
        return sa.make_url(self.server).set(database=database).render_as_string(False)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """One prepared world: project, protected prod with two targets at a1, people, tokens."""
    return build_template(tmp_path_factory.mktemp("lifecycle-template"), None)


@pytest.fixture(scope="module")
def pg_template(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: str
) -> Iterator[Template]:
    """The same world with its metadata DB on PostgreSQL."""
    database = f"lc_template_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {database}")
    prepared = build_template(tmp_path_factory.mktemp("lifecycle-pg"), (postgres_server, database))
    yield prepared
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    admin.dispose()


def build_template(root: Path, postgres: tuple[str, str] | None) -> Template:
    write_project(root / "shop", REVISIONS)
    (root / "dbs").mkdir()
    instance = root / "instance"
    ensure_instance(instance)
    prepared = Template(root)
    config: dict[str, Any] = {"TESTING": True, "MIGDASH_INSTANCE": str(instance)}
    if postgres is not None:
        prepared.server, prepared.database = postgres
        config["MIGDASH_DATABASE_URL"] = prepared.metadata_url(postgres[1])
    app = create_app(config)
    services = services_of(app)
    services.upgrade_schema()
    with services.sessions() as session:
        registry.add_project(session, "shop", str(root / "shop"))
        registry.add_environment(session, "prod", protected=True)
        for name in TARGETS:
            url = f"sqlite:///{root / 'dbs' / name}.db"
            migrate_database(root / "shop", url, "a1")
            registry.add_target(session, name, project="shop", environment="prod", url=url)
        for name, role in PEOPLE.items():
            create_user(session, name, PASSWORD, role)
            prepared.tokens[name], _ = create_token(session, get_user(session, name), "t", utcnow())
        session.commit()
        services.catalog.graph(str(root / "shop"))  # the graph cache, copied with the instance
    services.probes.close()
    services.db_engine.dispose()
    return prepared


class JobLifecycle:
    """One world per example; its methods are what people and workers do."""

    def __init__(self, template: Template, scratch: Path) -> None:
        self.template = template
        self.root = scratch / f"world-{next(_WORLDS)}"
        shutil.copytree(template.root, self.root)
        self.config: dict[str, Any] = {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(self.root / "instance"),
        }
        self.database: str | None = None
        if template.server is not None:
            self.database = f"lc_{uuid.uuid4().hex[:12]}"
            admin = sa.create_engine(template.server, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.exec_driver_sql(
                    f"CREATE DATABASE {self.database} TEMPLATE {template.database}"
                )
            admin.dispose()
            self.config["MIGDASH_DATABASE_URL"] = template.metadata_url(self.database)
        self._relocate()
        self.app = create_app(
            {
                **self.config,
                "WTF_CSRF_ENABLED": False,
                "MIGDASH_PROBE_TIMEOUT": 3.0,
                "MIGDASH_LOGIN_RATE_LIMIT": "1000 per minute",
            }
        )
        self.services = services_of(self.app)
        self.worker: Worker = build_worker(self.services)
        self.clients: dict[str, Any] = {}
        self.statuses: list[tuple[str, int]] = []
        self.removed: set[str] = set()
        self.violations: list[str] = []

    def _relocate(self) -> None:
        """The copied metadata DB names the template's paths; point it at this world's files."""
        app = create_app(self.config)
        services = services_of(app)
        with services.sessions() as session:
            session.execute(
                sa.text("UPDATE project SET script_location = :new"),
                {"new": str(self.root / "shop")},
            )
            for name in TARGETS:
                target = registry.get_target(session, name)
                target.set_url(session, f"sqlite:///{self.root / 'dbs' / name}.db")
            session.commit()
        services.db_engine.dispose()

    def teardown(self) -> None:
        self.services.probes.close()
        self.services.db_engine.dispose()
        shutil.rmtree(self.root, ignore_errors=True)
        if self.database is not None and self.template.server is not None:
            admin = sa.create_engine(self.template.server, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
            admin.dispose()

    # --- channels ---------------------------------------------------------------------------

    def web(self, user: str) -> Any:
        if user not in self.clients:
            client = self.app.test_client()
            response = client.post("/login", data={"username": user, "password": PASSWORD})
            assert response.status_code == 302
            self.clients[user] = client
        return self.clients[user]

    def api(self, user: str, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.template.tokens[user]}"}
        client = self.app.test_client()
        return client.open(f"/api/v1{path}", method=method, headers=headers, json=body)

    def cli(self, *args: str) -> Any:
        return self.app.test_cli_runner().invoke(main, list(args))

    def note(self, what: str, status: int) -> None:
        self.statuses.append((what, status))
        assert status < 500, (what, status)

    # --- reading the world ------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        with self.services.sessions() as session:
            return list(session.scalars(sa.select(Job).order_by(Job.id)))

    def environment(self) -> tuple[bool, int]:
        with self.services.sessions() as session:
            env = session.scalar(sa.select(Environment).where(Environment.name == "prod"))
            assert env is not None
            return env.protected, env.required_approvals

    def plan_hash_for(self, job_id: int) -> str | None:
        response = self.api("amir", "GET", f"/jobs/{job_id}/plan")
        self.note("GET plan", response.status_code)
        return response.get_json().get("plan_hash") if response.status_code == 200 else None

    # --- rules: people ----------------------------------------------------------------------

    def request(self, channel: str, user: str, name: str, action: tuple[str, str]) -> None:
        kind, revision = action
        target = name
        if channel == "web":
            response = self.web(user).post(
                f"/actions/targets/{target}", data={"action": kind, "revision": revision}
            )
            self.note("web request", response.status_code)
        elif channel == "api":
            body = {"target": target, "action": kind, "revision": revision}
            response = self.api(user, "POST", "/jobs", body)
            self.note("api request", response.status_code)
        else:
            result = self.cli(kind, target, revision, "--as", user, "--json")
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                result.output
            )

    def approve(self, pick: int, approver: str, seen: str, channel: str) -> None:
        waiting = [j for j in self.jobs() if j.state == JobState.AWAITING_APPROVAL]
        if not waiting:
            return
        job = waiting[pick % len(waiting)]
        plan_hash = {
            "current": self.plan_hash_for(job.id),
            "stale": "0" * 64,
            "none": None,
        }[seen]
        if channel == "web":
            data = {"comment": "ok", **({"plan_hash": plan_hash} if plan_hash else {})}
            response = self.web(approver).post(f"/approvals/{job.id}/approve", data=data)
            self.note("web approve", response.status_code)
        elif channel == "api":
            body = {"comment": "ok", **({"plan_hash": plan_hash} if plan_hash else {})}
            response = self.api(approver, "POST", f"/jobs/{job.id}/approve", body)
            self.note("api approve", response.status_code)
        else:
            args = ["approve", str(job.id), "--as", approver]
            self.cli(*(args + (["--plan-hash", plan_hash] if plan_hash else [])))

    def withdraw(self, pick: int, who: str, decision: str) -> None:
        """Reject (an approver) or cancel (anyone who may request) a job that has not started."""
        open_jobs = [j for j in self.jobs() if j.state in PENDING_STATES]
        if not open_jobs:
            return
        job = open_jobs[pick % len(open_jobs)]
        if decision == "reject":
            response = self.web(who).post(f"/approvals/{job.id}/reject", data={})
        elif decision == "cancel-web":
            response = self.web(who).post(f"/jobs/{job.id}/cancel")
        else:
            response = self.api(who, "POST", f"/jobs/{job.id}/cancel")
        self.note(decision, response.status_code)

    # --- rules: the world changes -------------------------------------------------------

    def change_outside_migdash(self, name: str, change: str) -> None:
        """Alembic run by hand on a target, or a revision file edited after a plan was made."""
        if change == "edit-file":
            path = next((self.root / "shop" / "versions").glob("c3_*.py"))
            path.write_text(path.read_text() + "\n# edited after the plan was made\n")
            return
        if name in self.removed:
            return
        from alembic import command

        url = f"sqlite:///{self.root / 'dbs' / name}.db"
        config = _alembic_config(self.root / "shop", url)
        current = _versions(url)
        if change == "base":
            command.downgrade(config, "base")
        elif current and _order(current[0]) > _order(change):
            command.downgrade(config, change)
        else:
            command.upgrade(config, change)

    def set_protection(self, protected: bool, required: int) -> None:
        with self.services.sessions() as session:
            env = registry.get_environment(session, "prod")
            registry.edit_environment(
                session, env, protected=protected, required_approvals=required, actor="admin"
            )
            session.commit()

    def remove_target(self, name: str) -> None:
        """An admin removes a target through the confirmation page (pending jobs cancelled)."""
        if name in self.removed or len(self.removed) == len(TARGETS) - 1:
            return
        admin = self.web("amir")  # not an admin: refused, and nothing changes
        self.note("remove as approver", admin.post(f"/admin/targets/{name}/delete").status_code)
        with self.services.sessions() as session:
            try:
                removal.remove(
                    session, "target", name, actor="admin", role=Role.ADMIN, now=utcnow()
                )
            except Conflict:  # a running job blocks the removal
                return
            session.commit()
        self.removed.add(name)

    # --- rules: machines ----------------------------------------------------------------

    def worker_pass(self) -> None:
        protected, required = self.environment()
        before = {j.id: j.state for j in self.jobs()}
        huey = self.services.queue.huey
        while (task := huey.dequeue()) is not None:
            huey.execute(task)
        for job in self.jobs():
            if job.state in STARTED and before.get(job.id) not in STARTED:
                assert job.target_id is not None, f"job {job.id} ran after its target was removed"
                self.check_started(job, protected, required)

    def reaper_pass(self) -> None:
        reaper = Worker(self.services.jobs, WorkerSettings(requeue_after=0.0), name="reaper-test")
        reaper.reap()
        reaper.requeue_stale()

    def check_started(self, job: Job, protected: bool, required: int) -> None:
        """The job just started: it had the approvals of exactly the plan it ran."""
        with self.services.sessions() as session:
            if protected and job.kind in TARGET_ACTIONS:
                have = approvals_for(session, job, job.plan_hash)
                assert have >= required, (
                    f"job {job.id} ran on a protected environment with {have} of "
                    f"{required} approvals of its plan"
                )
            lines = session.scalars(
                sa.select(JobLogLine.line).where(JobLogLine.job_id == job.id)
            ).all()
        ran = [
            "{} {} -> {}".format(*RUNNING.search(line).groups())
            for line in lines
            if RUNNING.search(line)
        ]  # type: ignore[union-attr]
        planned = [
            s["label"]
            for s in (job.plan or {}).get("steps", [])
            if not s["label"].startswith("stamp")
        ]
        if job.state == JobState.SUCCEEDED:
            assert ran == planned, (job.id, ran, planned)

    # --- invariants -------------------------------------------------------------------------

    def check_invariants(self) -> None:
        self.every_job_was_requested_exactly_once()
        self.one_pending_job_per_target()
        self.no_server_error()

    def every_job_was_requested_exactly_once(self) -> None:
        with self.services.sessions() as session:
            counts = dict(
                session.execute(
                    sa.select(AuditEvent.job_id, sa.func.count())
                    .where(AuditEvent.action == "job.request")
                    .group_by(AuditEvent.job_id)
                ).all()
            )
            for job_id in session.scalars(sa.select(Job.id)):
                assert counts.get(job_id) == 1, f"job {job_id} has {counts.get(job_id)} requests"

    def one_pending_job_per_target(self) -> None:
        pending = [j.target_id for j in self.jobs() if j.state in PENDING_STATES and j.target_id]
        assert len(pending) == len(set(pending)), pending

    def no_server_error(self) -> None:
        assert all(status < 500 for _, status in self.statuses), self.statuses


def _alembic_config(location: Path, url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", url)
    return config


def _versions(url: str) -> list[str]:
    db = sa.create_engine(url)
    try:
        with db.connect() as connection:
            if not sa.inspect(connection).has_table("alembic_version"):
                return []
            return [
                r[0] for r in connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            ]
    finally:
        db.dispose()


def _order(revision: str) -> int:
    return ["a1", "b2", "c3"].index(revision) if revision in ("a1", "b2", "c3") else -1


REQUEST = st.tuples(
    st.just("request"),
    st.sampled_from(["web", "api", "cli"]),
    st.sampled_from(["olga", "amir"]),
    st.sampled_from(TARGETS),
    st.sampled_from(ACTIONS),
)
APPROVE = st.tuples(
    st.just("approve"),
    st.integers(min_value=0, max_value=20),
    st.sampled_from(list(PEOPLE)),
    st.sampled_from(["current", "current", "stale", "none"]),
    st.sampled_from(["web", "api", "cli"]),
)
WITHDRAW = st.tuples(
    st.just("withdraw"),
    st.integers(min_value=0, max_value=20),
    st.sampled_from(["olga", "amir", "bea"]),
    st.sampled_from(["reject", "cancel-web", "cancel-api"]),
)
CHANGE = st.tuples(
    st.just("change_outside_migdash"),
    st.sampled_from(TARGETS),
    st.sampled_from(["a1", "b2", "c3", "base", "edit-file"]),
)
PROTECTION = st.tuples(st.just("set_protection"), st.booleans(), st.sampled_from([1, 2]))
WORKER = st.tuples(st.just("worker_pass"))
KINDS: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "request": REQUEST,
    "approve": APPROVE,
    "worker_pass": WORKER,
    "set_protection": PROTECTION,
    "withdraw": WITHDRAW,
    "change_outside_migdash": CHANGE,
    "remove_target": st.tuples(st.just("remove_target"), st.sampled_from(TARGETS)),
    "reaper_pass": st.tuples(st.just("reaper_pass")),
}
WEIGHTS = {"request": 4, "approve": 3, "worker_pass": 2, "set_protection": 2}
STEP = st.sampled_from([k for k in KINDS for _ in range(WEIGHTS.get(k, 1))]).flatmap(KINDS.get)
"""One thing a person or a machine does, weighted towards what moves jobs along."""

EXAMPLES = 30
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@SETTINGS
@given(
    start=st.tuples(st.booleans(), st.sampled_from([1, 2])),
    steps=st.lists(STEP, min_size=8, max_size=16),
)
def test_job_lifecycle_never_runs_without_the_approved_plan(
    template: Template,
    tmp_path: Path,
    start: tuple[bool, int],
    steps: list[tuple[Any, ...]],
) -> None:
    """Any interleaving, checked after every step (see the module docstring)."""
    world = JobLifecycle(template, tmp_path)
    try:
        world.set_protection(*start)
        for step in steps:
            getattr(world, step[0])(*step[1:])
            world.check_invariants()
        world.worker_pass()  # in the end a worker always comes along
        world.check_invariants()
    finally:
        world.teardown()


PG_EXAMPLES = 10


@pytest.mark.server
@settings(
    max_examples=PG_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    start=st.tuples(st.booleans(), st.sampled_from([1, 2])),
    steps=st.lists(STEP, min_size=8, max_size=16),
)
def test_job_lifecycle_on_a_postgresql_metadata_db(
    pg_template: Template,
    tmp_path: Path,
    start: tuple[bool, int],
    steps: list[tuple[Any, ...]],
) -> None:
    """The same interleavings with migdash's own DB on PostgreSQL (row locks, READ COMMITTED)."""
    world = JobLifecycle(pg_template, tmp_path)
    try:
        world.set_protection(*start)
        for step in steps:
            getattr(world, step[0])(*step[1:])
            world.check_invariants()
        world.worker_pass()
        world.check_invariants()
    finally:
        world.teardown()


def test_a_job_requested_unprotected_meets_the_gate_when_the_environment_becomes_protected(
    template: Template, tmp_path: Path
) -> None:
    """The bypass the issue names, spelled out: this sequence must be refused by the worker."""
    world = JobLifecycle(template, tmp_path)
    try:
        world.set_protection(False, 1)
        world.request("web", "olga", "prod-1", ("upgrade", "heads"))
        world.set_protection(True, 1)
        world.worker_pass()
        world.check_invariants()
        (job,) = world.jobs()
        assert job.state == JobState.REFUSED, job.state
        assert "protected" in (job.error or "")
    finally:
        world.teardown()


def test_the_world_is_what_the_machine_assumes(template: Template) -> None:
    cached = next((template.root / "instance" / "graph-cache").glob("*.json"))
    data = json.loads(cached.read_text())
    assert [n["revision"] for n in data["data"]["nodes"]] == ["a1", "b2", "c3"]
    assert set(template.tokens) == set(PEOPLE)
