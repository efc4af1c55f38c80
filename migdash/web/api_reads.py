"""Read routes of ``/api/v1`` over projects, targets, the audit trail, compare and schema diff.

They sit on :data:`migdash.web.api.bp` (token authentication, JSON errors)
and are thin views over the functions the pages and the CLI use, with the
same permissions as those pages.  ``register_web`` imports this module
before registering the blueprint.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Response, current_app, jsonify

from migdash.engine.graph import RevisionGraph
from migdash.engine.render import graph_json, revision_json
from migdash.engine.source import read_revision_source
from migdash.errors import InvalidInput, UnknownRevision
from migdash.jobs.compare import compare_environments, compare_targets
from migdash.jobs.schemas import diff_targets
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.status import cached_status, project_graph
from migdash.store import audit, registry
from migdash.store.models import Project
from migdash.store.queries import all_projects
from migdash.web import api_models as m
from migdash.web.api import bp, permission, target_json
from migdash.web.db import db
from migdash.web.openapi import documented


def project_json(project: Project) -> dict[str, object]:
    graph, problem = project_graph(services_of().catalog, project)
    heads = list(graph.heads) if graph is not None else None
    return {
        "name": project.name,
        "heads": heads,
        "multiple_heads": heads is not None and len(heads) > 1,
        "problem": problem,
    }


@bp.get("/projects")
@permission(Permission.VIEW)
@documented(list[m.ProjectInfo], tag="projects")
def projects() -> Response:
    """Registered projects with their heads (null, and the problem, when one cannot be loaded)."""
    return jsonify([project_json(p) for p in all_projects(db())])


@bp.get("/projects/<name>")
@permission(Permission.VIEW)
@documented(m.ProjectInfo, tag="projects")
def project(name: str) -> Response:
    """One project with its heads."""
    return jsonify(project_json(registry.get_project(db(), name)))


def _graph(name: str) -> RevisionGraph:
    """The project's graph; a broken project is a 422 ``broken_project`` naming the file."""
    return services_of().catalog.graph(registry.get_project(db(), name).script_location)


@bp.get("/projects/<name>/heads")
@permission(Permission.VIEW)
@documented(list[m.RevisionEntry], tag="projects")
def heads(name: str) -> Response:
    """The head revisions (``alembic heads``); more than one needs a merge."""
    graph = _graph(name)
    return jsonify([revision_json(graph, rev) for rev in graph.heads])


@bp.get("/projects/<name>/history")
@permission(Permission.VIEW)
@documented(m.History, tag="projects")
def history(name: str, query: m.PageQuery) -> Response:
    """Revisions newest first, as ``alembic history`` orders them, a page at a time."""
    graph = _graph(name)
    start = (query.page - 1) * query.n
    return jsonify(
        {
            "project": name,
            "page": query.page,
            "pages": (len(graph.history) + query.n - 1) // query.n,
            "n": query.n,
            "total": len(graph.history),
            "revisions": [revision_json(graph, r) for r in graph.history[start : start + query.n]],
        }
    )


@bp.get("/projects/<name>/graph")
@permission(Permission.VIEW)
@documented(m.Graph, tag="projects")
def graph(name: str) -> Response:
    """The revision graph as data: heads, bases, branch and merge points, every revision."""
    return jsonify(graph_json(_graph(name)))


@bp.get("/projects/<name>/revisions/<revision>")
@permission(Permission.VIEW)
@documented(m.RevisionDetail, tag="projects")
def revision(name: str, revision: str) -> Response:
    """One revision (``alembic show``): fields, docstring, children and source."""
    graph = _graph(name)
    try:
        resolved = graph.resolve(revision)
    except UnknownRevision:
        raise UnknownRevision(revision, project=name) from None
    if len(resolved) != 1:
        raise UnknownRevision(revision, project=name)
    node = graph.nodes[resolved[0]]
    return jsonify(
        {
            **revision_json(graph, node.revision),
            "doc": node.doc,
            "children": list(node.children),
            "source": read_revision_source(node.path).text,
        }
    )


@bp.get("/targets/<name>")
@permission(Permission.VIEW)
@documented(m.TargetDetail, tag="targets")
def target(name: str) -> Response:
    """One target, with its last known status (``/status?probe=1`` probes it now)."""
    session = db()
    row = registry.get_target(session, name)
    (report,) = cached_status(session, [row])
    return jsonify({**target_json(row), "status": report.as_json()})


@bp.get("/audit")
@permission(Permission.AUDIT)
@documented(list[m.AuditEvent], tag="audit")
def audit_events(query: m.AuditQuery) -> Response:
    """Audit events newest first; pass the last id as ``before`` for the next page."""
    events = audit.find_events(
        db(),
        actor=query.actor,
        action=query.action,
        target=query.target,
        project=query.project,
        since=naive_utc(query.since),
        limit=query.limit,
        before=query.before,
    )
    return jsonify([audit.event_json(e) for e in events])


def naive_utc(moment: datetime | None) -> datetime | None:
    """*moment* as the metadata DB stores times: naive, in UTC."""
    if moment is None or moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise InvalidInput("since is out of range", field="since") from None


@bp.get("/compare/<name>")
@permission(Permission.VIEW)
@documented(m.Comparison, tag="compare")
def compare(name: str, query: m.CompareQuery) -> Response:
    """What each of two environments (a, b) or targets (target_a, target_b) lacks of the other."""
    session, services = db(), services_of()
    found = registry.get_project(session, name)
    max_age = timedelta(seconds=current_app.config["MIGDASH_REFRESH_SECONDS"])
    if query.target_a or query.target_b:
        a, b = _pair(query.target_a, query.target_b, "target_a", "target_b")
        left, right = registry.get_target(session, a), registry.get_target(session, b)
        result = compare_targets(session, services.jobs, found, left, right, max_age=max_age)
    else:
        a, b = _pair(query.a, query.b, "a", "b")
        envs = registry.get_environment(session, a), registry.get_environment(session, b)
        result = compare_environments(session, services.jobs, found, *envs, max_age=max_age)
    session.commit()
    return jsonify(result.as_json())


def _pair(first: str | None, second: str | None, *names: str) -> tuple[str, str]:
    """Both sides or a 400 naming the missing one."""
    for value, field in zip((first, second), names, strict=True):
        if not value:
            raise InvalidInput(f"{field} is required: two sides are compared", field=field)
    return first or "", second or ""


@bp.get("/schemas/diff")
@permission(Permission.VIEW)
@documented(m.SchemaDiff, tag="schemas")
def schema_diff(query: m.DiffQuery) -> Response:
    """Two targets' live schemas compared now (left is before, right after)."""
    session = db()
    left, right = (
        registry.get_target(session, query.left),
        registry.get_target(session, query.right),
    )
    return jsonify(diff_targets(left, right).to_json())
