"""Live schemas: a target's snapshots, taking one now, and the diff of any two targets."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for

from migdash.errors import InvalidInput
from migdash.jobs.schemas import diff_targets, take_schema_snapshot
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.status import refresh_status
from migdash.store.models import utcnow
from migdash.store.queries import find_targets
from migdash.store.registry import get_target
from migdash.store.schema_models import SchemaSnapshot
from migdash.web.auth import requires
from migdash.web.db import db

bp = Blueprint("schemas", __name__, url_prefix="/schemas")


@bp.get("/targets/<name>")
@requires(Permission.VIEW)
def target(name: str) -> str:
    session = db()
    row = get_target(session, name)
    snapshots = list(
        session.query(SchemaSnapshot)
        .filter(SchemaSnapshot.target_id == row.id)
        .order_by(SchemaSnapshot.id.desc())
        .limit(50)
    )
    others = [t for t in find_targets(session, project=row.project.name) if t.id != row.id]
    return render_template("schemas/target.html", target=row, snapshots=snapshots, others=others)


@bp.post("/targets/<name>/snapshot")
@requires(Permission.VIEW)
def snapshot(name: str) -> Response:
    """Reflect the target now (reading its schema changes nothing)."""
    session, services = db(), services_of()
    row = get_target(session, name)
    (report,) = refresh_status(session, services.catalog, services.probes, [row])
    take_schema_snapshot(session, row, revisions=report.status.current, now=utcnow(), job_id=None)
    session.commit()
    return redirect(url_for("schemas.target", name=name))


@bp.get("/diff")
@requires(Permission.VIEW)
def diff() -> str:
    """Two targets' live schemas side by side: real differences first, cosmetic ones apart."""
    session = db()
    left_name, right_name = request.args.get("left", ""), request.args.get("right", "")
    if not left_name or not right_name:
        raise InvalidInput(
            "choose two targets to compare", field="left" if not left_name else "right"
        )
    left, right = get_target(session, left_name), get_target(session, right_name)
    return render_template("schemas/diff.html", result=diff_targets(left, right))
