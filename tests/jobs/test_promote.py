"""Promotion as real jobs: the plan is what ``alembic upgrade <staging's revisions>`` runs on prod.

Staging and prod sit on divergent branches of a branched and merged
history (and, in other cases, on several bases with ``depends_on``, or at
several heads).  For each case:

* what each environment lacks of the other, listed by
  :func:`migdash.jobs.compare.compare_environments`, is exactly the list of
  revisions Alembic runs when a copy of the other side is upgraded to this
  side's version rows, in the same order;
* each promotion job's planned steps are exactly the ``Running upgrade``
  lines of ``alembic upgrade <staging's revisions>`` on a copy of its prod
  database, and running the job (the Worker, a job child) runs exactly them.

Then the rules around it: all or nothing, the promotion-order rule, roles.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from flask import Flask

from migdash.errors import Conflict, Forbidden, PromotionOutOfOrder
from migdash.jobs.compare import compare_environments
from migdash.jobs.promote import plan_promotion, request_promotion
from migdash.jobs.requests import request_target_action
from migdash.scaffold import RevisionSpec, migrate_database, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import AuditEvent, Job, JobLogLine, JobState, Role, utcnow
from tests.jobs.test_plan_equals_run import executed, same_steps

BRANCHED = [
    RevisionSpec("a1", None, "create accounts", table="accounts"),
    RevisionSpec("b2", "a1", "create orders", table="orders"),
    RevisionSpec("c3", "b2", "left one", table="left_one"),
    RevisionSpec("c4", "c3", "left two", table="left_two"),
    RevisionSpec("d3", "b2", "right one", table="right_one"),
    RevisionSpec("d4", "d3", "right two", table="right_two"),
    RevisionSpec("e5", ("c4", "d4"), "merge left and right"),
    RevisionSpec("f6", "e5", "after the merge", table="after_merge"),
]
DEPENDS = [
    RevisionSpec("a1", None, "create accounts", table="accounts"),
    RevisionSpec("b2", "a1", "create orders", table="orders"),
    RevisionSpec("x1", None, "separate base", table="audit", branch_labels=("audit",)),
    RevisionSpec("x2", "x1", "audit needs orders", table="audit2", depends_on=("b2",)),
]
TWO_HEADS = [
    RevisionSpec("a1", None, "create accounts", table="accounts"),
    RevisionSpec("b2", "a1", "create orders", table="orders"),
    RevisionSpec("c3", "b2", "left branch", table="lefty"),
    RevisionSpec("d4", "b2", "right branch", table="righty"),
]
CASES = {
    "divergent branches before the merge": (BRANCHED, ("c4",), ("d4",)),
    "staging at the merge, prod on one branch": (BRANCHED, ("e5",), ("d3",)),
    "staging past the merge, prod at the branch point": (BRANCHED, ("f6",), ("b2",)),
    "several bases with depends_on": (DEPENDS, ("x2",), ("a1",)),
    "staging at both heads, prod at the branch point": (TWO_HEADS, ("c3", "d4"), ("b2",)),
    "staging at both heads, prod on one branch": (TWO_HEADS, ("c3", "d4"), ("c3",)),
}
PROD = ("prod-eu", "prod-us")


@dataclass(frozen=True)
class Fleet:
    location: Path
    urls: dict[str, str]


@pytest.fixture
def fleet(app: Flask, tmp_path: Path) -> Callable[..., Fleet]:
    """A project with staging-1 at *staging* and two prod targets at *prod* (SQLite, real DDL).

    Registered in the test app's metadata DB, or in *on*'s.
    """

    def build(
        specs: list[RevisionSpec],
        staging: tuple[str, ...],
        prod: tuple[str, ...],
        *,
        protected: bool = False,
        extra: dict[str, tuple[str, tuple[str, ...]]] | None = None,
        on: Flask | None = None,
    ) -> Fleet:
        location = write_project(tmp_path / "shop", specs)
        places = {"staging-1": ("staging", staging), **{n: ("prod", prod) for n in PROD}}
        places.update(extra or {})
        urls = {}
        with services_of(on or app).sessions() as session:
            registry.add_project(session, "shop", str(location))
            registry.add_environment(session, "staging")
            registry.add_environment(session, "prod", protected=protected)
            for name, (env, revisions) in places.items():
                urls[name] = f"sqlite:///{tmp_path / name}.db"
                migrate_database(location, urls[name], None)
                for revision in revisions:
                    migrate_database(location, urls[name], revision)
                registry.add_target(session, name, project="shop", environment=env, url=urls[name])
            session.commit()
        return Fleet(location, urls)

    return build


def version_rows(url: str) -> tuple[str, ...]:
    db_engine = sa.create_engine(url)
    with db_engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    db_engine.dispose()
    return tuple(sorted(row[0] for row in rows))


@contextmanager
def migration_log() -> Iterator[list[str]]:
    """Alembic's ``Running upgrade ...`` log lines while the block runs."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("alembic.runtime.migration")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def alembic_upgrade_on_a_copy(
    location: Path, url: str, rows: tuple[str, ...], copy: Path
) -> list[str]:
    """``alembic upgrade <rows>`` on a copy of the SQLite database at *url*: the steps it ran.

    One revision goes as Alembic's command line takes it; several (the
    command line takes one) as the tuple its Python API accepts.
    """
    shutil.copy(sa.engine.make_url(url).database or "", copy)
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{copy}")
    destination: Any = rows[0] if len(rows) == 1 else rows
    with migration_log() as lines:
        command.upgrade(config, destination)
    return executed(lines)


def applied(steps: list[str]) -> list[str]:
    """``upgrade b2 -> c3, left one`` -> ``c3``."""
    return [step.split(" -> ")[1].split(",")[0].strip() for step in steps]


def recorded(app: Flask) -> dict[str, int]:
    services = services_of(app)
    with services.sessions() as session:
        count = {
            "jobs": Job,
            "log lines": JobLogLine,
            "audit rows": AuditEvent,
        }
        found = {
            key: session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
            for key, model in count.items()
        }
    found["queued"] = services.queue.pending_count()
    return found


# --- the acceptance case --------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_lacks_and_promotion_plans_are_what_alembic_runs(
    app: Flask,
    fleet: Callable[..., Fleet],
    run_queue: Callable[[], int],
    tmp_path: Path,
    case: str,
) -> None:
    specs, staging, prod = CASES[case]
    built = fleet(specs, staging, prod)
    services = services_of(app)
    staging_rows = version_rows(built.urls["staging-1"])
    prod_rows = version_rows(built.urls["prod-eu"])
    prod_runs = alembic_upgrade_on_a_copy(
        built.location, built.urls["prod-eu"], staging_rows, tmp_path / "prod-copy.db"
    )
    staging_runs = alembic_upgrade_on_a_copy(
        built.location, built.urls["staging-1"], prod_rows, tmp_path / "staging-copy.db"
    )
    assert prod_runs, "the case must give prod something to promote"

    with services.sessions() as session:
        project = registry.get_project(session, "shop")
        envs = [registry.get_environment(session, name) for name in ("staging", "prod")]
        comparison = compare_environments(session, services.jobs, project, *envs, max_age=None)
        jobs = request_promotion(
            session, services.jobs, project, *envs, actor="tester", role=Role.OPERATOR, now=utcnow()
        )
        session.commit()
        planned = {job.target_name: [s["label"] for s in (job.plan or {})["steps"]] for job in jobs}
        job_ids = [job.id for job in jobs]

    assert [r.revision for r in comparison.b_lacks] == applied(prod_runs), case
    assert [r.revision for r in comparison.a_lacks] == applied(staging_runs), case
    assert sorted(planned) == list(PROD)
    for name in PROD:
        assert same_steps(prod_runs, planned[name]), (case, name, prod_runs, planned[name])

    assert run_queue() == len(job_ids)
    with services.sessions() as session:
        for job_id in job_ids:
            job = session.get(Job, job_id)
            assert job is not None
            lines = [
                line.line
                for line in session.scalars(
                    sa.select(JobLogLine).where(JobLogLine.job_id == job_id).order_by(JobLogLine.id)
                )
            ]
            assert job.state == JobState.SUCCEEDED, (case, job.error)
            assert same_steps(executed(lines), planned[str(job.target_name)]), (case, lines)
        project = registry.get_project(session, "shop")
        envs = [registry.get_environment(session, name) for name in ("staging", "prod")]
        after = compare_environments(session, services.jobs, project, *envs, max_age=None)
    assert after.b_lacks == (), "prod holds everything staging holds after the promotion"
    assert [r.revision for r in after.a_lacks] == [r.revision for r in comparison.a_lacks]


# --- the rules around it ----------------------------------------------------------------------


def promote(app: Flask, source: str, destination: str, role: Role = Role.OPERATOR) -> list[int]:
    services = services_of(app)
    with services.sessions() as session:
        jobs = request_promotion(
            session,
            services.jobs,
            registry.get_project(session, "shop"),
            registry.get_environment(session, source),
            registry.get_environment(session, destination),
            actor="tester",
            role=role,
            now=utcnow(),
        )
        session.commit()
        return [job.id for job in jobs]


def test_one_unreachable_target_means_no_job_for_any(
    app: Flask, fleet: Callable[..., Fleet]
) -> None:
    fleet(BRANCHED, ("c4",), ("d4",))
    with services_of(app).sessions() as session:
        registry.add_target(
            session,
            "prod-zz",
            project="shop",
            environment="prod",
            url="postgresql+psycopg://nobody:secret@127.0.0.1:1/none",
        )
        session.commit()
    before = recorded(app)

    with pytest.raises(Conflict) as refused:
        promote(app, "staging", "prod")

    assert "nothing was requested" in refused.value.message
    assert "prod-zz" in refused.value.message
    assert "secret" not in refused.value.message
    assert recorded(app) == before


@pytest.mark.server
def test_a_target_refused_half_way_leaves_nothing_on_a_postgresql_metadata_db(
    make_app: Callable[..., Flask], postgres_url: str, fleet: Callable[..., Fleet]
) -> None:
    """prod-eu's job is flushed first; prod-us holds a pending job: PostgreSQL keeps nothing."""
    app = make_app(MIGDASH_DATABASE_URL=postgres_url)
    services = services_of(app)
    services.upgrade_schema()
    fleet(BRANCHED, ("c4",), ("d4",), on=app)
    with services.sessions() as session:
        held = request_target_action(
            session,
            services.jobs,
            registry.get_target(session, "prod-us"),
            "upgrade",
            "heads",
            actor="someone",
            role=Role.OPERATOR,
            now=utcnow(),
        )
        session.commit()
        assert held is not None
        held_id = held.id
    before = recorded(app)

    with pytest.raises(Conflict) as refused:
        promote(app, "staging", "prod")

    assert f"prod-us: job {held_id} is already pending" in refused.value.message
    assert recorded(app) == before


def test_the_promotion_rule_refuses_what_the_previous_environment_lacks(
    app: Flask, fleet: Callable[..., Fleet], tmp_path: Path
) -> None:
    """dev -> staging -> prod; dev at f6 is promoted straight to prod past staging (at c4)."""
    built = fleet(BRANCHED, ("c4",), ("d4",))
    url = f"sqlite:///{tmp_path / 'dev-1.db'}"
    migrate_database(built.location, url, "f6")
    with services_of(app).sessions() as session:
        registry.add_environment(session, "dev", position=-1)
        registry.add_target(session, "dev-1", project="shop", environment="dev", url=url)
        prod = registry.get_environment(session, "prod")
        registry.edit_environment(session, prod, promotion_rule="refuse")
        session.commit()
    before = recorded(app)

    with pytest.raises(PromotionOutOfOrder) as refused:
        promote(app, "dev", "prod")

    assert refused.value.message == (
        "prod refuses promotions out of order: staging does not hold e5, f6 yet"
    )
    assert recorded(app) == before
    with services_of(app).sessions() as session:
        prod = registry.get_environment(session, "prod")
        registry.edit_environment(session, prod, promotion_rule="warn")
        session.commit()
    assert len(promote(app, "dev", "prod")) == 2


def test_the_environment_just_before_is_the_nearest_earlier_one_holding_the_project(
    app: Flask, fleet: Callable[..., Fleet]
) -> None:
    fleet(BRANCHED, ("c4",), ("d4",))
    with services_of(app).sessions() as session:
        registry.add_environment(session, "empty-qa", position=1)  # between staging (0) and prod
        prod = registry.get_environment(session, "prod")
        registry.edit_environment(session, prod, position=5, promotion_rule="refuse")
        session.commit()
        project = registry.get_project(session, "shop")
        staging = registry.get_environment(session, "staging")
        promotion = plan_promotion(
            session, services_of(app).jobs, project, staging, prod, plans=False
        )

    assert promotion.order.previous == "staging"
    assert promotion.order.out_of_order == ()
    assert not promotion.order.refused


def test_a_viewer_may_not_promote_and_nothing_is_recorded(
    app: Flask, fleet: Callable[..., Fleet]
) -> None:
    fleet(BRANCHED, ("c4",), ("d4",))
    before = recorded(app)

    with pytest.raises(Forbidden):
        promote(app, "staging", "prod", role=Role.VIEWER)

    assert recorded(app) == before


def test_on_a_protected_environment_every_job_is_held_and_says_it_is_a_promotion(
    app: Flask, fleet: Callable[..., Fleet]
) -> None:
    fleet(BRANCHED, ("c4",), ("d4",), protected=True)

    job_ids = promote(app, "staging", "prod")

    with services_of(app).sessions() as session:
        jobs = [session.get(Job, job_id) for job_id in job_ids]
        assert [(j.target_name, j.state) for j in jobs if j] == [
            ("prod-eu", JobState.AWAITING_APPROVAL),
            ("prod-us", JobState.AWAITING_APPROVAL),
        ]
        for job_id in job_ids:
            lines = session.scalars(
                sa.select(JobLogLine.line).where(JobLogLine.job_id == job_id)
            ).all()
            assert "part of a promotion of shop from staging to prod (2 job(s))" in lines
    assert services_of(app).queue.pending_count() == 0
