"""Run queued jobs: claim by compare-and-set, lock the target, run a child, record honestly.

A job runs at most once: the claim is ``UPDATE job SET state='running' WHERE
id=:id AND state='queued'`` and only the worker whose update counted goes on,
however many times the transport delivers the message.  The metadata session
is closed while the child runs; a heartbeat thread keeps the job and the
target's lease alive, and :func:`reap_interrupted` turns a job whose
heartbeat lapsed (its worker was killed) into ``interrupted`` without ever
running it again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.engine.actions import ActionResult, ActionSpec, StepClock
from migdash.engine.child import project_folder
from migdash.engine.launch import ChildStartError, start_child
from migdash.engine.planning import PlannedStep
from migdash.engine.schema import SchemaSnapshot
from migdash.engine.scrub import scrub_text, url_secrets
from migdash.errors import InvalidInput, MigdashError
from migdash.jobs.context import JobServices
from migdash.jobs.gate import approval_shortfall, gate_refusal
from migdash.jobs.history import record_applied
from migdash.jobs.locks import AdvisoryLock, LeaseHolder, acquire_lease, release_lease, renew_lease
from migdash.jobs.reaper import reap_interrupted, reprobe
from migdash.jobs.records import TARGET_ACTIONS, add_log, audit_job, describe, move_job
from migdash.jobs.schedule import delay_until, hold_job, release_job
from migdash.jobs.schemas import keep_schema_snapshot, reflect_target
from migdash.status import probe_request
from migdash.store.models import Job, JobLogLine, JobState, Project, Target, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    heartbeat_timeout: float = 30.0
    """Seconds without a heartbeat after which a running job counts as interrupted."""
    lock_retry_delay: float = 1.0
    """Seconds before a job that waits for a target's lock is tried again."""
    requeue_after: float = 60.0
    """Queued jobs older than this are submitted again (a lost message must not strand a job)."""
    clock: Callable[[], datetime] = field(default=utcnow)
    """What time it is for rollout windows and ``not_before`` (tests inject their own)."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Executes jobs for one worker process; safe to call from several threads."""

    def __init__(
        self, services: JobServices, settings: WorkerSettings, name: str | None = None
    ) -> None:
        self.services = services
        self.sessions = services.sessions
        self.queue = services.queue
        self.settings = settings
        self.name = name or worker_name()

    @property
    def ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.heartbeat_timeout)

    def execute(self, job_id: int) -> None:
        """Run job *job_id* if it is still queued and its target is free; otherwise wait or skip."""
        advisory: AdvisoryLock | None = None
        with self.sessions() as session:
            job = session.get(Job, job_id)
            if job is None or job.state not in (JobState.QUEUED, JobState.SCHEDULED):
                return
            if self._held(session, job):
                return
            target = job.target
            if job.kind in TARGET_ACTIONS and target is None:
                refuse_job(session, job, "its target was removed", actor=self.name, now=utcnow())
                session.commit()
                return
            spec = build_spec(job)
            if job.kind in TARGET_ACTIONS and target is not None:
                holder = acquire_lease(session, target.id, job.id, self.name, utcnow(), self.ttl)
                if holder is not None:
                    self._wait(session, job, _holder_note(holder))
                    return
                advisory = AdvisoryLock(target.url)
                try:
                    locked = advisory.try_acquire()
                except sa.exc.SQLAlchemyError as exc:  # the target refuses connections
                    advisory.release()
                    reason = str(getattr(exc, "orig", None) or exc).strip()
                    self._fail_unreachable(
                        session, job, target.id, scrub_text(reason, url_secrets(target.url))
                    )
                    return
                if not locked:
                    release_lease(session, target.id, job.id)
                    self._wait(
                        session,
                        job,
                        "waiting for lock: another session holds the database's advisory lock",
                    )
                    return
                if not self._passes_gate(session, job, target):
                    advisory.release()
                    return
            if not self._claim(session, job):
                if target is not None:
                    release_lease(session, target.id, job.id)
                    session.commit()
                if advisory:
                    advisory.release()
                return
            target_id, secrets = (target.id, url_secrets(target.url)) if target else (None, [])
        released = False
        try:
            result, clock, lines = self._run_child(job_id, target_id, spec, secrets)
            self._finish(job_id, target_id, result, clock, lines, advisory)
            released = True
        finally:
            if not released:
                if advisory is not None:
                    advisory.release()
                if target_id is not None:
                    with self.sessions() as session:
                        release_lease(session, target_id, job_id)
                        session.commit()

    def _held(self, session: Session, job: Job) -> bool:
        """Keep *job* scheduled until its window opens; a due scheduled job is queued again."""
        now = self.settings.clock()
        try:
            wake = hold_job(session, job, now)
        except InvalidInput as exc:  # windows written behind the registry's back
            if job.state == JobState.SCHEDULED:
                release_job(session, job, now)
            reason = f"its environment's rollout windows cannot be read ({exc.message})"
            refuse_job(session, job, reason, actor=self.name, now=utcnow())
            session.commit()
            return True
        if wake is not None:
            session.commit()
            self.queue.submit([job.id], delay=delay_until(wake, now))
            return True
        if job.state == JobState.SCHEDULED and not release_job(session, job, now):
            session.commit()
            return True
        return job.state != JobState.QUEUED

    def _passes_gate(self, session: Session, job: Job, target: Target) -> bool:
        """Probe the target under its lock and check the gate; refuse the job if it fails."""
        probe = self.services.probes.probe(probe_request(target))
        if probe.error is not None:
            self._fail_unreachable(session, job, target.id, probe.error)
            return False
        reason = gate_refusal(session, job, tuple(probe.current))
        if reason is None:
            return True
        refuse_job(session, job, reason, actor=self.name, now=utcnow())
        release_lease(session, target.id, job.id)
        session.commit()
        return False

    def _fail_unreachable(self, session: Session, job: Job, target_id: int, reason: str) -> None:
        """Fail a job whose target cannot be reached, without running it.

        Left queued it would be retried forever, holding the target's lease.
        """
        now = utcnow()
        failed = move_job(
            session,
            job.id,
            JobState.QUEUED,
            JobState.FAILED,
            started_at=now,
            finished_at=now,
            worker=self.name,
            note=None,
            error=f"the target cannot be reached, so nothing was run: {reason}",
        )
        release_lease(session, target_id, job.id)
        if failed:
            add_log(
                session,
                job.id,
                f"{describe(job)} failed: the target cannot be reached; nothing was run",
                now,
            )
            audit_job(
                session,
                self.name,
                "job.end",
                job,
                now,
                from_revisions=job.from_revisions,
                detail={"kind": job.kind, "state": JobState.FAILED.value, "failed_step": None},
            )
        session.commit()

    def _claim(self, session: Session, job: Job) -> bool:
        now = utcnow()
        claimed = move_job(
            session,
            job.id,
            JobState.QUEUED,
            JobState.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker=self.name,
            note=None,
        )
        if claimed:
            add_log(session, job.id, f"started on {self.name} {waiting_times(job, now)}", now)
            audit_job(
                session,
                self.name,
                "job.start",
                job,
                now,
                from_revisions=job.from_revisions,
                to_revision=_destination(job),
                detail={"kind": job.kind},
            )
        session.commit()
        return claimed

    def _wait(self, session: Session, job: Job, note: str) -> None:
        """Leave the job queued with a note (logged once) and look again shortly."""
        if job.note != note:
            job.note = note
            add_log(session, job.id, note, utcnow())
        session.commit()
        self.queue.submit([job.id], delay=self.settings.lock_retry_delay)

    def _run_child(
        self, job_id: int, target_id: int | None, spec: ActionSpec, secrets: list[str]
    ) -> tuple[ActionResult, StepClock, list[str]]:
        """Run the child; its result, step clock, and the output lines not yet written."""
        lines: list[tuple[float, str]] = []
        lock = threading.Lock()
        clock = StepClock(lambda text: _append(lines, lock, scrub_text(text, secrets)))
        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat,
            args=(job_id, target_id, stop, lines, lock),
            name=f"heartbeat-{job_id}",
            daemon=True,
        )
        with tempfile.TemporaryDirectory(prefix="migdash-job-") as scratch:
            result_file = Path(scratch) / "result.json"
            beat.start()
            try:
                returncode = _converse(result_file, spec, clock)
            except ChildStartError as exc:
                returncode = None
                clock.line(f"the action process could not be started: {exc}")
            finally:
                stop.set()
                beat.join()
            if result_file.exists():
                result = ActionResult.from_json(json.loads(result_file.read_text()))
            elif returncode is None:
                result = ActionResult(ok=False, error="the action process could not be started")
            else:
                result = ActionResult(
                    ok=False,
                    error=f"the action process exited with code "
                    f"{returncode} before reporting a result",
                )
            if result.ok:
                clock.finish()  # on failure clock.current stays: it is the step that failed
        with lock:
            return result, clock, [text for _, text in lines]

    def _heartbeat(
        self,
        job_id: int,
        target_id: int | None,
        stop: threading.Event,
        lines: list[tuple[float, str]],
        lock: threading.Lock,
    ) -> None:
        interval = max(0.2, min(1.0, self.settings.heartbeat_timeout / 3))
        last_beat = 0.0
        while not stop.wait(0.25):
            self._flush(job_id, lines, lock)
            if time.monotonic() - last_beat >= interval:
                last_beat = time.monotonic()
                with self.sessions() as session:
                    now = utcnow()
                    session.execute(sa.update(Job).where(Job.id == job_id).values(heartbeat_at=now))
                    if target_id is not None:
                        renew_lease(session, target_id, job_id, now)
                    session.commit()

    def _flush(self, job_id: int, lines: list[tuple[float, str]], lock: threading.Lock) -> None:
        with lock:
            batch, lines[:] = list(lines), []
        if batch:
            with self.sessions() as session:
                session.add_all(_output_rows(job_id, [text for _, text in batch]))
                session.commit()

    def _finish(
        self,
        job_id: int,
        target_id: int | None,
        result: ActionResult,
        clock: StepClock,
        lines: list[str],
        advisory: AdvisoryLock | None,
    ) -> None:
        """Record how the job ended, with its last output, schema snapshot and freed lease.

        One transaction: a reader never sees the job ended with its lease still held,
        and the metadata DB pays one commit per job here, not four.  The target is
        re-probed and reflected before the first write, so no write lock is held
        while it is read.
        """
        now = utcnow()
        with self.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            current: list[str] | None = None
            snapshot: SchemaSnapshot | str | None = None
            if target_id is not None and job.target is not None:
                if job.kind in TARGET_ACTIONS:
                    snapshot = _reflect(job.target)
                current = reprobe(session, self.services, job.target)
            session.add_all(_output_rows(job_id, lines))
            finished = self._record_end(session, job, result, clock, current, now)
            if finished and target_id is not None and current is not None and snapshot is not None:
                _keep_snapshot(session, job.id, target_id, snapshot, current, now)
            if advisory is not None:
                advisory.release()
            if target_id is not None:
                release_lease(session, target_id, job_id)
            session.commit()

    def _record_end(
        self,
        session: Session,
        job: Job,
        result: ActionResult,
        clock: StepClock,
        current: list[str] | None,
        now: datetime,
    ) -> bool:
        state = JobState.SUCCEEDED if result.ok else JobState.FAILED
        if result.refused:
            state = JobState.REFUSED
        failed_step = None if result.ok else (clock.current or result.failed_step)
        error = None
        if not result.ok:
            error = "\n\n".join(filter(None, [result.error, result.traceback]))
        output = {
            "steps": [{"step": s.step, "seconds": s.seconds} for s in clock.steps],
            "new_file": result.new_file,
            "operations": result.operations,
        }
        finished = move_job(
            session,
            job.id,
            JobState.RUNNING,
            state,
            finished_at=now,
            result_revisions=current,
            failed_step=failed_step,
            error=error,
            output=output,
        )
        if not finished:
            return False
        took = (now - job.started_at).total_seconds() if job.started_at else 0.0
        at = f"; target now at {', '.join(current) or '<base>'}" if current is not None else ""
        if result.ok and result.applied and job.target_id is not None:
            record_applied(session, job.target_id, job.id, result.applied, now)
        audit_job(
            session,
            self.name,
            "job.refused" if result.refused else "job.end",
            job,
            now,
            from_revisions=job.from_revisions,
            to_revision=",".join(current) if current is not None else None,
            detail={"kind": job.kind, "state": state.value, "failed_step": failed_step},
        )
        where = f" at step {failed_step}" if failed_step else ""
        verdict = "succeeded" if result.ok else f"failed{where}"
        if result.refused:
            verdict = f"refused before its first step: {result.error}"
        add_log(session, job.id, f"{describe(job)} {verdict} in {took:.1f} s{at}", now)
        return True

    def reap(self) -> list[int]:
        """Mark jobs whose heartbeat lapsed as interrupted, free their leases; re-probe."""
        with self.sessions() as session:
            reaped = reap_interrupted(session, self.services, self.ttl)
            session.commit()
            return reaped

    def requeue_stale(self) -> int:
        """Submit again queued jobs that waited longer than ``requeue_after`` (a lost message).

        A job the approval gate would refuse is refused here instead, never
        re-submitted.  Scheduled jobs whose time came are submitted too, so
        a lost delayed message never strands one.
        """
        cutoff = utcnow() - timedelta(seconds=self.settings.requeue_after)
        due = self._due_scheduled()
        with self.sessions() as session:
            stale = session.scalars(
                sa.select(Job).where(
                    Job.state == JobState.QUEUED,
                    sa.func.coalesce(Job.queued_at, Job.requested_at) < cutoff,
                )
            ).all()
            ready = []
            for job in stale:
                reason = approval_shortfall(session, job) if job.kind in TARGET_ACTIONS else None
                if reason is None:
                    ready.append(job.id)
                else:
                    refuse_job(session, job, reason, actor="reaper", now=utcnow())
            session.commit()
        self.queue.submit(ready + due)
        return len(ready) + len(due)

    def _due_scheduled(self) -> list[int]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    sa.select(Job.id).where(
                        Job.state == JobState.SCHEDULED,
                        Job.scheduled_for <= self.settings.clock(),
                    )
                )
            )


def refuse_job(session: Session, job: Job, reason: str, *, actor: str, now: datetime) -> bool:
    """End a queued job ``refused`` with *reason*: the gate said no, nothing ran."""
    refused = move_job(
        session,
        job.id,
        JobState.QUEUED,
        JobState.REFUSED,
        finished_at=now,
        note=None,
        error=f"refused: {reason}; nothing was run. Request it again for a new plan.",
    )
    if refused:
        add_log(session, job.id, f"refused before running: {reason}; nothing was run", now)
        audit_job(
            session,
            actor,
            "job.refused",
            job,
            now,
            from_revisions=job.from_revisions,
            to_revision=_destination(job),
            detail={"kind": job.kind, "reason": reason},
        )
    return refused


def waiting_times(job: Job, started: datetime) -> str:
    """ "after 0.4 s in the queue", or "after 3.0 s waiting for approval and 0.4 s in the queue"."""
    queued = job.queued_at or job.requested_at
    in_queue = (started - queued).total_seconds()
    approval = (queued - job.requested_at).total_seconds()
    if approval > 0:
        return f"after {approval:.1f} s waiting for approval and {in_queue:.1f} s in the queue"
    return f"after {in_queue:.1f} s in the queue"


def build_spec(job: Job) -> ActionSpec:
    """The child's instructions for *job*, from its project, target and arguments."""
    project: Project | None = job.project
    if project is None:
        raise RuntimeError(f"job {job.id}: its project was removed")
    target: Target | None = job.target
    args = job.arguments
    return ActionSpec(
        kind=job.kind,
        script_location=project.script_location,
        url=target.url if target else None,
        url_mode=project.url_mode,
        url_env_var=project.url_env_var,
        revision=args.get("revision") or args.get("head"),
        purge=bool(args.get("purge")),
        message=args.get("message"),
        heads=tuple(args.get("heads") or ()),
        branch_label=args.get("branch_label") or None,
        depends_on=tuple(args.get("depends_on") or ()),
        autogenerate=bool(args.get("autogenerate")),
        expected_steps=_expected_steps(job),
    )


def _expected_steps(job: Job) -> tuple[PlannedStep, ...] | None:
    """The approved steps a target action must match (None for merge and revision)."""
    if job.kind not in TARGET_ACTIONS:
        return None
    return tuple(PlannedStep.from_json(s) for s in (job.plan or {}).get("steps", []))


def _destination(job: Job) -> str | None:
    revision = job.arguments.get("revision") or job.arguments.get("head")
    return str(revision) if revision else None


def _holder_note(holder: LeaseHolder) -> str:
    return (
        f"waiting for lock held by job {holder.job_id} on {holder.worker} since "
        f"{holder.acquired_at:%H:%M:%S} UTC"
    )


def _reflect(target: Target) -> SchemaSnapshot | str:
    """The target's schema as the job left it, or why it could not be read."""
    try:
        return reflect_target(target)
    except MigdashError as exc:
        return exc.message


def _keep_snapshot(
    session: Session,
    job_id: int,
    target_id: int,
    snapshot: SchemaSnapshot | str,
    current: list[str],
    now: datetime,
) -> None:
    """After every target job: keep the schema snapshot (a failure to read it is only logged)."""
    if isinstance(snapshot, str):
        add_log(session, job_id, f"schema snapshot not taken: {snapshot}", now)
        return
    row = keep_schema_snapshot(
        session, target_id, snapshot, revisions=current, now=now, job_id=job_id
    )
    add_log(session, job_id, f"schema snapshot {row.fingerprint[:12]} taken", now)


def _converse(result_file: Path, spec: ActionSpec, clock: StepClock) -> int:
    """Run *spec* in a runner child: its output goes to *clock* line by line; its exit code."""
    with start_child(
        "migdash.jobs.runner", [str(result_file)], cwd=project_folder(spec.script_location)
    ) as process:  # closes the pipes: a long-lived worker must not leak a fd per job
        with contextlib.suppress(BrokenPipeError):  # it died first: its output says why
            process.stdin.write(json.dumps(spec.to_json()))
            process.stdin.close()
        for raw in process.output_lines():  # not to end of file: a leftover may hold it
            clock.line(raw.rstrip("\r\n"))
        return process.wait()


def _output_rows(job_id: int, texts: list[str]) -> list[JobLogLine]:
    """Log rows for lines the job's child printed (written by the heartbeat, and at its end)."""
    return [JobLogLine(job_id=job_id, line=text) for text in texts]


def _append(lines: list[tuple[float, str]], lock: threading.Lock, text: str) -> None:
    with lock:
        lines.append((time.time(), text))
