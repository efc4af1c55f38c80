"""The audit trail page, with filters and CSV/JSON export (read-only: there is no other way)."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, jsonify, make_response, render_template, request

from migdash.errors import InvalidInput
from migdash.permissions import Permission
from migdash.store import audit
from migdash.web.auth import requires
from migdash.web.db import db
from migdash.web.inputs import int_arg

bp = Blueprint("audit", __name__, url_prefix="/audit")
FILTERS = ("actor", "action", "target", "project", "since")
MAX_AUDIT_ROWS = 1_000_000


def _events() -> tuple[list[audit.AuditEvent], dict[str, str]]:
    filters = {k: request.args.get(k, "").strip() for k in FILTERS}
    since = None
    if filters["since"]:
        try:
            since = datetime.fromisoformat(filters["since"])
        except ValueError:
            raise InvalidInput(
                "'since' must be a date like 2026-11-24 or 2026-11-24T10:00"
            ) from None
    events = audit.find_events(
        db(),
        actor=filters["actor"] or None,
        action=filters["action"] or None,
        target=filters["target"] or None,
        project=filters["project"] or None,
        since=since,
        limit=int_arg("limit", 500, low=1, high=MAX_AUDIT_ROWS),
    )
    return list(events), filters


@bp.get("/")
@requires(Permission.AUDIT)
def index() -> str:
    events, filters = _events()
    return render_template("audit/index.html", events=events, filters=filters)


@bp.get("/export.csv")
@requires(Permission.AUDIT)
def export_csv() -> Response:
    events, _ = _events()
    response = make_response(audit.export_csv(events))
    response.mimetype = "text/csv"
    response.headers["Content-Disposition"] = 'attachment; filename="migdash-audit.csv"'
    return response


@bp.get("/export.json")
@requires(Permission.AUDIT)
def export_json() -> Response:
    events, _ = _events()
    return jsonify([audit.event_json(e) for e in events])
