"""The worker's side of rollouts: advance them with no web request (a boundary: it commits).

The worker process calls :meth:`RolloutDriver.advance` after every job that
belongs to a rollout (so the next member starts at once) and on every
reaper pass (so a rollout resumed, approved or stuck moves within seconds).
Each change is a transaction of its own: following the member jobs and
ending a wave (:func:`~migdash.jobs.rollout_waves.sync_rollout`), then one
transaction per member started
(:func:`~migdash.jobs.rollout_waves.start_member`).  One thread of a process
advances at a time (the others leave their request with it), so they do not
plan the same member twice; other
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
        self._guard = threading.Lock()
        self._busy = False
        self._wanted: set[int] = set()
        self._wanted_all = False

    def after_job(self, job_id: int) -> list[str]:
        """Advance the rollout *job_id* belongs to, if any."""
        with self.services.sessions() as session:
            rollout_id = rollout_of_job(session, job_id)
        return self.advance([rollout_id]) if rollout_id is not None else []

    def advance(self, rollout_ids: Sequence[int] | None = None) -> list[str]:
        """Advance every live rollout (or *rollout_ids*) as far as it goes; say what happened.

        One thread of the process advances at a time.  A thread that finds
        another at it leaves its request with that one, which makes one more
        pass for it before it stops, and returns at once (with no lines): a
        worker thread goes back to running jobs instead of queueing behind
        an advance that would find nothing left to start.
        """
        with self._guard:
            if rollout_ids is None:
                self._wanted_all = True
            else:
                self._wanted.update(rollout_ids)
            if self._busy:
                return []
            self._busy = True
        said: list[str] = []
        try:
            while (asked := self._next_request()) is not None:
                said += [line for rollout_id in asked for line in self._advance_one(rollout_id)]
        except BaseException:
            with self._guard:
                self._busy = False
            raise
        return said

    def _next_request(self) -> list[int] | None:
        """The rollouts asked for since the last pass (every live one, if any caller said so).

        None, and this thread is no longer the one advancing, when nobody
        asked: deciding that and giving the turn up is one step under the
        guard, so a request left meanwhile is never stranded.
        """
        with self._guard:
            everything, asked = self._wanted_all, sorted(self._wanted)
            self._wanted_all, self._wanted = False, set()
            if not everything and not asked:
                self._busy = False
                return None
        if not everything:
            return asked
        with self.services.sessions() as session:
            return sorted(set(live_rollouts(session)) | set(asked))

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
