"""Plan equals run: what a person approves is what Alembic executes, or the plan is refused.

For every current revision of a project and every destination the target
page offers from there (:func:`migdash.engine.state.offered_destinations`),
the plan is made by :func:`migdash.engine.planning.plan_steps` (what the
plan child runs) and the action is then run with that plan as the expected
one, through :func:`migdash.engine.actions.run_action` (what the job child
runs).  Either Alembic refuses the plan, with its own reason and a way out,
or the run's ``Running ...`` lines are exactly the planned steps; a run that
refuses itself (the plan changed under it) fails this test.

Random DAGs (merges, several bases, depends_on, branch labels) are run in
this process through those same functions; the demo's ``shop`` project is
run as real jobs: requested through ``jobs.requests`` (a plan child) and
executed by the Worker (a job child), reading the executed steps from the
job's log.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from migdash.demo import SHOP
from migdash.engine.actions import ActionSpec, run_action
from migdash.engine.graph import build_graph
from migdash.engine.planning import PlannedStep, plan_steps
from migdash.engine.project import open_project
from migdash.engine.state import offered_destinations
from migdash.errors import PlanRefused
from migdash.jobs.records import job_log
from migdash.jobs.requests import request_target_action
from migdash.scaffold import RevisionSpec, migrate_database, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Job, JobState, Role, utcnow
from tests.engine.test_graph_vs_alembic import random_dag

RUNNING = re.compile(r"Running ((?:upgrade|downgrade|stamp_revision) .* -> .*)$")
KINDS = ("upgrade", "downgrade", "stamp")


def executed(lines: list[str]) -> list[str]:
    """What follows ``Running`` in Alembic's step lines: ``upgrade a -> b, message``."""
    return [m.group(1) for line in lines if (m := RUNNING.search(line))]


def same_steps(ran: list[str], planned: list[str]) -> bool:
    """Each executed step is the planned one: its label, then the message (if any).

    A label may hold commas itself (``downgrade m -> a, b`` from a merge), so
    the log line is matched against the label, not split on commas.
    """
    return len(ran) == len(planned) and all(
        line == label or line.startswith(label + ", ")
        for line, label in zip(ran, planned, strict=False)
    )


def labels(steps: tuple[PlannedStep, ...]) -> list[str]:
    return [step.label for step in steps]


def alembic_cannot_run_it(traceback: str | None) -> bool:
    """A KeyError raised inside Alembic's HeadMaintainer: a limit of Alembic, not of the plan."""
    return bool(traceback) and "KeyError" in traceback and "update_to_step" in traceback


def stamped_database(location: Path, path: Path, rows: tuple[str, ...]) -> str:
    """A SQLite database whose version table holds *rows* (stamped: these revisions run no DDL)."""
    url = f"sqlite:///{path}"
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", url)
    if rows:
        command.stamp(config, list(rows))
    else:
        sa.create_engine(url).dispose()
    return url


def rows_after_upgrade(location: Path, revision: str, scratch: Path) -> tuple[str, ...]:
    """The version table after ``alembic upgrade <revision>`` from base: a real state."""
    url = f"sqlite:///{scratch / f'state-{revision}.db'}"
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, revision)
    db = sa.create_engine(url)
    with db.connect() as connection:
        found = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
        rows = tuple(sorted(row[0] for row in found))
    db.dispose()
    return rows


def check_every_offered_destination(location: Path, scratch: Path) -> dict[str, int]:
    """Plan and run every offered destination from every state; count outcomes."""
    script = open_project(location)
    graph = build_graph(script, str(location))
    states: dict[str, tuple[str, ...]] = {"base": ()}
    for revision in graph.nodes:
        try:
            states[revision] = rows_after_upgrade(location, revision, scratch)
        except Exception:  # noqa: BLE001 - Alembic itself cannot get there: no state to plan from
            continue
    outcomes = {"ran": 0, "refused by Alembic": 0}
    reasons: list[PlanRefused] = []
    runs = 0
    for state, rows in states.items():
        offered = offered_destinations(graph, graph.effective_current(rows))
        for kind, destinations in zip(
            KINDS, (offered.upgrade, offered.downgrade, offered.stamp[:2]), strict=True
        ):
            for destination in destinations:
                try:
                    plan = plan_steps(script, kind, destination, rows)
                except PlanRefused as refused:
                    outcomes["refused by Alembic"] += 1
                    reasons.append(refused)
                    continue
                runs += 1
                url = stamped_database(location, scratch / f"run-{runs}.db", rows)
                lines: list[str] = []
                result = run_action(
                    ActionSpec(
                        kind=kind,
                        script_location=str(location),
                        url=url,
                        revision=destination,
                        expected_steps=plan,
                    ),
                    lines.append,
                )
                where = f"{kind} {destination} from {state} {rows}"
                assert not result.refused, (where, result.error)
                ran = executed(lines)
                if not result.ok and alembic_cannot_run_it(result.traceback):
                    # Alembic's own head bookkeeping breaks on this graph (depends_on
                    # across branches); what it ran before failing is the plan's start
                    assert same_steps(ran, labels(plan)[: len(ran)]), (where, ran, labels(plan))
                    outcomes["alembic failed"] = outcomes.get("alembic failed", 0) + 1
                    continue
                assert result.ok, (where, result.error, labels(plan))
                assert same_steps(ran, labels(plan)), (where, ran, labels(plan))
                outcomes["ran"] += 1
    for refused in reasons:  # Alembic's reason, and what to do instead
        assert "Alembic refuses" in refused.message, refused
        assert refused.hint, refused
    return outcomes


def no_ddl(specs: list[RevisionSpec]) -> list[RevisionSpec]:
    """The same graph with revisions that run no DDL, so a state can be stamped cheaply."""
    return [
        RevisionSpec(s.revision, s.down_revision, s.message, s.branch_labels, s.depends_on)
        for s in specs
    ]


SEEDS = range(1000, 1060)


def small_dag(seed: int) -> list[RevisionSpec]:
    """A random DAG of 3-7 revisions (the generator of the graph-vs-Alembic tests)."""
    rng = random.Random(seed)
    while True:
        specs = random_dag(rng)
        if 3 <= len(specs) <= 7:
            return no_ddl(specs)


def test_the_random_dags_hold_the_hard_cases() -> None:
    dags = [small_dag(seed) for seed in SEEDS]
    assert len(dags) >= 50
    assert sum(any(isinstance(s.down_revision, tuple) for s in d) for d in dags) >= 15
    assert sum(sum(s.down_revision is None for s in d) >= 2 for d in dags) >= 15
    assert sum(any(s.depends_on for s in d) for d in dags) >= 10


@pytest.mark.parametrize("seed", SEEDS)
def test_random_dag_plans_equal_runs(seed: int, tmp_path: Path) -> None:
    location = tmp_path / "project"
    write_project(location, small_dag(seed))
    outcomes = check_every_offered_destination(location, tmp_path)
    assert outcomes["ran"] >= 3, outcomes


def test_demo_shop_plans_equal_runs_in_process(tmp_path: Path) -> None:
    location = tmp_path / "shop"
    write_project(location, no_ddl(SHOP))
    outcomes = check_every_offered_destination(location, tmp_path)
    assert outcomes["ran"] >= 60, outcomes


def test_demo_shop_jobs_run_their_plans(
    app: Any, tmp_path: Path, run_queue: Callable[[], int]
) -> None:
    """Real jobs on the demo's shop project: a plan child at request, a job child to run it.

    From every state, every destination offered; each job either succeeds
    with its log's steps equal to its plan, or was refused at plan time.
    """
    location = tmp_path / "shop"
    write_project(location, SHOP)
    services = services_of(app)
    graph = build_graph(open_project(location), str(location))
    with services.sessions() as session:
        registry.add_project(session, "shop", str(location))
        registry.add_environment(session, "dev")
        session.commit()
    checked = refused = 0
    states = ["base", *graph.nodes]
    for number, state in enumerate(states):
        url = f"sqlite:///{tmp_path / f'target-{number}.db'}"
        migrate_database(location, url, None if state == "base" else state)
        with services.sessions() as session:
            registry.add_target(session, f"t{number}", project="shop", environment="dev", url=url)
            session.commit()
        rows = () if state == "base" else rows_after_upgrade(location, state, tmp_path)
        offered = offered_destinations(graph, graph.effective_current(rows))
        for kind, destination in [("upgrade", d) for d in offered.upgrade[:3]] + [
            ("downgrade", d) for d in offered.downgrade[:2]
        ]:
            migrate_to_state(location, url, rows)
            with services.sessions() as session:
                target = registry.get_target(session, f"t{number}")
                try:
                    job = request_target_action(
                        session,
                        services.jobs,
                        target,
                        kind,
                        destination,
                        actor="tester",
                        role=Role.ADMIN,
                        now=utcnow(),
                    )
                except PlanRefused:
                    refused += 1
                    continue
                session.commit()
                assert job is not None
                job_id = job.id
            run_queue()
            with services.sessions() as session:
                done = session.get(Job, job_id)
                assert done is not None
                lines = [line.line for line in job_log(session, job_id)]
                where = f"{kind} {destination} from {state}"
                assert done.state == JobState.SUCCEEDED, (where, done.state, done.error)
                planned = [s["label"] for s in (done.plan or {})["steps"]]
                assert same_steps(executed(lines), planned), (where, executed(lines), planned)
                checked += 1
    assert checked >= 25, (checked, refused)


def migrate_to_state(location: Path, url: str, rows: tuple[str, ...]) -> None:
    """Bring a target back to *rows* with Alembic itself, between two jobs."""
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", url)
    command.downgrade(config, "base")
    for row in rows:
        command.upgrade(config, row)
