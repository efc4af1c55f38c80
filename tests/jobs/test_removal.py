"""Removal is deliberate: what goes is read first, pending jobs are cancelled, running ones refuse.

Jobs are requested through :func:`request_target_action` on real SQLite
targets, approvals through :func:`approvals.approve`, and a running job is
made as the worker makes one (its lease taken, then claimed by
compare-and-set), so what :mod:`migdash.jobs.removal` meets is what
production leaves in the metadata database.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from migdash import create_app
from migdash.errors import Conflict, Forbidden, InvalidInput, NotFound
from migdash.jobs import approvals, removal
from migdash.jobs.locks import acquire_lease
from migdash.jobs.records import job_log, move_job
from migdash.jobs.requests import request_target_action
from migdash.scaffold import RevisionSpec, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import AuditEvent, Job, JobState, Project, Role, Target, utcnow
from migdash.store.users import create_user

REQUESTER, APPROVER, ADMIN = "olga", "amir", "root"


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with services_of(app).sessions() as session:
        yield session


@pytest.fixture
def fresh(app: Flask) -> Iterator[Callable[[], Session]]:
    """A new session per call: what other requests and the worker see after a commit."""
    opened: list[Session] = []

    def open_session() -> Session:
        opened.append(services_of(app).sessions())
        return opened[-1]

    yield open_session
    for other in opened:
        other.close()


@dataclass(frozen=True)
class World:
    held: int
    """Upgrade of shop-prod (protected, two approvals needed), approved once by amir."""
    queued: int
    """Upgrade of shop-dev, queued."""
    bystander: int
    """Upgrade of other-dev, another project's target: never touched."""


@pytest.fixture
def world(
    app: Flask, session: Session, make_project: Callable[..., Any], make_target: Callable[..., str]
) -> World:
    return build_world(app, session, make_project, make_target)


def build_world(
    app: Flask, session: Session, make_project: Callable[..., Any], make_target: Callable[..., str]
) -> World:
    """Project ``shop`` (shop-dev, shop-prod) and ``other`` (other-dev), each with a pending job."""
    shop, other = make_project("linear", name="shop"), make_project("linear", name="other")
    registry.add_environment(session, "dev")
    registry.add_environment(session, "prod", protected=True, required_approvals=2)
    registry.add_project(session, "shop", str(shop.location))
    registry.add_project(session, "other", str(other.location))
    for name, project, env in [
        ("shop-dev", shop, "dev"),
        ("shop-prod", shop, "prod"),
        ("other-dev", other, "dev"),
    ]:
        url = make_target(project, at="a1", name=name)
        registry.add_target(session, name, project=project.name, environment=env, url=url)
    create_user(session, REQUESTER, "olga-password", Role.OPERATOR)
    create_user(session, APPROVER, "amir-password", Role.APPROVER)
    session.commit()
    ids = {name: request(app, session, name) for name in ("shop-prod", "shop-dev", "other-dev")}
    approvals.approve(
        session,
        services_of(app).jobs,
        ids["shop-prod"],
        actor=APPROVER,
        role=Role.APPROVER,
        comment="looks fine",
        seen_plan=None,
        now=utcnow(),
    )
    session.commit()
    return World(held=ids["shop-prod"], queued=ids["shop-dev"], bystander=ids["other-dev"])


def request(app: Flask, session: Session, target: str) -> int:
    job = request_target_action(
        session,
        services_of(app).jobs,
        registry.get_target(session, target),
        "upgrade",
        "heads",
        actor=REQUESTER,
        role=Role.OPERATOR,
        now=utcnow(),
    )
    assert job is not None
    session.commit()
    return job.id


def run_as_worker(session: Session, job_id: int) -> None:
    """What ``Worker.execute`` does before the child starts: take the lease, claim the job."""
    job = session.get(Job, job_id)
    assert job is not None
    assert job.target_id is not None
    now = utcnow()
    holder = acquire_lease(session, job.target_id, job_id, "test-worker", now, timedelta(minutes=5))
    assert holder is None
    claimed = move_job(
        session,
        job_id,
        JobState.QUEUED,
        JobState.RUNNING,
        started_at=now,
        heartbeat_at=now,
        worker="test-worker",
    )
    assert claimed
    session.commit()


def state_of(session: Session, job_id: int) -> str:
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None
    return job.state


def cancel_rows(session: Session) -> list[AuditEvent]:
    return list(
        session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "job.cancel").order_by(AuditEvent.id)
        )
    )


def test_the_summary_lists_targets_pending_jobs_and_approvals(
    world: World, session: Session
) -> None:
    summary = removal.removal_summary(session, "project", "shop")

    assert [(t.name, t.environment) for t in summary.targets] == [
        ("shop-dev", "dev"),
        ("shop-prod", "prod"),
    ]
    assert {(j.id, j.state) for j in summary.pending} == {
        (world.held, JobState.AWAITING_APPROVAL),
        (world.queued, JobState.QUEUED),
    }
    assert summary.running == ()
    assert summary.refusal is None
    ((job, given),) = summary.approvals
    assert (job.id, given.decided_by, given.decision) == (world.held, APPROVER, "approved")
    text = " ".join(summary.consequences())
    assert "shop-dev, shop-prod" in text
    assert f"Job {world.held} (upgrade shop-prod to heads, awaiting_approval) is cancelled" in text
    assert "its 1 approval(s) no longer count" in text
    target_summary = removal.removal_summary(session, "target", "shop-dev")
    assert [j.id for j in target_summary.pending] == [world.queued]


def test_removing_a_project_cancels_its_pending_prod_approval(
    world: World, session: Session, fresh: Callable[[], Session]
) -> None:
    assert [j.id for j in approvals.awaiting(session)] == [world.held]

    done = removal.remove(session, "project", "shop", actor=ADMIN, role=Role.ADMIN, now=utcnow())
    session.commit()

    after = fresh()
    assert approvals.awaiting(after) == []
    assert state_of(after, world.held) == JobState.CANCELLED
    assert state_of(after, world.queued) == JobState.CANCELLED
    assert state_of(after, world.bystander) == JobState.QUEUED
    reason = f"project shop removed by {ADMIN}"
    rows = cancel_rows(after)
    assert sorted(r.job_id for r in rows if r.job_id is not None) == sorted(
        [world.held, world.queued]
    )
    assert {(r.actor, r.project, r.detail["reason"]) for r in rows} == {(ADMIN, "shop", reason)}
    assert [line.line for line in job_log(after, world.held)][
        -1
    ] == f"cancelled by {ADMIN}: {reason}"
    held = after.get(Job, world.held)
    assert held is not None
    assert (held.target_id, held.project_id, held.target_name) == (None, None, "shop-prod")
    assert after.scalar(sa.select(Project).where(Project.name == "shop")) is None
    assert [t.name for t in after.scalars(sa.select(Target))] == ["other-dev"]
    assert {j.id for j in done.pending} == {world.held, world.queued}
    assert (
        after.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "registry.project.remove")
        )
        == 1
    )


def test_removing_a_target_cancels_only_its_own_jobs(
    world: World, session: Session, fresh: Callable[[], Session]
) -> None:
    removal.remove(session, "target", "shop-prod", actor=ADMIN, role=Role.ADMIN, now=utcnow())
    session.commit()

    after = fresh()
    assert state_of(after, world.held) == JobState.CANCELLED
    assert state_of(after, world.queued) == JobState.QUEUED
    assert [r.detail["reason"] for r in cancel_rows(after)] == [
        f"target shop-prod removed by {ADMIN}"
    ]
    assert sorted(t.name for t in after.scalars(sa.select(Target))) == ["other-dev", "shop-dev"]


def test_a_running_job_refuses_the_removal_and_nothing_changes(
    world: World, session: Session, fresh: Callable[[], Session]
) -> None:
    run_as_worker(session, world.queued)

    summary = removal.removal_summary(session, "project", "shop")
    assert [j.id for j in summary.running] == [world.queued]
    assert summary.refusal is not None
    for kind, name in [("project", "shop"), ("target", "shop-dev")]:
        with pytest.raises(Conflict, match=rf"job {world.queued} \(upgrade shop-dev to heads\)"):
            removal.remove(session, kind, name, actor=ADMIN, role=Role.ADMIN, now=utcnow())
        session.rollback()

    after = fresh()
    assert state_of(after, world.held) == JobState.AWAITING_APPROVAL
    assert state_of(after, world.queued) == JobState.RUNNING
    assert cancel_rows(after) == []
    assert sorted(t.name for t in after.scalars(sa.select(Target))) == [
        "other-dev",
        "shop-dev",
        "shop-prod",
    ]
    # the other target of the project is not held by the running job
    removal.remove(after, "target", "shop-prod", actor=ADMIN, role=Role.ADMIN, now=utcnow())
    after.commit()
    assert state_of(fresh(), world.held) == JobState.CANCELLED


def test_a_job_that_starts_running_while_removing_refuses_it(
    world: World,
    session: Session,
    fresh: Callable[[], Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker claims the queued job after the summary was read: the compare-and-set sees it."""
    read_summary = removal.removal_summary

    def summary_then_claim(*args: Any) -> removal.RemovalSummary:
        summary = read_summary(*args)
        run_as_worker(fresh(), world.queued)
        return summary

    monkeypatch.setattr(removal, "removal_summary", summary_then_claim)

    with pytest.raises(Conflict, match=f"job {world.queued} .* started running"):
        removal.remove(session, "project", "shop", actor=ADMIN, role=Role.ADMIN, now=utcnow())
    session.rollback()

    after = fresh()
    assert state_of(after, world.held) == JobState.AWAITING_APPROVAL
    assert cancel_rows(after) == []
    assert after.scalar(sa.select(Project).where(Project.name == "shop")) is not None


def test_a_job_rejected_meanwhile_is_left_as_it_ended(
    world: World,
    session: Session,
    fresh: Callable[[], Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Someone rejects the held job after the summary was read: the removal goes on without it."""
    read_summary = removal.removal_summary

    def summary_then_reject(*args: Any) -> removal.RemovalSummary:
        summary = read_summary(*args)
        other = fresh()
        approvals.reject(
            other, world.held, actor=APPROVER, role=Role.APPROVER, comment="no", now=utcnow()
        )
        other.commit()
        return summary

    monkeypatch.setattr(removal, "removal_summary", summary_then_reject)

    done = removal.remove(session, "project", "shop", actor=ADMIN, role=Role.ADMIN, now=utcnow())
    session.commit()

    assert [j.id for j in done.pending] == [world.queued]
    after = fresh()
    assert state_of(after, world.held) == JobState.REJECTED
    assert state_of(after, world.queued) == JobState.CANCELLED
    assert [r.job_id for r in cancel_rows(after)] == [world.queued]


def test_a_changed_summary_refuses_a_stale_confirmation(
    app: Flask, world: World, session: Session, fresh: Callable[[], Session]
) -> None:
    shown = removal.removal_summary(session, "target", "other-dev").fingerprint
    move_job(session, world.bystander, JobState.QUEUED, JobState.CANCELLED, finished_at=utcnow())
    session.commit()
    newer = request(app, session, "other-dev")

    with pytest.raises(Conflict, match="changed since it was shown"):
        removal.remove(
            session, "target", "other-dev", actor=ADMIN, role=Role.ADMIN, now=utcnow(), seen=shown
        )
    session.rollback()
    assert state_of(fresh(), newer) == JobState.QUEUED


def test_only_an_admin_removes(world: World, session: Session) -> None:
    for role in (Role.VIEWER, Role.OPERATOR, Role.APPROVER):
        with pytest.raises(Forbidden, match="this needs the admin role"):
            removal.remove(session, "project", "shop", actor="x", role=role, now=utcnow())
    assert state_of(session, world.held) == JobState.AWAITING_APPROVAL
    assert cancel_rows(session) == []


def test_an_environment_holding_targets_is_refused_and_an_empty_one_goes(
    world: World, session: Session
) -> None:
    summary = removal.removal_summary(session, "environment", "prod")
    assert summary.refusal == "environment 'prod' still holds 1 target(s)"
    assert summary.consequences() == (f"Nothing can be removed now: {summary.refusal}",)
    with pytest.raises(Conflict, match="still holds 1 target"):
        removal.remove(session, "environment", "prod", actor=ADMIN, role=Role.ADMIN, now=utcnow())
    session.rollback()
    assert state_of(session, world.held) == JobState.AWAITING_APPROVAL

    registry.add_environment(session, "scratch")
    removal.remove(session, "environment", "scratch", actor=ADMIN, role=Role.ADMIN, now=utcnow())
    session.commit()
    with pytest.raises(NotFound):
        registry.get_environment(session, "scratch")


def test_unknown_kinds_and_names_are_refused(session: Session) -> None:
    with pytest.raises(InvalidInput, match="cannot remove 'user'"):
        removal.removal_summary(session, "user", "x")
    with pytest.raises(NotFound):
        removal.removal_summary(session, "project", "nope")


# --- generated: any mix of jobs, any removal ---------------------------------------------

PENDING_OR_NOT = st.sampled_from([None, "awaiting_approval", "queued", "scheduled", "running"])
FINISHED = st.lists(
    st.sampled_from(["succeeded", "failed", "cancelled", "rejected", "refused", "interrupted"]),
    max_size=2,
)
STARTED = {"running", "succeeded", "failed", "interrupted"}
COUNTER = itertools.count()
"""Fresh names per generated example (the app and its database live for the whole test)."""


@st.composite
def project_jobs(draw: st.DrawFn) -> dict[str, Any]:
    """Per target: finished jobs and at most one pending one; plus project-wide revision jobs."""
    targets = draw(st.integers(min_value=1, max_value=3))
    return {
        "targets": [
            {
                "env": draw(st.sampled_from(["dev", "prod"])),
                "finished": draw(FINISHED),
                "pending": draw(PENDING_OR_NOT),
            }
            for _ in range(targets)
        ],
        "revisions": draw(st.lists(st.sampled_from(sorted(JobState)), max_size=3)),
        "remove": draw(st.sampled_from(["project", *[f"target:{i}" for i in range(targets)]])),
    }


def add_job(session: Session, project: Project, target: Target | None, state: str) -> int:
    now = utcnow()
    job = Job(
        kind="upgrade" if target is not None else "revision",
        project_id=project.id,
        target_id=target.id if target is not None else None,
        project_name=project.name,
        target_name=target.name if target is not None else None,
        arguments={"revision": "heads"} if target is not None else {"message": "m"},
        requested_by=REQUESTER,
        requested_at=now,
        state=JobState(state),
        started_at=now if state in STARTED else None,
    )
    session.add(job)
    session.flush()
    return job.id


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=project_jobs())
def test_removal_leaves_no_pending_job_and_audits_each_cancellation_once(
    app: Flask, tmp_path: Path, case: dict[str, Any]
) -> None:
    services = services_of(app)
    number = next(COUNTER)
    location = tmp_path / "registered"
    if not location.exists():  # a real Alembic environment: registration refuses anything else
        write_project(location, [RevisionSpec("a1", None, "first")])
    with services.sessions() as session:
        if not _has_env(session):
            registry.add_environment(session, "dev")
            registry.add_environment(session, "prod", protected=True)
        project = registry.add_project(session, f"p{number}", str(location))
        bystander = registry.add_project(session, f"b{number}", str(location))
        by_target = registry.add_target(
            session, f"b{number}-t", project=bystander.name, environment="dev", url="sqlite://"
        )
        untouched = {add_job(session, bystander, by_target, "queued")}
        affected: dict[int, str] = {}
        for index, spec in enumerate(case["targets"]):
            target = registry.add_target(
                session,
                f"p{number}-t{index}",
                project=project.name,
                environment=spec["env"],
                url="sqlite://",
            )
            removed = case["remove"] in ("project", f"target:{index}")
            states = spec["finished"] + ([spec["pending"]] if spec["pending"] else [])
            for state in states:
                job_id = add_job(session, project, target, state)
                if removed:
                    affected[job_id] = state
                else:
                    untouched.add(job_id)
        for state in case["revisions"]:
            job_id = add_job(session, project, None, state)
            if case["remove"] == "project":
                affected[job_id] = state
            else:
                untouched.add(job_id)
        session.commit()
        kind, name = (
            ("project", project.name)
            if case["remove"] == "project"
            else ("target", f"p{number}-{case['remove'].replace('target:', 't')}")
        )
        before = {j.id: j.state for j in session.scalars(sa.select(Job))}
        audits_before = session.scalar(sa.select(sa.func.max(AuditEvent.id))) or 0

        summary = removal.removal_summary(session, kind, name)
        pending = {
            i for i, s in affected.items() if s in ("awaiting_approval", "queued", "scheduled")
        }
        running = {i for i, s in affected.items() if s == "running"}
        assert {j.id for j in summary.pending} == pending
        assert {j.id for j in summary.running} == running

        if running:
            with pytest.raises(Conflict, match="is running"):
                removal.remove(session, kind, name, actor=ADMIN, role=Role.ADMIN, now=utcnow())
            session.rollback()
            assert {j.id: j.state for j in session.scalars(sa.select(Job))} == before
            assert session.scalar(sa.select(sa.func.max(AuditEvent.id))) == audits_before
            return
        removal.remove(session, kind, name, actor=ADMIN, role=Role.ADMIN, now=utcnow())
        session.commit()

    with services.sessions() as after:
        states = {j.id: j.state for j in after.scalars(sa.select(Job))}
        cancels = list(
            after.scalars(
                sa.select(AuditEvent).where(
                    AuditEvent.action == "job.cancel", AuditEvent.id > audits_before
                )
            )
        )
    for job_id, state in affected.items():
        assert states[job_id] == ("cancelled" if job_id in pending else state)
    assert all(states[job_id] == before[job_id] for job_id in untouched)
    assert sorted(e.job_id for e in cancels if e.job_id is not None) == sorted(pending)
    assert {e.detail["reason"] for e in cancels} <= {f"{kind} {name} removed by {ADMIN}"}


def _has_env(session: Session) -> bool:
    try:
        registry.get_environment(session, "dev")
    except NotFound:
        return False
    return True


# --- PostgreSQL: a worker's claim and a removal at the same moment -----------------------


@pytest.fixture
def postgres_app(tmp_path: Path, postgres_url: str) -> Iterator[Flask]:
    (tmp_path / "pg-instance").mkdir()
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "pg-instance"),
            "MIGDASH_SECRET_KEY": "pg-secret",
            "MIGDASH_DATABASE_URL": postgres_url,
            "MIGDASH_PROBE_TIMEOUT": 3.0,
        }
    )
    services_of(app).upgrade_schema()
    yield app
    services_of(app).probes.close()
    services_of(app).db_engine.dispose()


@pytest.mark.server
def test_a_claim_committed_during_the_removal_refuses_it_on_postgresql(
    postgres_app: Flask, make_project: Callable[..., Any], make_target: Callable[..., str]
) -> None:
    """The worker's UPDATE holds the row; the removal's compare-and-set waits, then sees running."""
    services = services_of(postgres_app)
    with services.sessions() as setup:
        world = build_world(postgres_app, setup, make_project, make_target)
    worker = services.sessions()
    job = worker.get(Job, world.queued)
    assert job is not None
    assert job.target_id is not None
    now = utcnow()
    assert acquire_lease(worker, job.target_id, job.id, "w1", now, timedelta(minutes=5)) is None
    assert move_job(worker, job.id, JobState.QUEUED, JobState.RUNNING, started_at=now)
    outcome: list[BaseException | None] = []

    def remove_project() -> None:
        with services.sessions() as remover:
            try:
                removal.remove(remover, "project", "shop", actor=ADMIN, role=Role.ADMIN, now=now)
                remover.commit()
                outcome.append(None)
            except Conflict as exc:
                remover.rollback()
                outcome.append(exc)

    thread = threading.Thread(target=remove_project)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive(), "the removal should wait for the worker's row lock"
    worker.commit()
    worker.close()
    thread.join(30)

    (refused,) = outcome
    assert isinstance(refused, Conflict)
    assert f"job {world.queued} (upgrade shop-dev to heads) started running" in str(refused)
    with services.sessions() as after:
        assert state_of(after, world.held) == JobState.AWAITING_APPROVAL
        assert state_of(after, world.queued) == JobState.RUNNING
        assert cancel_rows(after) == []
        assert after.scalar(sa.select(Project).where(Project.name == "shop")) is not None
