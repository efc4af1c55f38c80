"""Project pages: heads, branch points, paged history, the DAG, and ``alembic show``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import graphviz
from flask import (
    Blueprint,
    Response,
    current_app,
    make_response,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from migdash.engine.graph import RevisionGraph
from migdash.engine.render import (
    MAX_DOT_NODES,
    Marker,
    build_dot,
    dot_node_count,
    render_svg,
    render_svg_in_background,
)
from migdash.engine.source import read_revision_source
from migdash.engine.window import DEFAULT_DEPTH, MAX_DEPTH, Window, search_revisions, window_around
from migdash.errors import (
    BrokenProject,
    GraphvizUnavailable,
    InvalidInput,
    MigdashError,
    UnknownRevision,
)
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.status import (
    TargetReport,
    cached_status,
    split_by_applied,
    targets_by_head,
    unplaced,
)
from migdash.store.models import Project
from migdash.store.queries import all_projects, find_targets
from migdash.store.registry import get_project
from migdash.web.auth import requires
from migdash.web.db import db
from migdash.web.htmx import refresh_page
from migdash.web.inputs import int_arg

bp = Blueprint("projects", __name__, url_prefix="/projects")

PAGE_SIZES = (25, 50, 100, 500)
MAX_PAGE = 1_000_000


@bp.get("/")
@requires(Permission.VIEW)
def index() -> str:
    rows = [(project, *_graph_state(project, wait=0.0)) for project in all_projects(db())]
    return render_template("projects/index.html", rows=rows)


@dataclass(frozen=True)
class TypedForm:
    """What was sent in one of the project page's forms, and what was wrong, to show it again."""

    values: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Field name -> every value sent (checkboxes and selects may send several)."""
    errors: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Field name -> messages to show beside it; ``""`` holds those that belong to no field."""

    @property
    def sent(self) -> bool:
        return bool(self.values)

    def value(self, name: str, default: str = "") -> str:
        sent = self.values.get(name)
        return sent[0] if sent else default

    def chosen(self, name: str, default: Sequence[str] = ()) -> Sequence[str]:
        return self.values[name] if self.sent else default

    def errors_for(self, name: str) -> Sequence[str]:
        return self.errors.get(name, ())


PROJECT_FORMS = {
    "merge": ("message", "heads"),
    "revision": ("message", "head", "branch_label", "depends_on", "autogenerate", "against"),
}
"""The project page's forms and their fields; an error naming another field shows on top."""


def typed_form(form: str, error: MigdashError) -> TypedForm:
    """The request's values for *form*, with *error*'s message beside the field it names."""
    fields = PROJECT_FORMS[form]
    values = {name: request.form.getlist(name) for name in fields}
    where = getattr(error, "field", None) if isinstance(error, InvalidInput) else None
    message = [error.message, *([error.hint] if error.hint else [])]
    return TypedForm(values, {(where if where in fields else ""): message})


def render_form_again(name: str, form: str, error: MigdashError) -> Response:
    """The project page once more, *form* filled in as it was sent and *error* beside it (400).

    Nothing the refused request did is kept: the session is rolled back first.
    """
    db().rollback()
    html = render_project(name, **{f"{form}_form": typed_form(form, error)})
    return make_response(html, 400)


@bp.get("/<name>")
@requires(Permission.VIEW)
def detail(name: str) -> str:
    return render_project(name)


@bp.get("/<name>/history")
@requires(Permission.VIEW)
def history(name: str) -> str:
    """The project's whole history, paged, newest first as ``alembic history`` prints it."""
    session = db()
    project = get_project(session, name)
    graph, problem, loading = _graph_state(project)
    reports = cached_status(session, find_targets(session, project=name))
    return render_template(
        "projects/history.html",
        project=project,
        graph=graph,
        problem=problem,
        loading=loading,
        reports=reports,
        unplaced=unplaced(graph, reports) if graph else list(reports),
        **_history_page(graph, reports, "projects.history", project.name),
        **_poll(),
    )


@bp.get("/<name>/loading")
@requires(Permission.VIEW)
def loading(name: str) -> Response:
    """The "loading graph…" fragment polls here; once the graph is in, the page reloads."""
    project = get_project(db(), name)
    graph, problem, still_loading = _graph_state(project, wait=0.0)
    if still_loading:
        return make_response(
            render_template("partials/projects/loading.html", project=project, **_poll())
        )
    return refresh_page(make_response("", 200))


def render_project(
    name: str, *, merge_form: TypedForm | None = None, revision_form: TypedForm | None = None
) -> str:
    """The project page: facts, targets (from the latest snapshots), forms, graph, history."""
    session = db()
    project = get_project(session, name)
    graph, problem, loading = _graph_state(project)
    reports = cached_status(session, find_targets(session, project=name))
    return render_template(
        "projects/detail.html",
        project=project,
        graph=graph,
        problem=problem,
        loading=loading,
        reports=reports,
        drawing=_drawing(project.name, graph, reports) if graph else None,
        default_depth=DEFAULT_DEPTH,
        branch_targets=targets_by_head(graph, reports) if graph else {},
        unplaced=unplaced(graph, reports) if graph else list(reports),
        merge_form=merge_form or TypedForm(),
        revision_form=revision_form or TypedForm(),
        **_history_page(graph, reports, "projects.detail", project.name),
        **_poll(),
    )


def _graph_state(
    project: Project, wait: float = 0.25
) -> tuple[RevisionGraph | None, str | None, bool]:
    """(graph, why it cannot load, still loading): a big project loads in the background."""
    try:
        graph = services_of().catalog.graph_or_none(project.script_location, wait=wait)
    except BrokenProject as exc:
        return None, str(exc), False
    return graph, None, graph is None


def _poll() -> dict[str, object]:
    """How often the "loading graph…" fragment asks again (at most every 2 s, one request each)."""
    return {"poll_seconds": min(2, current_app.config["MIGDASH_REFRESH_SECONDS"])}


def _history_page(
    graph: RevisionGraph | None, reports: list[TargetReport], endpoint: str, name: str
) -> dict[str, object]:
    n = int_arg("n", 50, low=1, high=max(PAGE_SIZES))
    n = n if n in PAGE_SIZES else 50
    page = int_arg("page", 1, low=1, high=MAX_PAGE)
    at_revision: dict[str, list[str]] = {}
    for report in reports:
        for rev in report.status.current:
            at_revision.setdefault(rev, []).append(report.target)
    return {
        "history": graph.history[(page - 1) * n : page * n] if graph else (),
        "page": page,
        "pages": (len(graph.history) + n - 1) // n if graph else 0,
        "n": n,
        "page_sizes": PAGE_SIZES,
        "at_revision": at_revision,
        "pager_endpoint": endpoint,
    }


@bp.get("/<name>/graph.svg")
@requires(Permission.VIEW)
def graph_svg(name: str) -> Response:
    """The whole graph (folded); a big one is drawn in the background and answers 202 till then."""
    session = db()
    project = get_project(session, name)
    graph = services_of().catalog.graph_or_none(project.script_location)
    svg: str | None = None
    nodes = 0
    if graph is not None:
        reports = cached_status(session, find_targets(session, project=name))
        dot = _dot(project.name, graph, reports)
        nodes = dot_node_count(dot)
        svg = render_svg(dot) if nodes <= MAX_DOT_NODES else render_svg_in_background(dot)
    if svg is None:
        response = make_response(
            render_template("projects/drawing.html", project=project, nodes=nodes), 202
        )
        response.headers["Retry-After"] = "5"
        return response
    response = make_response(svg)
    response.mimetype = "image/svg+xml"
    return response


@bp.get("/<name>/revisions/<revision>")
@requires(Permission.VIEW)
def revision(name: str, revision: str) -> str:
    session = db()
    project = get_project(session, name)
    graph, problem, loading = _graph_state(project)
    if graph is None:
        return render_template(
            "projects/broken.html", project=project, problem=problem, loading=loading, **_poll()
        )
    try:
        resolved = graph.resolve(revision)
    except UnknownRevision:
        raise UnknownRevision(revision, project=name) from None
    if len(resolved) != 1:
        raise UnknownRevision(revision, project=name)
    node = graph.nodes[resolved[0]]
    source = read_revision_source(node.path)
    reports = cached_status(session, find_targets(session, project=name))
    return render_template(
        "projects/revision.html",
        project=project,
        node=node,
        graph=graph,
        upgrade=_highlight(source.upgrade),
        downgrade=_highlight(source.downgrade),
        full_source=_highlight(source.text),
        where=split_by_applied(graph, node.revision, reports),
    )


@dataclass(frozen=True)
class Drawing:
    """What the project page draws: an SVG (or why not), and the window it shows, if any."""

    svg: Markup | None = None
    error: str | None = None
    window: Window | None = None
    matches: Sequence[str] = ()
    """Revisions the search found (the window is around the first)."""
    query: str = ""


def _drawing(name: str, graph: RevisionGraph, reports: list[TargetReport]) -> Drawing:
    """The whole folded graph when it is small, else a window (around heads, or as asked)."""
    query = request.args.get("q", "").strip()[:200]
    depth = int_arg("depth", DEFAULT_DEPTH, low=1, high=MAX_DEPTH)
    anchors, matches = _anchors(graph, reports, query)
    window = None
    dot = None
    if not anchors and not request.args.get("depth") and len(graph) <= MAX_DOT_NODES:
        dot = _dot(name, graph, reports)
    if dot is None or dot_node_count(dot) > MAX_DOT_NODES:
        window = window_around(graph, anchors or graph.heads, depth)
        dot = _dot(name, graph, reports, window)
        if dot_node_count(dot) > MAX_DOT_NODES:  # too many targets to mark: draw revisions only
            dot = _dot(name, graph, [], window)
    try:
        svg = Markup(render_svg(dot))  # noqa: S704 - dot escapes all text
    except GraphvizUnavailable as exc:
        return Drawing(error=f"{exc.message}. {exc.hint}", window=window, matches=matches)
    return Drawing(svg=svg, window=window, matches=matches, query=query)


def _anchors(
    graph: RevisionGraph, reports: list[TargetReport], query: str
) -> tuple[list[str], list[str]]:
    """Where the window is centred: a target's revisions, a revision, or search matches."""
    target = request.args.get("target", "")
    if target:
        for report in reports:
            if report.target == target:
                return list(report.status.current), []
    matches = search_revisions(graph, query) if query else []
    return matches[:1], matches


MARKERS_PER_REVISION = 5
"""More targets than this at one revision are drawn as one "N targets" marker."""


def _dot(
    project_name: str,
    graph: RevisionGraph,
    reports: Sequence[TargetReport],
    window: Window | None = None,
) -> graphviz.Digraph:
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
    for rev, here in markers.items():
        if len(here) > MARKERS_PER_REVISION:
            markers[rev] = [Marker(f"{len(here)} targets", "many")]
    return build_dot(
        graph,
        markers,
        revision_href=lambda rev: url_for("projects.revision", name=project_name, revision=rev),
        window=window,
    )


def _highlight(code: str | None) -> Markup | None:
    if code is None:
        return None
    return Markup(highlight(code, PythonLexer(), HtmlFormatter(cssclass="source")))  # noqa: S704
