"""Project pages: heads, branch points, paged history, the DAG, and ``alembic show``."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, render_template, url_for
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from migdash.engine.render import Marker, build_dot, render_svg
from migdash.engine.source import read_revision_source
from migdash.errors import GraphvizUnavailable, UnknownRevision
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.status import cached_status, project_graph, split_by_applied, targets_by_head
from migdash.store.queries import all_projects, find_targets
from migdash.store.registry import get_project
from migdash.web.auth import requires
from migdash.web.db import db
from migdash.web.inputs import int_arg

bp = Blueprint("projects", __name__, url_prefix="/projects")

PAGE_SIZES = (25, 50, 100, 500)
MAX_PAGE = 1_000_000


@bp.get("/")
@requires(Permission.VIEW)
def index() -> str:
    catalog = services_of().catalog
    rows = [(project, *project_graph(catalog, project)) for project in all_projects(db())]
    return render_template("projects/index.html", rows=rows)


@bp.get("/<name>")
@requires(Permission.VIEW)
def detail(name: str) -> str:
    session = db()
    project = get_project(session, name)
    graph, problem = project_graph(services_of().catalog, project)
    reports = cached_status(session, find_targets(session, project=name))
    n = int_arg("n", 50, low=1, high=max(PAGE_SIZES))
    n = n if n in PAGE_SIZES else 50
    page = int_arg("page", 1, low=1, high=MAX_PAGE)
    svg = svg_error = None
    if graph is not None:
        try:
            svg = Markup(_svg(project.name, graph, reports))  # noqa: S704 - dot escapes all text
        except GraphvizUnavailable as exc:
            svg_error = f"{exc.message}. {exc.hint}"
    at_revision: dict[str, list[str]] = {}
    for report in reports:
        for rev in report.status.current:
            at_revision.setdefault(rev, []).append(report.target)
    history = graph.history[(page - 1) * n : page * n] if graph else ()
    branch_targets = targets_by_head(graph, reports) if graph else {}
    pages = (len(graph.history) + n - 1) // n if graph else 0
    return render_template(
        "projects/detail.html",
        project=project,
        graph=graph,
        problem=problem,
        reports=reports,
        history=history,
        page=page,
        pages=pages,
        n=n,
        page_sizes=PAGE_SIZES,
        svg=svg,
        svg_error=svg_error,
        at_revision=at_revision,
        branch_targets=branch_targets,
    )


@bp.get("/<name>/graph.svg")
@requires(Permission.VIEW)
def graph_svg(name: str) -> Response:
    session = db()
    project = get_project(session, name)
    graph = services_of().catalog.graph(project.script_location)
    reports = cached_status(session, find_targets(session, project=name))
    response = make_response(_svg(project.name, graph, reports))
    response.mimetype = "image/svg+xml"
    return response


@bp.get("/<name>/revisions/<revision>")
@requires(Permission.VIEW)
def revision(name: str, revision: str) -> str:
    session = db()
    project = get_project(session, name)
    graph, problem = project_graph(services_of().catalog, project)
    if graph is None:
        return render_template("projects/broken.html", project=project, problem=problem)
    try:
        resolved = graph.resolve(revision)
    except UnknownRevision:
        raise UnknownRevision(revision, project=name) from None
    if len(resolved) != 1:
        raise UnknownRevision(revision, project=name)
    node = graph.nodes[resolved[0]]
    source = read_revision_source(node.path)
    reports = cached_status(session, find_targets(session, project=name))
    applied, missing = split_by_applied(graph, node.revision, reports)
    return render_template(
        "projects/revision.html",
        project=project,
        node=node,
        graph=graph,
        upgrade=_highlight(source.upgrade),
        downgrade=_highlight(source.downgrade),
        full_source=_highlight(source.text),
        applied=applied,
        missing=missing,
    )


def _svg(project_name: str, graph: object, reports: list) -> str:  # type: ignore[type-arg]
    markers: dict[str, list[Marker]] = {}
    for report in reports:
        for rev in report.status.current:
            markers.setdefault(rev, []).append(
                Marker(
                    report.target,
                    report.status.state.value,
                    url_for("targets.detail", name=report.target),
                )
            )
    dot = build_dot(
        graph,  # type: ignore[arg-type]
        markers,
        revision_href=lambda rev: url_for("projects.revision", name=project_name, revision=rev),
    )
    return render_svg(dot)


def _highlight(code: str | None) -> Markup | None:
    if code is None:
        return None
    return Markup(highlight(code, PythonLexer(), HtmlFormatter(cssclass="source")))  # noqa: S704
