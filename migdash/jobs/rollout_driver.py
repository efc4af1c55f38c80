"""The worker's side of rollouts: advance them with no web request (a boundary: it commits).

The worker process calls :meth:`RolloutDriver.advance` after every job that
belongs to a rollout (so the next member starts at once) and on every
reaper pass (so a rollout resumed, approved or stuck moves within seconds).
Each change is a transaction of its own: following the member jobs and
ending a wave (:func:`~migdash.jobs.rollout_waves.sync_rollout`), then one
transaction per member started
(:func:`~migdash.jobs.rollout_waves.start_member`).  Threads of one process
take turns (a lock), so they do not plan the same member twice; other
processes are kept out by the compare-and-set updates and the
one-pending-job-per-target index, and the loser rolls back.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import sqlalchemy as sa

from migdash.errors import MigdashError
from migdash.jobs.context import JobServices
from migdash.jobs.plans import ActionPlan
from migdash.jobs.rollout_waves import (
    MemberNotStarted,
    fail_member,
    live_rollouts,
    plan_members,
    rollout_of_job,
    start_member,
    sync_rollout,
)
from migdash.jobs.rollouts import PlanCache
from migdash.store.models import utcnow
from migdash.store.rollout_models import RolloutMember

MAX_PASSES = 50
"""Steps of one rollout per call: each starts members or finishes some; a bound, not a goal."""


class RolloutDriver:
    """Advances rollouts for one worker process; safe to call from several threads."""

    def __init__(self, services: JobServices) -> None:
        self.services = services
        self.plans: PlanCache = {}
        self._lock = threading.Lock()

    def after_job(self, job_id: int) -> list[str]:
        """Advance the rollout *job_id* belongs to, if any."""
        with self.services.sessions() as session:
            rollout_id = rollout_of_job(session, job_id)
        return self.advance([rollout_id]) if rollout_id is not None else []

    def advance(self, rollout_ids: Sequence[int] | None = None) -> list[str]:
        """Advance every live rollout (or *rollout_ids*) as far as it goes; say what happened."""
        with self._lock:
            if rollout_ids is None:
                with self.services.sessions() as session:
                    rollout_ids = live_rollouts(session)
            return [line for rollout_id in rollout_ids for line in self._advance_one(rollout_id)]

    def _advance_one(self, rollout_id: int) -> list[str]:
        said: list[str] = []
        for _ in range(MAX_PASSES):
            with self.services.sessions() as session:
                starts = sync_rollout(session, rollout_id, utcnow())
                session.commit()
            if not starts:
                break
            with self.services.sessions() as session:
                plans = plan_members(session, self.services, starts, self.plans)
            outcomes = [self._start(member_id, plans) for member_id in starts]
            said += [text for _, text in outcomes]
            if not any(progressed for progressed, _ in outcomes):
                break
        return said

    def _start(self, member_id: int, plans: dict[int, ActionPlan]) -> tuple[bool, str]:
        """Start one member in a transaction of its own; record why when it cannot be planned.

        Says whether anything changed (False: another worker or a pause got there first).
        """
        with self.services.sessions() as session:
            try:
                member = session.get(RolloutMember, member_id)
                plan = plans.get(member.target_id or 0) if member else None
                said = start_member(session, self.services, member_id, utcnow(), plan)
            except MemberNotStarted as exc:
                session.rollback()
                return False, exc.message
            except (sa.exc.IntegrityError, sa.exc.PendingRollbackError):
                session.rollback()  # another process requested this target's job first
                return False, f"member {member_id} was started by another worker"
            except MigdashError as exc:
                session.rollback()
                fail_member(session, member_id, exc.message, utcnow())
                session.commit()
                return True, f"member {member_id} failed: {exc.message}"
            session.commit()
            return True, said


def advance_rollouts(services: JobServices, rollout_ids: Sequence[int] | None = None) -> list[str]:
    """One :meth:`RolloutDriver.advance` with a fresh driver (the CLI and tests)."""
    return RolloutDriver(services).advance(rollout_ids)
