"""Broken projects: one :class:`BrokenProject` naming the file and the cause; the catalog copes.

Each project here is real (written by the scaffold) and then broken the way
people break them: a typo, a missing import, a revision that names a parent
nobody has, a cycle, a wrong folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from migdash.engine.catalog import GraphCatalog
from migdash.engine.project import open_project
from migdash.errors import BrokenProject
from migdash.scaffold import RevisionSpec, write_revision


def revision_file(project: Any, revision: str) -> Path:
    """The one file of *project* that holds *revision*."""
    (path,) = Path(project.location, "versions").glob(f"{revision}_*.py")
    return path


def edit(path: Path, old: str, new: str) -> None:
    """Replace *old* by *new* in *path* (which must contain it) and move its mtime forward."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new))
    bump_mtime(path)


def bump_mtime(path: Path, seconds: int = 10) -> None:
    """Move *path*'s mtime forward by whole seconds, so no clock granularity can hide a change."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 1_000_000_000))


def broken(location: Path) -> BrokenProject:
    """Open *location*, expecting it to be broken, and return the error."""
    with pytest.raises(BrokenProject) as info:
        open_project(location)
    return info.value


def assert_readable(exc: BrokenProject, *fragments: str) -> None:
    """One line a person can act on: the project, the cause, no traceback, no repr soup."""
    text = str(exc)
    assert "\n" not in text
    assert "Traceback" not in text
    assert exc.location in text
    assert text.startswith(f"Project at {exc.location} cannot be loaded: ")
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} missing from {text!r}"


# --- open_project ---------------------------------------------------------------------------


def test_syntax_error_names_the_file_and_line(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    bad = revision_file(project, "b2")
    edit(bad, "def upgrade():", "def upgrade(:")

    exc = broken(project.location)

    assert exc.file is not None
    assert Path(exc.file).name == bad.name
    assert_readable(exc, bad.name, "syntax error on line 16")


def test_import_error_names_the_file_and_the_module(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    bad = revision_file(project, "c3")
    edit(bad, "from alembic import op\n", "from alembic import op\nimport nonexistent_module\n")

    line = bad.read_text().splitlines().index("import nonexistent_module") + 1

    exc = broken(project.location)

    assert exc.file is not None
    assert Path(exc.file).name == bad.name
    assert_readable(exc, "ModuleNotFoundError", "nonexistent_module", f"line {line}")


def test_error_raised_while_the_file_runs_names_the_file(make_project: Callable[..., Any]) -> None:
    project = make_project("merged")
    bad = revision_file(project, "e5")
    edit(bad, "revision = 'e5'", "revision = 'e5'\nraise RuntimeError('half-edited file')")

    exc = broken(project.location)

    assert exc.file is not None
    assert Path(exc.file).name == bad.name
    assert_readable(exc, "RuntimeError", "half-edited file")


def test_missing_down_revision_names_the_file_that_refers_to_it(
    make_project: Callable[..., Any],
) -> None:
    project = make_project("linear")
    bad = revision_file(project, "b2")
    edit(bad, "down_revision = 'a1'", "down_revision = 'zz9'")

    exc = broken(project.location)

    assert exc.file is not None
    assert Path(exc.file).name == bad.name
    assert_readable(exc, "down_revision", "'zz9'")


def test_missing_depends_on_names_the_file_that_refers_to_it(
    make_project: Callable[..., Any],
) -> None:
    project = make_project("depends")
    bad = revision_file(project, "x2")
    edit(bad, "depends_on = ('b2',)", "depends_on = ('nowhere',)")

    exc = broken(project.location)

    assert exc.file is not None
    assert Path(exc.file).name == bad.name
    assert_readable(exc, "depends_on", "'nowhere'")


def test_cycle_is_reported_with_the_revisions_and_a_file_in_it(
    make_project: Callable[..., Any],
) -> None:
    project = make_project(
        [
            RevisionSpec("a1", None, "base"),
            RevisionSpec("b2", ("a1", "c3"), "loops back"),
            RevisionSpec("c3", "b2", "closes the loop"),
        ]
    )

    exc = broken(project.location)

    assert exc.file is not None
    in_cycle = {revision_file(project, "b2").name, revision_file(project, "c3").name}
    assert Path(exc.file).name in in_cycle
    assert_readable(exc, "cycle", "b2", "c3")


def test_two_revision_cycle_with_no_base(make_project: Callable[..., Any]) -> None:
    project = make_project(
        [RevisionSpec("a1", "b2", "points up"), RevisionSpec("b2", "a1", "points down")]
    )

    exc = broken(project.location)

    assert exc.file is not None
    assert Path(exc.file).name in {
        revision_file(project, "a1").name,
        revision_file(project, "b2").name,
    }
    assert_readable(exc, "cycle")


def test_missing_folder(tmp_path: Path) -> None:
    location = tmp_path / "no" / "such" / "project"

    exc = broken(location)

    assert exc.file is None
    assert_readable(exc, "does not exist")
    assert not location.exists()


def test_folder_without_env_py_or_versions(tmp_path: Path) -> None:
    location = tmp_path / "not_alembic"
    location.mkdir()
    (location / "README.txt").write_text("just a folder")

    exc = broken(location)

    assert exc.file is None
    assert_readable(exc, "no env.py", "versions")


def test_sound_project_opens(make_project: Callable[..., Any]) -> None:
    """The control for the cases above: the unbroken shape loads with every revision."""
    project = make_project("merged")

    script_dir = open_project(project.location)

    assert sorted(rev.revision for rev in script_dir.walk_revisions()) == [
        "a1",
        "b2",
        "c3",
        "d4",
        "e5",
        "f6",
    ]


# --- GraphCatalog ---------------------------------------------------------------------------


def test_catalog_keeps_other_projects_working_when_one_is_broken(
    make_project: Callable[..., Any],
) -> None:
    good = make_project("linear", name="good")
    bad = make_project("merged", name="bad")
    edit(revision_file(bad, "d4"), "def upgrade():", "def upgrade(:")
    catalog = GraphCatalog()

    assert catalog.graph(str(good.location)).heads == ("c3",)
    with pytest.raises(BrokenProject) as info:
        catalog.graph(str(bad.location))
    assert info.value.file is not None
    assert Path(info.value.file).name == revision_file(bad, "d4").name
    assert catalog.graph(str(good.location)).history == ("c3", "b2", "a1")


def test_catalog_returns_the_cached_graph_while_nothing_changes(
    make_project: Callable[..., Any],
) -> None:
    project = make_project("two_heads")
    catalog = GraphCatalog()

    first = catalog.graph(str(project.location))
    second = catalog.graph(str(project.location))

    assert first is second
    assert sorted(first.heads) == ["c3", "d4"]


def test_catalog_caches_a_broken_project_too(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    edit(revision_file(project, "a1"), "def upgrade():", "def upgrade(:")
    catalog = GraphCatalog()

    with pytest.raises(BrokenProject) as first:
        catalog.graph(str(project.location))
    with pytest.raises(BrokenProject) as second:
        catalog.graph(str(project.location))

    assert first.value is second.value


def test_catalog_reloads_when_a_revision_file_is_added(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    catalog = GraphCatalog()
    before = catalog.graph(str(project.location))

    write_revision(project.location / "versions", RevisionSpec("d4", "c3", "added later"))
    after = catalog.graph(str(project.location))

    assert after is not before
    assert before.heads == ("c3",)
    assert after.heads == ("d4",)
    assert after.history == ("d4", "c3", "b2", "a1")
    assert catalog.graph(str(project.location)) is after


def test_catalog_reloads_when_a_revision_file_is_edited(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    catalog = GraphCatalog()
    before = catalog.graph(str(project.location))

    # Same length, so only the mtime tells the catalog that something changed.
    edit(revision_file(project, "b2"), "create orders", "CREATE ORDERS")
    after = catalog.graph(str(project.location))

    assert after is not before
    assert before.nodes["b2"].message == "create orders"
    assert after.nodes["b2"].message == "CREATE ORDERS"


def test_catalog_reloads_when_a_revision_file_is_removed(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    catalog = GraphCatalog()
    assert catalog.graph(str(project.location)).heads == ("c3",)

    revision_file(project, "c3").unlink()

    assert catalog.graph(str(project.location)).heads == ("b2",)


def test_catalog_recovers_when_a_broken_file_is_fixed(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    bad = revision_file(project, "c3")
    edit(bad, "def upgrade():", "def upgrade(:")
    catalog = GraphCatalog()
    with pytest.raises(BrokenProject):
        catalog.graph(str(project.location))

    edit(bad, "def upgrade(:", "def upgrade():")

    assert catalog.graph(str(project.location)).heads == ("c3",)


def test_catalog_breaks_when_a_good_file_is_broken(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    catalog = GraphCatalog()
    assert catalog.graph(str(project.location)).heads == ("c3",)

    edit(revision_file(project, "c3"), "def upgrade():", "def upgrade(:")

    with pytest.raises(BrokenProject) as info:
        catalog.graph(str(project.location))
    assert info.value.file is not None
    assert Path(info.value.file).name == revision_file(project, "c3").name


def test_catalog_notices_a_project_folder_that_appears(
    tmp_path: Path, make_project: Callable[..., Any]
) -> None:
    catalog = GraphCatalog()
    location = tmp_path / "projects" / "late"
    with pytest.raises(BrokenProject, match="does not exist"):
        catalog.graph(str(location))

    make_project("linear", name="late")

    assert catalog.graph(str(location)).heads == ("c3",)


def test_catalog_forget_drops_the_cached_graph(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    catalog = GraphCatalog()
    before = catalog.graph(str(project.location))

    catalog.forget(str(project.location))

    after = catalog.graph(str(project.location))
    assert after is not before
    assert after.history == before.history


def test_a_revision_id_declared_twice_is_a_broken_project(tmp_path: Path) -> None:
    from migdash.scaffold import RevisionSpec, write_project, write_revision

    location = write_project(
        tmp_path / "dup",
        [
            RevisionSpec("a1", None, "first"),
            RevisionSpec("b2", "a1", "second"),
        ],
    )
    copy = write_revision(location / "versions", RevisionSpec("b2", "a1", "second again"))
    with pytest.raises(BrokenProject, match="declared in more than one file") as excinfo:
        open_project(location)
    assert excinfo.value.file is not None
    assert Path(excinfo.value.file).name in {copy.name, "b2_second.py"}
