"""Action commands: upgrade, downgrade, stamp, merge, revision, project init, jobs, job, worker."""

from __future__ import annotations

import time
from pathlib import Path

import click
from flask.cli import with_appcontext

from migdash.cli.base import (
    ACTOR_OPTION,
    Actor,
    emit,
    json_option,
    main,
    requires,
    resolve_actor,
    store,
)
from migdash.cli.registry import project_group
from migdash.errors import MigdashError
from migdash.jobs import approvals
from migdash.jobs import records as job_records
from migdash.jobs.consumer import run_worker
from migdash.jobs.plans import make_plan
from migdash.jobs.records import job_json
from migdash.jobs.requests import cancel_job, request_project_action, request_target_action
from migdash.jobs.schedule import parse_not_before
from migdash.permissions import Permission, require
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Job, JobState, utcnow


def _wait_for(job_ids: list[int], timeout: float) -> list[Job]:
    services = services_of()
    deadline = time.monotonic() + timeout
    while True:
        with services.sessions() as session:
            jobs = [job_records.get_job(session, i) for i in job_ids]
            if all(JobState(j.state).terminal for j in jobs) or time.monotonic() > deadline:
                return jobs
        time.sleep(0.3)


def _target_command(kind: str) -> click.Command:
    @click.argument("target")
    @click.argument("revision")
    @click.option("--sql", is_flag=True, help="Print the offline SQL instead of running it.")
    @click.option("--wait", is_flag=True, help="Wait for the job to finish; exit 1 if it fails.")
    @click.option("--timeout", default=600.0, show_default=True, help="Seconds --wait waits.")
    @click.option(
        "--plan-hash", default=None, help="Refuse unless the plan is still this one (see --sql)."
    )
    @click.option(
        "--not-before",
        default=None,
        help="Do not start before this time (ISO-8601, UTC unless an offset is given).",
    )
    @ACTOR_OPTION
    @json_option
    @with_appcontext
    def command(
        target: str,
        revision: str,
        sql: bool,
        wait: bool,
        timeout: float,
        plan_hash: str | None,
        not_before: str | None,
        actor: str,
        as_json: bool,
        purge: bool = False,
    ) -> None:
        with store() as (session, services):
            row = registry.get_target(session, target)
            name, role = resolve_actor(session, actor)
            if sql:
                # the plan shows SQL and names revision files: the web's plan page needs
                # the operator role, and so does this
                require(role, Permission.REQUEST, actor=name)
                plan = make_plan(services.jobs, row, kind, revision, purge=purge)
                emit(
                    {
                        "sql": plan.sql,
                        "steps": [s.label for s in plan.steps],
                        "current": list(plan.current),
                        "hazards": plan.hazards,
                        "error": plan.sql_error,
                        "plan_hash": plan.hash,
                    },
                    as_json,
                    plan.sql or ("nothing to do" if plan.nothing_to_do else "stamp runs no SQL"),
                )
                if plan.sql is None and not plan.nothing_to_do and kind != "stamp":
                    raise MigdashError(f"no SQL can be shown for this plan: {plan.sql_error}")
                return
            job = request_target_action(
                session,
                services.jobs,
                row,
                kind,
                revision,
                actor=name,
                role=role,
                now=utcnow(),
                purge=purge,
                seen_plan=plan_hash,
                not_before=parse_not_before(not_before),
            )
            session.commit()
            if job is None:
                emit(
                    {"job": None, "nothing_to_do": True, "target": target},
                    as_json,
                    f"nothing to do: {target} is already at {revision}",
                )
                return
            job_id = job.id
        report_jobs([job_id], wait, timeout, as_json)

    command.__doc__ = f"Queue `alembic {kind}` of TARGET to REVISION (heads, +N, -N, base, an id)."
    return command


def report_jobs(
    job_ids: list[int], wait: bool, timeout: float, as_json: bool, *, many: bool = False
) -> None:
    """Print the jobs (waiting for them with *wait*); exit 1 when a waited job did not succeed.

    *many* keeps the JSON a list even for one job, for commands that make several.
    """
    services = services_of()
    if wait:
        jobs = _wait_for(job_ids, timeout)
    else:
        with services.sessions() as session:
            jobs = [job_records.get_job(session, i) for i in job_ids]
    emit(
        [job_json(j) for j in jobs] if many or len(jobs) > 1 else job_json(jobs[0]),
        as_json,
        "\n".join(f"job {j.id}: {job_records.describe(j)} [{j.state}]" for j in jobs),
    )
    if wait and any(j.state != JobState.SUCCEEDED.value for j in jobs):
        raise SystemExit(1)


# "-1" is a revision, as in ``alembic downgrade -1``, not an unknown option.
RELATIVE_REVISIONS = {"ignore_unknown_options": True}
main.command("upgrade", context_settings=RELATIVE_REVISIONS)(_target_command("upgrade"))
main.command("downgrade", context_settings=RELATIVE_REVISIONS)(_target_command("downgrade"))
stamp_command = _target_command("stamp")
stamp_command = click.option(
    "--purge", is_flag=True, help="Delete all rows of the version table first."
)(stamp_command)
main.command("stamp", context_settings=RELATIVE_REVISIONS)(stamp_command)


@main.command("merge")
@click.argument("project")
@click.option("-m", "--message", required=True)
@click.option("--head", "heads", multiple=True, help="Heads to merge (default: all).")
@click.option("--wait", is_flag=True)
@click.option("--timeout", default=120.0)
@ACTOR_OPTION
@json_option
@with_appcontext
def merge(
    project: str,
    message: str,
    heads: tuple[str, ...],
    wait: bool,
    timeout: float,
    actor: str,
    as_json: bool,
) -> None:
    """Queue a merge revision of the project's heads."""
    with store() as (session, services):
        name, role = resolve_actor(session, actor)
        job = request_project_action(
            session,
            services.jobs,
            registry.get_project(session, project),
            "merge",
            {"message": message, "heads": list(heads)},
            actor=name,
            role=role,
            now=utcnow(),
        )
        session.commit()
        job_id = job.id
    report_jobs([job_id], wait, timeout, as_json)


@main.command("revision")
@click.argument("project")
@click.option("-m", "--message", required=True)
@click.option("--head", default=None, help="Parent head (needed when there are several).")
@click.option("--branch-label", default=None)
@click.option("--depends-on", multiple=True)
@click.option("--autogenerate", is_flag=True, help="Compare a target's schema to the models.")
@click.option("--against", default=None, help="Target to compare against (with --autogenerate).")
@click.option("--wait", is_flag=True)
@click.option("--timeout", default=120.0)
@ACTOR_OPTION
@json_option
@with_appcontext
def revision(
    project: str,
    message: str,
    head: str | None,
    branch_label: str | None,
    depends_on: tuple[str, ...],
    autogenerate: bool,
    against: str | None,
    wait: bool,
    timeout: float,
    actor: str,
    as_json: bool,
) -> None:
    """Queue a new revision file (empty, or autogenerated against a target)."""
    with store() as (session, services):
        target = registry.get_target(session, against) if against else None
        arguments = {
            "message": message,
            "head": head,
            "branch_label": branch_label,
            "depends_on": list(depends_on),
            "autogenerate": autogenerate,
        }
        name, role = resolve_actor(session, actor)
        job = request_project_action(
            session,
            services.jobs,
            registry.get_project(session, project),
            "revision",
            arguments,
            actor=name,
            role=role,
            now=utcnow(),
            against=target,
        )
        session.commit()
        job_id = job.id
    report_jobs([job_id], wait, timeout, as_json)


@main.command("jobs")
@click.option("--state", default=None)
@click.option("--project", default=None)
@click.option("--target", default=None)
@click.option("--limit", default=50, show_default=True)
@json_option
@with_appcontext
def jobs(
    state: str | None, project: str | None, target: str | None, limit: int, as_json: bool
) -> None:
    """Recent jobs, newest first."""
    with store() as (session, _):
        rows = job_records.list_jobs(
            session, state=state, project=project, target=target, limit=limit
        )
        emit(
            [job_json(j) for j in rows],
            as_json,
            "\n".join(
                f"{j.id:>5} {j.state:<12} {job_records.describe(j)}  ({j.requested_by})"
                for j in rows
            )
            or "no jobs",
        )


@main.command("job")
@click.argument("job_id", type=int)
@click.option("--log/--no-log", "with_log", default=True)
@json_option
@with_appcontext
def job(job_id: int, with_log: bool, as_json: bool) -> None:
    """One job: state, result, and its log."""
    with store() as (session, _):
        row = job_records.get_job(session, job_id)
        lines = [f"{line.at:%H:%M:%S} {line.line}" for line in job_records.job_log(session, job_id)]
        data = {**job_json(row), "log": lines}
        text = f"job {row.id}: {job_records.describe(row)} [{row.state}]"
        if row.error:
            text += f"\n{row.error}"
        if with_log:
            text += "\n" + "\n".join(lines)
        emit(data, as_json, text)


@main.command("cancel")
@click.argument("job_id", type=int)
@ACTOR_OPTION
@with_appcontext
def cancel(job_id: int, actor: str | None) -> None:
    """Cancel a job that has not started (queued, or awaiting approval)."""
    with store() as (session, _):
        name, role = resolve_actor(session, actor)
        cancel_job(session, job_id, actor=name, role=role, now=utcnow())
        session.commit()
        click.echo(f"job {job_id} cancelled")


@main.command("approve")
@click.argument("job_id", type=int)
@click.option(
    "--as",
    "actor",
    required=True,
    envvar="MIGDASH_CLI_USER",
    help="The approver (a named user; never the requester).",
)
@click.option("--comment", default="")
@click.option(
    "--plan-hash", default=None, help="The plan_hash you reviewed (`migdash job ID --json`)."
)
@json_option
@with_appcontext
def approve(job_id: int, actor: str, comment: str, plan_hash: str | None, as_json: bool) -> None:
    """Approve a job awaiting approval (after reading its plan: `migdash job ID`)."""
    with store() as (session, services):
        name, role = resolve_actor(session, actor)
        decision = approvals.approve(
            session,
            services.jobs,
            job_id,
            actor=name,
            role=role,
            comment=comment,
            seen_plan=plan_hash,
            now=utcnow(),
        )
        session.commit()
        emit(
            {
                **job_json(decision.job),
                "approvals": decision.approvals,
                "required_approvals": decision.required,
            },
            as_json,
            f"job {job_id}: approved by {name} ({decision.approvals} of {decision.required})"
            + ("; queued" if decision.queued else ""),
        )


@main.command("reject")
@click.argument("job_id", type=int)
@click.option("--as", "actor", required=True, envvar="MIGDASH_CLI_USER")
@click.option("--comment", default="")
@with_appcontext
def reject(job_id: int, actor: str, comment: str) -> None:
    """Reject a job awaiting approval; it never runs."""
    with store() as (session, _):
        name, role = resolve_actor(session, actor)
        approvals.reject(session, job_id, actor=name, role=role, comment=comment, now=utcnow())
        session.commit()
        click.echo(f"job {job_id}: rejected by {name}")


@main.command("worker")
@click.option(
    "--threads", default=None, type=int, help="Jobs run at once (MIGDASH_WORKER_THREADS)."
)
@with_appcontext
def worker(threads: int | None) -> None:
    """Run jobs from the queue until stopped (SIGINT/SIGTERM)."""
    with store() as (_, services):
        pass
    run_worker(services, threads or services.settings["MIGDASH_WORKER_THREADS"])


@project_group.command("init")
@click.argument("name")
@click.option("--template", default="generic", show_default=True)
@json_option
@requires(Permission.ADMIN)
def init(name: str, template: str, as_json: bool, actor: Actor) -> None:
    """Create a new Alembic environment under MIGDASH_PROJECTS_ROOT and register it."""
    from migdash.jobs.projects import init_project

    with store() as (session, services):
        project = init_project(
            session,
            Path(services.settings["MIGDASH_PROJECTS_ROOT"]),
            name,
            template,
            actor=actor.name,
        )
        session.commit()
        emit(
            {"project": project.name, "script_location": project.script_location},
            as_json,
            f"created project {project.name} at {project.script_location}",
        )
