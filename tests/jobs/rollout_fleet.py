"""A fleet of real SQLite targets for the rollout tests, and ways to read it back.

``Fleet`` registers one project (``a1`` creates accounts, ``b2`` creates
orders) and *n* targets at ``a1``; a "broken" target already holds an
``orders`` table, so its ``b2`` fails with Alembic's own error until
:meth:`Fleet.fix` drops it.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from migdash.errors import MigdashError
from migdash.jobs.rollout_driver import advance_rollouts
from migdash.jobs.rollouts import create_rollout
from migdash.scaffold import RevisionSpec, migrate_database, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Job, JobLogLine, JobState, Role, utcnow
from migdash.store.rollout_models import Rollout, RolloutMember

REVISIONS = [
    RevisionSpec("a1", None, "create accounts", table="accounts"),
    RevisionSpec("b2", "a1", "create orders", table="orders"),
]


@dataclass
class Fleet:
    app: Flask
    root: Path
    names: list[str]

    def url(self, name: str) -> str:
        return f"sqlite:///{self.root / 'dbs' / name}.db"

    def versions(self, name: str) -> list[str]:
        with sqlite3.connect(self.root / "dbs" / f"{name}.db") as db:
            return [row[0] for row in db.execute("SELECT version_num FROM alembic_version")]

    def fix(self, name: str) -> None:
        with sqlite3.connect(self.root / "dbs" / f"{name}.db") as db:
            db.execute("DROP TABLE orders")

    def create(self, actor: str = "olga", role: Role = Role.OPERATOR, **options: Any) -> int:
        services = services_of(self.app)
        with services.sessions() as session:
            project = registry.get_project(session, "fleet")
            rollout = create_rollout(
                session,
                services.jobs,
                project,
                options.pop("destination", "heads"),
                environments=options.pop("environments", ["dev"]),
                actor=actor,
                role=role,
                now=utcnow(),
                **options,
            )
            session.commit()
            return rollout.id

    def rollout(self, rollout_id: int) -> Rollout:
        with services_of(self.app).sessions() as session:
            rollout = session.get(Rollout, rollout_id)
            assert rollout is not None
            _ = list(rollout.members)
            session.expunge_all()
            return rollout

    def members(self, rollout_id: int) -> dict[str, RolloutMember]:
        return {m.target_name: m for m in self.rollout(rollout_id).members}

    def jobs(self) -> list[Job]:
        with services_of(self.app).sessions() as session:
            jobs = list(session.scalars(sa.select(Job).order_by(Job.id)))
            session.expunge_all()
            return jobs

    def log(self, job_id: int) -> list[str]:
        """The job's log lines so far (the worker writes a running job's output every 0.25 s)."""
        with services_of(self.app).sessions() as session:
            return list(
                session.scalars(
                    sa.select(JobLogLine.line)
                    .where(JobLogLine.job_id == job_id)
                    .order_by(JobLogLine.id)
                )
            )

    def jobs_per_target(self, states: Sequence[JobState] = (JobState.SUCCEEDED,)) -> Counter[str]:
        return Counter(j.target_name for j in self.jobs() if j.state in states)

    def control(self, verb: Callable[..., Any], rollout_id: int, **kwargs: Any) -> Any:
        with services_of(self.app).sessions() as session:
            kwargs.setdefault("actor", "olga")
            kwargs.setdefault("role", Role.OPERATOR)
            try:
                result = verb(session, rollout_id, now=utcnow(), **kwargs)
            except MigdashError as exc:  # as the boundaries do: keep what the refusal recorded
                if exc.keeps_record:
                    session.commit()
                raise
            session.commit()
            return result

    def drive(self, run_queue: Callable[[], int], passes: int = 100) -> None:
        """Advance and run the queue in this process until nothing moves any more."""
        for _ in range(passes):
            said = advance_rollouts(services_of(self.app).jobs)
            if not run_queue() and not said:
                return
        raise AssertionError("the rollout kept moving")


def build_fleet(
    app: Flask,
    root: Path,
    count: int,
    *,
    broken: Sequence[int] = (),
    revisions: Sequence[RevisionSpec] = REVISIONS,
    environment: str = "dev",
    protected: bool = False,
    tags: Callable[[int], list[str]] | None = None,
) -> Fleet:
    """*count* targets ``t00``.. at a1 in *environment*; those in *broken* hold ``orders``."""
    location = write_project(root / "projects" / "fleet", revisions)
    (root / "dbs").mkdir(exist_ok=True)
    names = [f"t{i:02d}" for i in range(count)]
    fleet = Fleet(app, root, names)
    template = root / "dbs" / "template.db"
    migrate_database(location, f"sqlite:///{template}", "a1")
    with services_of(app).sessions() as session:
        registry.add_project(session, "fleet", str(location))
        registry.add_environment(session, environment, protected=protected)
        for i, name in enumerate(names):
            (root / "dbs" / f"{name}.db").write_bytes(template.read_bytes())
            if i in broken:
                with sqlite3.connect(root / "dbs" / f"{name}.db") as db:
                    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
            registry.add_target(
                session,
                name,
                project="fleet",
                environment=environment,
                url=fleet.url(name),
                tags=tags(i) if tags else (),
            )
        session.commit()
    return fleet
