"""Registering a project: only Alembic environments, only inside MIGDASH_SCRIPT_ROOTS.

The registry functions take the roots as an argument (the CLI and the admin
form pass the setting); the setting itself is parsed strictly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from migdash.config import load_settings
from migdash.errors import ConfigError, InvalidInput
from migdash.scaffold import RevisionSpec, write_project
from migdash.store import registry
from migdash.store.queries import all_projects

ONE = [RevisionSpec("a1", None, "first")]


# --- the setting ----------------------------------------------------------------------------


def test_script_roots_are_resolved_and_include_the_projects_root(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    other = tmp_path / "other"
    other.mkdir()
    parsed = load_settings(
        {
            "MIGDASH_INSTANCE": str(tmp_path / "i"),
            "MIGDASH_SCRIPT_ROOTS": f"{tmp_path}/alias:{other}",
        }
    )
    assert parsed["MIGDASH_SCRIPT_ROOTS"] == (
        str(real),
        str(other),
        str((tmp_path / "i" / "projects").resolve()),
    )


def test_no_script_roots_means_no_limit(tmp_path: Path) -> None:
    for environ in ({}, {"MIGDASH_SCRIPT_ROOTS": ""}, {"MIGDASH_SCRIPT_ROOTS": "  "}):
        parsed = load_settings({"MIGDASH_INSTANCE": str(tmp_path), **environ})
        assert parsed["MIGDASH_SCRIPT_ROOTS"] == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("relative/dir", "'relative/dir' is not an absolute path"),
        ("{tmp}::{tmp}", "has an empty entry"),
        ("{tmp}:", "has an empty entry"),
        ("{tmp}/missing", "is not an existing folder"),
        ("{tmp}/file", "is not an existing folder"),
    ],
)
def test_bad_script_roots_stop_start_up_naming_the_variable(
    tmp_path: Path, value: str, message: str
) -> None:
    (tmp_path / "file").write_text("x")
    environ = {
        "MIGDASH_INSTANCE": str(tmp_path),
        "MIGDASH_SCRIPT_ROOTS": value.format(tmp=tmp_path),
    }
    with pytest.raises(ConfigError, match="MIGDASH_SCRIPT_ROOTS") as info:
        load_settings(environ)
    assert message in info.value.message
    with pytest.raises(ConfigError, match="MIGDASH_SCRIPT_ROOTS"):  # from the mapping too
        load_settings(
            {"MIGDASH_INSTANCE": str(tmp_path)},
            {"MIGDASH_SCRIPT_ROOTS": environ["MIGDASH_SCRIPT_ROOTS"]},
        )


# --- the registry ---------------------------------------------------------------------------


def test_add_project_stores_the_resolved_location(db_session: Any, tmp_path: Path) -> None:
    project = write_project(tmp_path / "real" / "proj", ONE)
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    row = registry.add_project(db_session, "p", f"  {tmp_path}/alias/../real/./proj  ")
    assert row.script_location == str(project)


def test_edit_project_checks_a_new_location_only(db_session: Any, tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", ONE)
    row = registry.add_project(db_session, "p", str(project), roots=[tmp_path])
    os.rename(project, tmp_path / "moved")  # broken on disk after registration

    registry.edit_project(
        db_session, row, track="a1", script_location=str(project), roots=[tmp_path]
    )
    assert (row.track, row.script_location) == ("a1", str(project))
    with pytest.raises(InvalidInput, match="does not exist") as info:
        registry.edit_project(db_session, row, script_location=str(tmp_path / "gone"))
    assert info.value.field == "script_location"
    registry.edit_project(db_session, row, script_location=f"{tmp_path}/moved/.")
    assert row.script_location == str(tmp_path / "moved")


SEGMENTS = ["proj", "..", ".", "link", "inner", "allowed", "allowed-x", "outside", "other"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/allowed/{proj, inner -> proj, link -> ../outside/other}, tmp/outside/other, and
    tmp/allowed-x/proj (a sibling whose name starts like the root's)."""
    allowed = tmp_path / "allowed"
    write_project(allowed / "proj", ONE)
    write_project(tmp_path / "allowed-x" / "proj", ONE)
    write_project(tmp_path / "outside" / "other", ONE)
    (allowed / "inner").symlink_to(allowed / "proj")
    (allowed / "link").symlink_to(tmp_path / "outside" / "other")
    return tmp_path


@given(path=st.lists(st.sampled_from(SEGMENTS), max_size=6))
@example(path=["..", "allowed-x", "proj"])
@example(path=["link"])
@example(path=["inner", "..", "link"])
@example(path=["..", "outside", "other"])
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_no_spelling_of_a_path_escapes_the_roots(
    tree: Path, db_session: Any, path: list[str]
) -> None:
    """Whatever mix of ``..``, ``.`` and symlinks: accepted means really inside the root."""
    allowed = tree / "allowed"
    spelled = os.path.join(allowed, *path)
    real = Path(os.path.realpath(spelled))
    usable = real.is_dir() and (real / "env.py").is_file()
    inside = real == allowed or allowed in real.parents
    if usable and inside:
        row = registry.add_project(db_session, "p", spelled, roots=[allowed])
        assert row.script_location == str(real)
    else:
        with pytest.raises(InvalidInput) as info:
            registry.add_project(db_session, "p", spelled, roots=[allowed])
        assert info.value.field == "script_location"
        if usable:  # a real project, but elsewhere: refused for where it is
            assert f"{real} is outside the folders projects may live in" in info.value.message
    db_session.rollback()
    assert all_projects(db_session) == []
