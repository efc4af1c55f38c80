"""Project pages: heads, branch points, paged history, the DAG, and ``alembic show``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from flask import Blueprint, Response, make_response, render_template, request, url_for
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from migdash.engine.render import Marker, build_dot, render_svg
from migdash.engine.source import read_revision_source
from migdash.errors import GraphvizUnavailable, InvalidInput, MigdashError, UnknownRevision
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.status import (
    cached_status,
    project_graph,
    split_by_applied,
    targets_by_head,
    unplaced,
)
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


def render_project(
    name: str, *, merge_form: TypedForm | None = None, revision_form: TypedForm | None = None
) -> str:
    """The project page: facts, targets (from the latest snapshots), forms, graph, history."""
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
    return render_template(
        "projects/detail.html",
        project=project,
        graph=graph,
        problem=problem,
        reports=reports,
        history=graph.history[(page - 1) * n : page * n] if graph else (),
        page=page,
        pages=(len(graph.history) + n - 1) // n if graph else 0,
        n=n,
        page_sizes=PAGE_SIZES,
        svg=svg,
        svg_error=svg_error,
        at_revision=at_revision,
        branch_targets=targets_by_head(graph, reports) if graph else {},
        unplaced=unplaced(graph, reports) if graph else list(reports),
        merge_form=merge_form or TypedForm(),
        revision_form=revision_form or TypedForm(),
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
