"""What ``project|env|target remove`` share: print what goes, ask, then remove.

The summary and the removal are :mod:`migdash.jobs.removal`'s, so the CLI
says and does what the web confirmation page says and does.
"""

from __future__ import annotations

import click
from sqlalchemy.orm import Session

from migdash.jobs import removal
from migdash.permissions import Permission, require
from migdash.store.models import Role, utcnow

yes_option = click.option("--yes", is_flag=True, help="Remove without asking for confirmation.")


def confirm_removal(
    session: Session, kind: str, name: str, *, yes: bool, actor: str, role: Role
) -> removal.RemovalSummary:
    """Show what goes (as the web confirmation page does), ask, then remove and commit.

    A refused removal (a running job, an environment holding targets) raises
    before anything is asked, as does a role that may not remove; answering
    no aborts with exit code 1.
    """
    require(role, Permission.ADMIN, actor=actor)
    summary = removal.removal_summary(session, kind, name)
    click.echo(removal_text(summary))
    removal.refuse_if_blocked(summary)
    if not yes:
        click.confirm(f"Remove {kind} {name}?", default=False, abort=True)
    done = removal.remove(
        session, kind, name, actor=actor, role=role, now=utcnow(), seen=summary.fingerprint
    )
    session.commit()
    cancelled = ", ".join(str(job.id) for job in done.pending)
    click.echo(f"removed {kind} {name}" + (f"; cancelled job(s) {cancelled}" if cancelled else ""))
    return done


def removal_text(summary: removal.RemovalSummary) -> str:
    lines = [f"Removing {summary.kind} {summary.name}:"]
    lines += [f"  target {t.name} ({t.project}, {t.environment})" for t in summary.targets]
    for job in summary.running + summary.pending:
        given = ", ".join(f"{a.decided_by} ({a.decision})" for a in job.approvals)
        lines.append(
            f"  job {job.id} {job.state.value}: {job.description}"
            + (f"; approvals: {given}" if given else "")
        )
    lines += [f"- {line}" for line in summary.consequences()]
    return "\n".join(lines)
