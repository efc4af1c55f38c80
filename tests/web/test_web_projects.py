"""Project and revision pages: heads, history in Alembic's order, the graph, ``alembic show``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from migdash.scaffold import RevisionSpec
from migdash.store.models import Role
from tests.web.pagetext import revision_links, section


@pytest.fixture
def viewer(login: Callable[..., FlaskClient]) -> FlaskClient:
    return login(Role.VIEWER)


def history_rows(html: str) -> list[str]:
    """Revision ids of the history table, top to bottom (first link of each row)."""
    table = section(html, '<table class="list" id="history">', "</table>")
    return [revision_links(row)[0] for row in table.split("<tr>")[2:]]


def test_project_page_lists_heads(
    viewer: FlaskClient, make_project: Callable[..., Any], register_project: Callable[..., Any]
) -> None:
    project = make_project("merged")
    register_project(project)
    html = viewer.get("/projects/merged").get_data(as_text=True)
    heads = section(html, "<h3>Heads</h3>", "</div>")
    assert revision_links(heads) == ["f6"]
    assert "after the merge" in heads
    assert 'data-flag="multiple-heads"' not in html


def test_two_heads_are_flagged(
    viewer: FlaskClient, make_project: Callable[..., Any], register_project: Callable[..., Any]
) -> None:
    project = make_project("two_heads")
    register_project(project)
    html = viewer.get("/projects/two_heads").get_data(as_text=True)
    heads = section(html, "<h3>Heads</h3>", "</div>")
    assert 'data-flag="multiple-heads"' in heads
    assert "2 heads" in heads
    assert sorted(revision_links(heads)) == ["c3", "d4"]
    branch_points = section(html, "<h3>Branch points</h3>", "</div>")
    assert revision_links(branch_points) == ["b2"]


@pytest.mark.parametrize("shape", ["linear", "two_heads", "merged", "labels", "depends"])
def test_history_is_in_alembic_order(
    viewer: FlaskClient,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    alembic_history: Callable[[Path], list[str]],
    shape: str,
) -> None:
    project = make_project(shape)
    register_project(project)
    html = viewer.get(f"/projects/{shape}").get_data(as_text=True)
    assert history_rows(html) == alembic_history(project.location)


def test_history_pages(
    viewer: FlaskClient,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    alembic_history: Callable[[Path], list[str]],
) -> None:
    specs = [
        RevisionSpec(f"r{i:03d}", f"r{i - 1:03d}" if i else None, f"step {i}") for i in range(60)
    ]
    project = make_project(specs, name="long")
    register_project(project)
    expected = alembic_history(project.location)
    assert len(expected) == 60
    html = viewer.get("/projects/long?n=25&page=2").get_data(as_text=True)
    assert history_rows(html) == expected[25:50]
    pager = section(html, '<nav class="pager">', "</nav>")
    assert "page 2 of 3" in pager
    assert 'href="/projects/long?page=1&amp;n=25"' in pager
    assert 'href="/projects/long?page=3&amp;n=25"' in pager
    last = viewer.get("/projects/long?n=25&page=3").get_data(as_text=True)
    assert history_rows(last) == expected[50:]
    assert "older</a>" not in last
    # sizes outside the offered choices fall back to the default
    default = viewer.get("/projects/long?n=7").get_data(as_text=True)
    assert history_rows(default) == expected[:50]


def test_history_marks_targets_at_their_revision(
    viewer: FlaskClient,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    probe_all: Callable[[], Any],
) -> None:
    project = make_project("linear")
    register_project(project)
    register_target(project, "at-b2", at="b2")
    probe_all()
    html = viewer.get("/projects/linear").get_data(as_text=True)
    table = section(html, '<table class="list" id="history">', "</table>")
    row = next(r for r in table.split("<tr>") if "/revisions/b2" in r)
    assert 'href="/targets/at-b2"' in row


def test_project_page_inlines_the_svg_graph_with_target_markers(
    viewer: FlaskClient,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    probe_all: Callable[[], Any],
) -> None:
    project = make_project("merged")
    register_project(project)
    register_target(project, "merged-dev", at="c3")
    probe_all()
    html = viewer.get("/projects/merged").get_data(as_text=True)
    graph = section(html, '<div class="svg-wrap" id="revision-graph">', "</div>")
    assert "<svg" in graph
    assert "merged-dev" in graph
    assert "/projects/merged/revisions/e5" in graph
    standalone = viewer.get("/projects/merged/graph.svg")
    assert standalone.mimetype == "image/svg+xml"
    assert standalone.get_data(as_text=True).startswith("<svg")
    assert "merged-dev" in standalone.get_data(as_text=True)


def test_projects_index_counts_revisions_and_heads(
    viewer: FlaskClient, make_project: Callable[..., Any], register_project: Callable[..., Any]
) -> None:
    register_project(make_project("merged"))
    register_project(make_project("two_heads"))
    html = viewer.get("/projects/").get_data(as_text=True)
    merged = section(html, 'href="/projects/merged"', "</tr>")
    assert "<td>6</td>" in merged
    assert "multiple heads" not in merged
    assert "multiple heads" in section(html, 'href="/projects/two_heads"', "</tr>")


@pytest.fixture
def documented(
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    probe_all: Callable[[], Any],
) -> Any:
    specs = [
        RevisionSpec("a1", None, "create accounts", table="accounts"),
        RevisionSpec(
            "b2",
            "a1",
            "create orders",
            table="orders",
            extra_doc="Orders belong to accounts.\nBackfill runs separately.",
        ),
        RevisionSpec("c3", "b2", "create items", table="items"),
    ]
    project = make_project(specs, name="shop")
    register_project(project)
    register_target(project, "shop-head", env="dev", at="heads")
    register_target(project, "shop-b2", env="staging", at="b2")
    register_target(project, "shop-a1", env="prod", at="a1")
    register_target(project, "shop-empty", env="prod", at=None)
    probe_all()
    return project


def test_revision_page_shows_fields_and_docstring(viewer: FlaskClient, documented: Any) -> None:
    html = viewer.get("/projects/shop/revisions/b2").get_data(as_text=True)
    assert "<code>b2</code> create orders</h1>" in html
    doc = section(html, '<pre class="doc">', "</pre>")
    assert "Orders belong to accounts.\nBackfill runs separately." in doc
    fields = section(html, '<dl class="fields">', "</dl>")
    parents = section(fields, "<dt>Parent(s)</dt>", "</dd>")
    children = section(fields, "<dt>Children</dt>", "</dd>")
    assert revision_links(parents) == ["a1"]
    assert revision_links(children) == ["c3"]
    assert str(documented.location / "versions") in fields


def test_revision_page_highlights_the_source(viewer: FlaskClient, documented: Any) -> None:
    html = viewer.get("/projects/shop/revisions/b2").get_data(as_text=True)
    upgrade = section(html, "<h2>upgrade()</h2>", "</section>")
    assert 'class="source"' in upgrade
    assert "create_table" in upgrade
    assert "drop_table" not in upgrade
    assert "<span" in upgrade
    downgrade = section(html, "<h2>downgrade()</h2>", "</section>")
    assert 'class="source"' in downgrade
    assert "drop_table" in downgrade


def test_revision_page_splits_targets_by_applied(viewer: FlaskClient, documented: Any) -> None:
    html = viewer.get("/projects/shop/revisions/b2").get_data(as_text=True)
    applied = section(html, "<h3>Applied", "</ul>")
    missing = section(html, "<h3>Not applied", "</ul>")
    assert "Applied (2)" in applied
    assert 'href="/targets/shop-head"' in applied
    assert 'href="/targets/shop-b2"' in applied
    assert "Not applied (2)" in missing
    assert 'href="/targets/shop-a1"' in missing
    assert 'href="/targets/shop-empty"' in missing
    assert "uninitialised" in missing


def test_revision_may_be_abbreviated(
    viewer: FlaskClient, make_project: Callable[..., Any], register_project: Callable[..., Any]
) -> None:
    specs = [
        RevisionSpec("1a2b3c4d5e6f", None, "first"),
        RevisionSpec("9f8e7d6c5b4a", "1a2b3c4d5e6f", "second"),
    ]
    register_project(make_project(specs, name="hexy"))
    response = viewer.get("/projects/hexy/revisions/9f8e")
    assert response.status_code == 200
    assert "<code>9f8e7d6c5b4a</code> second</h1>" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/projects/nope", "no project named &#39;nope&#39;"),
        ("/projects/nope/graph.svg", "no project named &#39;nope&#39;"),
        ("/projects/linear/revisions/zz99", "Unknown revision &#39;zz99&#39;"),
        ("/projects/nope/revisions/a1", "no project named &#39;nope&#39;"),
        ("/targets/nope", "no target named &#39;nope&#39;"),
        ("/no/such/page", "Not Found"),
    ],
)
def test_unknown_things_give_a_helpful_404(
    viewer: FlaskClient,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    path: str,
    message: str,
) -> None:
    register_project(make_project("linear"))
    response = viewer.get(path)
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert message in body
    assert 'class="error" role="alert"' in body
    assert 'href="/projects/"' in body  # the navigation is still there
    assert "Traceback" not in body
    assert 'File "' not in body


def test_ambiguous_abbreviation_is_a_404_not_a_crash(
    viewer: FlaskClient, make_project: Callable[..., Any], register_project: Callable[..., Any]
) -> None:
    specs = [RevisionSpec("ab01", None, "first"), RevisionSpec("ab02", "ab01", "second")]
    register_project(make_project(specs, name="amb"))
    response = viewer.get("/projects/amb/revisions/ab")
    assert response.status_code == 404
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.fixture
def broken(make_project: Callable[..., Any], register_project: Callable[..., Any]) -> Any:
    project = make_project("linear", name="broken")
    bad = next((project.location / "versions").glob("b2_*.py"))
    bad.write_text(bad.read_text().replace("def upgrade():", "def upgrade(:"))
    register_project(project)
    return bad


def test_broken_project_is_reported_with_its_file(viewer: FlaskClient, broken: Path) -> None:
    response = viewer.get("/projects/broken")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    problem = section(html, '<section class="error" role="alert">', "</section>")
    assert "cannot be loaded" in problem
    assert broken.name in problem
    assert "Traceback" not in html
    revision = viewer.get("/projects/broken/revisions/a1").get_data(as_text=True)
    assert broken.name in section(revision, '<section class="error"', "</section>")
    svg_response = viewer.get("/projects/broken/graph.svg")
    assert svg_response.status_code == 422
    assert broken.name in svg_response.get_data(as_text=True)


def test_broken_project_does_not_break_the_overview(
    viewer: FlaskClient,
    broken: Path,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
) -> None:
    register_project(make_project("linear"))
    html = viewer.get("/").get_data(as_text=True)
    assert "cannot be loaded" in section(html, 'href="/projects/broken"', "</tr>")
    assert "cannot be loaded" not in section(html, 'href="/projects/linear"', "</tr>")
    index = viewer.get("/projects/").get_data(as_text=True)
    assert broken.name in section(index, 'href="/projects/broken"', "</tr>")
