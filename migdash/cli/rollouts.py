"""``migdash rollout …``: fleet rollouts from the command line (the worker moves them)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click

from migdash.cli.base import Actor, emit, json_option, main, requires, store
from migdash.errors import MigdashError
from migdash.jobs.rollout_control import (
    approve_rollout,
    cancel_rollout,
    pause_rollout,
    reject_rollout,
    resume_rollout,
)
from migdash.jobs.rollout_progress import eta_seconds, progress, rollout_json
from migdash.jobs.rollouts import create_rollout, get_rollout, list_rollouts
from migdash.permissions import Permission
from migdash.store import registry
from migdash.store.models import utcnow
from migdash.store.rollout_models import Rollout, RolloutState

SETTLED = (
    RolloutState.SUCCEEDED,
    RolloutState.FAILED,
    RolloutState.CANCELLED,
    RolloutState.HALTED,
    RolloutState.PAUSED,
)


@main.group("rollout")
def rollout() -> None:
    """Upgrade many targets to one revision in waves: a canary first, then batches."""


@rollout.command("create")
@click.argument("project")
@click.argument("revision")
@click.option("--env", "environments", multiple=True, required=True, help="Environment (repeat).")
@click.option(
    "--tag", "tags", multiple=True, help="Only targets with this tag (repeat: all of them)."
)
@click.option("--canary", default=2, show_default=True, help="Targets in the first wave.")
@click.option(
    "--wave", "wave_size", default=10, show_default=True, help="Targets per wave after it."
)
@click.option("--concurrency", default=4, show_default=True, help="Jobs at once, at most.")
@click.option(
    "--on-failure",
    type=click.Choice(["halt", "continue"]),
    default="halt",
    show_default=True,
    help="After a wave with a failure: stop, or go on.",
)
@click.option(
    "--wait", is_flag=True, help="Show a progress bar until it ends; exit 1 unless it succeeds."
)
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds --wait waits.")
@json_option
@requires(Permission.REQUEST)
def create(
    project: str,
    revision: str,
    environments: tuple[str, ...],
    tags: tuple[str, ...],
    canary: int,
    wave_size: int,
    concurrency: int,
    on_failure: str,
    wait: bool,
    timeout: float,
    as_json: bool,
    actor: Actor,
) -> None:
    """Plan every target of PROJECT in the environments (and tags) and roll out to REVISION.

    On a protected environment the rollout waits for one approval of all its
    plans (``migdash rollout approve``); a running worker moves it.
    """
    with store() as (session, services):
        found = registry.get_project(session, project)
        made = create_rollout(
            session,
            services.jobs,
            found,
            revision,
            environments=environments,
            tags=tags,
            canary=canary,
            wave_size=wave_size,
            concurrency=concurrency,
            on_failure=on_failure,
            actor=actor.name,
            role=actor.role,
            now=utcnow(),
        )
        session.commit()
        rollout_id = made.id
        emit(rollout_json(made), as_json and not wait, describe(made))
    if wait:
        _wait(rollout_id, timeout, as_json)


@rollout.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """The newest rollouts and their states."""
    with store() as (session, _):
        found = list_rollouts(session)
        emit(
            [
                {
                    "id": r.id,
                    "project": r.project_name,
                    "destination": r.destination,
                    "state": r.state.value,
                    "requested_by": r.requested_by,
                }
                for r in found
            ],
            as_json,
            "\n".join(
                f"{r.id}\t{r.state.value}\t{r.project_name} to {r.destination}" for r in found
            )
            or "no rollouts",
        )


@rollout.command("show")
@click.argument("rollout_id", type=int)
@click.option(
    "--wait", is_flag=True, help="Show a progress bar until it ends; exit 1 unless it succeeds."
)
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds --wait waits.")
@json_option
def show(rollout_id: int, wait: bool, timeout: float, as_json: bool) -> None:
    """Progress per wave (done / running / failed / waiting), the ETA and each failure."""
    if wait:
        _wait(rollout_id, timeout, as_json)
        return
    with store() as (session, _):
        found = get_rollout(session, rollout_id)
        emit(rollout_json(found), as_json, describe(found))


def describe(found: Rollout) -> str:
    """The rollout as a person reads it in a terminal."""
    lines = [
        f"rollout {found.id}: {found.project_name} to {found.destination} on "
        f"{', '.join(found.environments)}: {found.state.value}"
        + (f" ({found.note})" if found.note else "")
    ]
    for wave in progress(found):
        lines.append(
            f"  {wave.name}: {wave.targets} target(s): {wave.done} done, {wave.running} running, "
            f"{wave.failed} failed, {wave.waiting} waiting"
            + (f", {wave.cancelled} cancelled" if wave.cancelled else "")
        )
    eta = eta_seconds(found)
    if eta is not None and found.state == RolloutState.RUNNING:
        lines.append(f"  ETA: about {eta:.0f} s")
    if found.state == RolloutState.AWAITING_APPROVAL:
        lines.append(
            f"  awaiting {found.required_approvals} approval(s) of "
            f"{len(found.plans)} distinct plan(s); fingerprint {found.fingerprint}"
        )
    for member in found.members:
        if member.error:
            first = member.error.strip().splitlines()[-1] if member.error.strip() else ""
            lines.append(f"  {member.target_name} (job {member.job_id}): {first}")
    return "\n".join(lines)


def _wait(rollout_id: int, timeout: float, as_json: bool) -> None:
    """A progress bar of finished targets until the rollout settles."""
    deadline = time.monotonic() + timeout
    with store() as (session, _):
        total = sum(w.targets for w in progress(get_rollout(session, rollout_id)) if w.number >= 0)
    shown = 0
    with click.progressbar(
        length=max(total, 1), label=f"rollout {rollout_id}", file=sys.stderr
    ) as bar:
        while True:
            with store() as (session, _):
                found = get_rollout(session, rollout_id)
                finished = sum(
                    w.done + w.failed + w.cancelled for w in progress(found) if w.number >= 0
                )
                bar.update(finished - shown)
                shown = finished
                if found.state in SETTLED:
                    break
            if time.monotonic() > deadline:
                raise MigdashError(f"rollout {rollout_id} did not settle in {timeout:.0f} s")
            time.sleep(0.5)
    with store() as (session, _):
        found = get_rollout(session, rollout_id)
        emit(rollout_json(found), as_json, describe(found))
        if found.state != RolloutState.SUCCEEDED:
            raise MigdashError(f"rollout {rollout_id} ended {found.state.value}")


def _control(
    verb: Callable[..., Rollout], rollout_id: int, actor: Actor, as_json: bool, **kwargs: Any
) -> None:
    with store() as (session, _):
        found = verb(session, rollout_id, actor=actor.name, role=actor.role, now=utcnow(), **kwargs)
        session.commit()
        emit(rollout_json(found), as_json, describe(found))


@rollout.command("pause")
@click.argument("rollout_id", type=int)
@json_option
@requires(Permission.REQUEST)
def pause(rollout_id: int, as_json: bool, actor: Actor) -> None:
    """Start no further target; jobs already requested finish."""
    _control(pause_rollout, rollout_id, actor, as_json)


@rollout.command("resume")
@click.argument("rollout_id", type=int)
@json_option
@requires(Permission.REQUEST)
def resume(rollout_id: int, as_json: bool, actor: Actor) -> None:
    """Go on from where it stopped; failed and interrupted targets are tried again."""
    _control(resume_rollout, rollout_id, actor, as_json)


@rollout.command("cancel")
@click.argument("rollout_id", type=int)
@json_option
@requires(Permission.REQUEST)
def cancel(rollout_id: int, as_json: bool, actor: Actor) -> None:
    """Start nothing more; member jobs not yet started are cancelled."""
    _control(cancel_rollout, rollout_id, actor, as_json)


@rollout.command("approve")
@click.argument("rollout_id", type=int)
@click.option("--comment", default="", help="Why, for the audit trail.")
@click.option("--fingerprint", default=None, help="Refuse unless the plans are the ones shown.")
@json_option
@requires(Permission.APPROVE)
def approve(
    rollout_id: int, comment: str, fingerprint: str | None, as_json: bool, actor: Actor
) -> None:
    """Approve every plan of a rollout on a protected environment (never one's own)."""
    _control(approve_rollout, rollout_id, actor, as_json, comment=comment, seen=fingerprint)


@rollout.command("reject")
@click.argument("rollout_id", type=int)
@click.option("--comment", default="", help="Why, for the audit trail.")
@json_option
@requires(Permission.APPROVE)
def reject(rollout_id: int, comment: str, as_json: bool, actor: Actor) -> None:
    """Reject a rollout awaiting approval: it ends cancelled and nothing runs."""
    _control(reject_rollout, rollout_id, actor, as_json, comment=comment)
