"""How far a rollout got: per wave done / running / failed / waiting, the ETA, as data."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from migdash.jobs.rollout_waves import wave_name
from migdash.store.rollout_models import MemberState, Rollout, RolloutMember


@dataclass(frozen=True)
class WaveProgress:
    number: int
    name: str
    done: int
    running: int
    failed: int
    waiting: int
    cancelled: int
    targets: int


def progress(rollout: Rollout) -> list[WaveProgress]:
    """Per wave: how many members are done, running, failed, waiting (interrupted counts here)."""
    waves: dict[int, list[RolloutMember]] = {}
    for member in rollout.members:
        waves.setdefault(member.wave, []).append(member)
    return [
        WaveProgress(
            number=number,
            name=wave_name(number),
            done=sum(m.state == MemberState.SUCCEEDED for m in members),
            running=sum(m.state == MemberState.RUNNING for m in members),
            failed=sum(m.state == MemberState.FAILED for m in members),
            waiting=sum(m.state in (MemberState.WAITING, MemberState.INTERRUPTED) for m in members),
            cancelled=sum(m.state == MemberState.CANCELLED for m in members),
            targets=len(members),
        )
        for number, members in sorted(waves.items())
    ]


def eta_seconds(rollout: Rollout) -> float | None:
    """Seconds left at the pace of finished members, or None before the first one finished."""
    took = [
        (m.finished_at - m.started_at).total_seconds()
        for m in rollout.members
        if m.state == MemberState.SUCCEEDED and m.job_id and m.started_at and m.finished_at
    ]
    left = sum(
        m.state in (MemberState.WAITING, MemberState.RUNNING, MemberState.INTERRUPTED)
        for m in rollout.members
    )
    if not left:
        return 0.0
    if not took:
        return None
    return sum(took) / len(took) * math.ceil(left / rollout.concurrency)


def rollout_json(rollout: Rollout) -> dict[str, object]:
    """A rollout as plain data for ``--json`` and the API: its waves, members and plans."""
    eta = eta_seconds(rollout)
    return {
        "id": rollout.id,
        "project": rollout.project_name,
        "destination": rollout.destination,
        "environments": rollout.environments,
        "tags": rollout.tags,
        "canary": rollout.canary_size,
        "wave_size": rollout.wave_size,
        "concurrency": rollout.concurrency,
        "on_failure": rollout.on_failure,
        "state": rollout.state.value,
        "note": rollout.note,
        "requested_by": rollout.requested_by,
        "required_approvals": rollout.required_approvals,
        "fingerprint": rollout.fingerprint,
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "waves": [asdict(wave) for wave in progress(rollout)],
        "members": [
            {
                "target": m.target_name,
                "environment": m.environment,
                "wave": m.wave,
                "state": m.state.value,
                "job_id": m.job_id,
                "jobs": m.jobs,
                "error": m.error,
            }
            for m in rollout.members
        ],
        "plans": rollout.plans,
    }
