"""Read commands: status, current, heads, history, show, graph (Alembic's verbs, many targets)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from migdash.cli.base import emit, json_option, main, store
from migdash.engine.graph import RevisionGraph
from migdash.engine.render import build_dot, graph_json, render_svg
from migdash.engine.render import revision_json as history_entry
from migdash.engine.source import read_revision_source
from migdash.errors import BrokenProject, UnknownRevision
from migdash.status import TargetReport, refresh_status
from migdash.store import registry
from migdash.store.queries import find_targets


def _graph(session: object, services: object, name: str) -> RevisionGraph:
    project = registry.get_project(session, name)  # type: ignore[arg-type]
    return services.catalog.graph(project.script_location)  # type: ignore[attr-defined, no-any-return]


def _probe(project: str | None, environment: str | None) -> list[TargetReport]:
    """Probe the selected targets now and record the snapshots (``status`` and ``current``)."""
    with store() as (session, services):
        targets = find_targets(session, project=project, environment=environment)
        reports = refresh_status(session, services.catalog, services.probes, targets)
        session.commit()
        return reports


@main.command("status")
@click.option("--project", default=None)
@click.option("--env", "environment", default=None)
@json_option
@with_appcontext
def status(project: str | None, environment: str | None, as_json: bool) -> None:
    """Probe targets now and print each one's state and pending revisions."""
    reports = _probe(project, environment)
    lines = []
    for r in reports:
        current = ",".join(rev[:12] for rev in r.status.current) or "-"
        detail = f"{len(r.status.pending)} pending" if r.status.pending else ""
        if r.status.error:
            detail = r.status.error
        lines.append(
            f"{r.project:<14} {r.environment:<10} {r.target:<24} "
            f"{r.status.state.value:<16} {current:<14} {detail}"
        )
    emit([r.as_json() for r in reports], as_json, "\n".join(lines) or "no targets")


@main.command("current")
@click.option("--project", default=None)
@click.option("--env", "environment", default=None)
@json_option
@with_appcontext
def current(project: str | None, environment: str | None, as_json: bool) -> None:
    """Each target's current revision(s), as ``alembic current`` prints them, for many targets."""
    reports = _probe(project, environment)
    lines = []
    for r in reports:
        revs = [f"{rev}{' (head)' if rev in r.status.heads else ''}" for rev in r.status.current]
        lines.append(f"{r.target}: {', '.join(revs) or r.status.error or '(base)'}")
    data = [
        {"target": r.target, "current": list(r.status.current), "error": r.status.error}
        for r in reports
    ]
    emit(data, as_json, "\n".join(lines) or "no targets")


@main.command("heads")
@click.argument("project")
@json_option
@with_appcontext
def heads(project: str, as_json: bool) -> None:
    """The project's head revisions (``alembic heads``)."""
    with store() as (session, services):
        graph = _graph(session, services, project)
        data = [history_entry(graph, rev) for rev in graph.heads]
        text = "\n".join(f"{rev} (head)" for rev in graph.heads)
        emit(data, as_json, text)


@main.command("history")
@click.argument("project")
@click.option("-n", "limit", type=int, default=None, help="Only the newest N revisions.")
@json_option
@with_appcontext
def history(project: str, limit: int | None, as_json: bool) -> None:
    """The project's revisions newest first, exactly as ``alembic history`` orders them."""
    with store() as (session, services):
        graph = _graph(session, services, project)
        revisions = graph.history[:limit] if limit else graph.history
        data = [history_entry(graph, rev) for rev in revisions]
        lines = []
        for rev in revisions:
            node = graph.nodes[rev]
            down = ", ".join(node.down_revisions) or "<base>"
            flags = "".join(
                [
                    " (head)" if node.is_head else "",
                    " (branchpoint)" if node.is_branch_point else "",
                    " (mergepoint)" if node.is_merge_point else "",
                ]
            )
            lines.append(f"{down} -> {rev}{flags}, {node.message}")
        emit(data, as_json, "\n".join(lines))


@main.command("show")
@click.argument("project")
@click.argument("revision")
@json_option
@with_appcontext
def show(project: str, revision: str, as_json: bool) -> None:
    """One revision's fields, docstring and source (``alembic show``)."""
    with store() as (session, services):
        graph = _graph(session, services, project)
        resolved = graph.resolve(revision)
        if len(resolved) != 1:
            raise UnknownRevision(revision, project=project)
        node = graph.nodes[resolved[0]]
        data = {
            **history_entry(graph, node.revision),
            "doc": node.doc,
            "path": node.path,
            "children": list(node.children),
            "source": read_revision_source(node.path).text,
        }
        text = (
            f"Rev: {node.revision}\nParent: {', '.join(node.down_revisions) or '<base>'}\n"
            f"Path: {node.path}\n\n    {node.doc}"
        )
        emit(data, as_json, text)


@main.command("graph")
@click.argument("project")
@click.option("--format", "fmt", type=click.Choice(["dot", "svg", "json"]), default="dot")
@click.option("--all", "show_all", is_flag=True, help="Draw every revision (no folding).")
@with_appcontext
def graph_command(project: str, fmt: str, show_all: bool) -> None:
    """The revision graph as DOT, SVG (needs Graphviz) or JSON."""
    with store() as (session, services):
        try:
            graph = _graph(session, services, project)
        except BrokenProject:
            raise
        if fmt == "json":
            emit(graph_json(graph), True)
            return
        dot = build_dot(graph, collapse=not show_all)
        click.echo(dot.source if fmt == "dot" else render_svg(dot))


@main.command("timeline")
@click.argument("target")
@json_option
@with_appcontext
def timeline_command(target: str, as_json: bool) -> None:
    """A target's revision files against what was applied, and its timeline of changes."""
    from migdash.jobs.history import target_history
    from migdash.status import cached_status, project_graph

    with store() as (session, services):
        row = registry.get_target(session, target)
        (report,) = cached_status(session, [row])
        graph, _ = project_graph(services.catalog, row.project)
        current = report.status.current if report.revisions_known else None
        history = target_history(session, graph, row, current)
        lines = [f"{r.revision}  {r.status}" for r in history.records]
        lines += [
            f"{e.at:%Y-%m-%d %H:%M:%S}  {e.what}: {e.before} -> {e.after}  ({e.attribution})"
            for e in history.entries
        ]
        emit(history.to_json(), as_json, "\n".join(lines) or "nothing observed yet")
