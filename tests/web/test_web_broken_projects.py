"""A broken project stays one broken project: every other page, and the CLI, keep working.

A good project and a bad one are registered while both are sound, each with a
target; then the bad one is broken on disk the ways it happens (the folder
deleted or replaced by a file, its alembic.ini turned to garbage, binary,
unreadable, a folder, or an ini of something else, its script folder gone).
Every page that lists projects must then answer, the bad project's own page
must say why (200 or 422, never 500), and nothing may quote the broken file.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from migdash.cli import main
from migdash.scaffold import RevisionSpec, write_project
from migdash.store import registry
from migdash.store.models import Role
from tests.conftest import ProjectFixture

PLANTED = "PLANTED-7f3a root:x:0:0:root:/root:/bin/bash"
"""A recognisable line written into every broken file; no page or output may show it."""

LINEAR = [
    RevisionSpec("a1", None, "create accounts", table="accounts"),
    RevisionSpec("b2", "a1", "create orders", table="orders"),
]


@dataclass(frozen=True)
class BadProject:
    """The project to break: its registered location and the parts a breakage acts on."""

    location: Path
    folder: Path
    """The folder holding env.py (the script folder)."""
    ini: Path | None


def _replace_with_file(path: Path) -> None:
    shutil.rmtree(path)
    path.write_text(f"{PLANTED}\n")


def _ini(project: BadProject) -> Path:
    assert project.ini is not None
    return project.ini


def _make_unreadable(project: BadProject) -> None:
    _ini(project).chmod(0)
    if os.access(_ini(project), os.R_OK):  # root reads anything; tests/engine patches instead
        pytest.skip("running as root: a mode-0 file is still readable")


def _ini_to_folder(project: BadProject) -> None:
    _ini(project).unlink()
    _ini(project).mkdir()


BREAKAGES: dict[str, tuple[bool, Callable[[BadProject], object], str]] = {
    # name: (registered through alembic.ini?, how it breaks, what the reason says)
    "folder deleted": (False, lambda p: shutil.rmtree(p.folder), "does not exist"),
    "folder replaced by a file": (
        False,
        lambda p: _replace_with_file(p.folder),
        "not an ini file (no section header)",
    ),
    "ini garbage": (
        True,
        lambda p: _ini(p).write_text(f"{PLANTED}\nmore garbage\n"),
        "not an ini file (no section header)",
    ),
    "ini binary": (
        True,
        lambda p: _ini(p).write_bytes(b"\x00\xff" + PLANTED.encode()),
        "binary data",
    ),
    "ini unreadable": (True, _make_unreadable, "cannot be read"),
    "ini replaced by a folder": (True, _ini_to_folder, "is a folder, not an ini file"),
    "ini of something else": (
        True,
        lambda p: _ini(p).write_text(f"[server]\nmotd = {PLANTED}\n"),
        "no [alembic] section",
    ),
    "ini whose script folder is gone": (True, lambda p: shutil.rmtree(p.folder), "does not exist"),
    "ini folder replaced by a file": (
        True,
        lambda p: _replace_with_file(_ini(p).parent),
        "does not exist",
    ),
}


@pytest.fixture
def admin(login: Callable[..., FlaskClient]) -> FlaskClient:
    return login(Role.ADMIN)


@pytest.fixture
def two_projects(
    tmp_path: Path,
    db_session: Any,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
) -> Callable[[bool], BadProject]:
    """Register "good" (target good-dev at b2) and a sound "bad" (target bad-dev at a1)."""
    good = make_project("linear", name="good")
    register_project(good)
    register_target(good, "good-dev", at="b2")

    def factory(via_ini: bool) -> BadProject:
        root = tmp_path / "bad"
        folder = write_project(root / "migrations", LINEAR)
        ini = None
        if via_ini:
            ini = root / "alembic.ini"
            ini.write_text("[alembic]\nscript_location = %(here)s/migrations\n")
        location = ini or folder
        registry.add_project(db_session, "bad", str(location))
        db_session.commit()
        fixture = ProjectFixture("bad", folder, tuple(LINEAR))
        register_target(fixture, "bad-dev", at="a1")
        return BadProject(location, folder, ini)

    return factory


GOOD_PAGES = [
    "/projects/good",
    "/projects/good/graph.svg",
    "/projects/good/revisions/b2",
    "/targets/good-dev",
]
LISTS = ["/", "/overview/matrix", "/projects/", "/jobs/", "/approvals/", "/audit/", "/admin/"]
BAD_PAGES = [
    "/targets/bad-dev",
    "/admin/projects/bad/edit",
    "/actions/environment?environment=dev&project=bad&action=upgrade&revision=heads",
]


def _walk(client: FlaskClient, paths: list[str], allowed: tuple[int, ...]) -> dict[str, str]:
    bodies = {}
    for path in paths:
        response = client.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code in allowed, (path, response.status_code, body[:2000])
        assert PLANTED not in body, path
        assert "Traceback" not in body, path
        bodies[path] = body
    return bodies


def _cases() -> list[Any]:
    cases = []
    for breakage in BREAKAGES:
        for warm in (False, True):
            label = f"{breakage}-{'broken-later' if warm else 'broken-before-first-read'}"
            cases.append(pytest.param(breakage, warm, id=label))
    return cases


@pytest.mark.parametrize(("breakage", "warm"), _cases())
def test_one_broken_project_leaves_every_page_working(
    app: Flask,
    admin: FlaskClient,
    two_projects: Callable[[bool], BadProject],
    breakage: str,
    warm: bool,
) -> None:
    via_ini, breaks, reason = BREAKAGES[breakage]
    bad = two_projects(via_ini)
    if warm:  # pages have read the sound project (and cached its graph) before it breaks
        assert "cannot be loaded" not in _walk(admin, ["/projects/bad", "/"], (200,))["/"]
    breaks(bad)
    admin.post("/overview/probe", headers={"HX-Request": "true"})

    lists = _walk(admin, LISTS, (200,))
    good = _walk(admin, GOOD_PAGES, (200,))
    _walk(admin, BAD_PAGES, (200, 422))
    bad_page = _walk(admin, ["/projects/bad", "/projects/bad/revisions/a1"], (200, 422))

    assert "cannot be loaded" not in good["/projects/good"]
    for page in ("/projects/bad", "/projects/bad/revisions/a1"):
        assert reason in bad_page[page], bad_page[page]
        assert str(bad.location) in bad_page[page]
    assert reason in lists["/projects/"]
    assert 'data-target="good-dev" data-state="behind"' in lists["/overview/matrix"]

    listed = _cli_json(app, "project", "list")
    by_name = {row["project"]: row for row in listed}
    assert by_name["good"]["error"] is None
    assert by_name["good"]["revisions"] == 3
    assert reason in by_name["bad"]["error"]
    states = {row["target"]: row for row in _cli_json(app, "status")}
    assert states["good-dev"]["state"] == "behind"
    assert reason in states["bad-dev"]["error"]


def _cli_json(app: Flask, *args: str) -> Any:
    result = app.test_cli_runner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert PLANTED not in result.output
    assert "Traceback" not in result.output
    return json.loads(result.stdout)
