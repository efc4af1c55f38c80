"""``migdash project|env|target add`` and ``migdash user create``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask

from migdash import create_app
from migdash.cli import main
from migdash.config import ensure_instance
from migdash.scaffold import RevisionSpec, write_project
from migdash.services import services_of
from migdash.store.queries import all_environments, all_projects, find_targets


def test_project_add_json(
    cli_json: Callable[..., Any], make_project: Callable[..., Any], app: Flask
) -> None:
    project = make_project("merged")
    data = cli_json("project", "add", "shop", "--script-location", str(project.location))
    assert data == {
        "project": "shop",
        "script_location": str(project.location),
        "revisions": len(project.revisions),
        "error": None,
    }
    with services_of(app).sessions() as session:
        (row,) = all_projects(session)
        assert (row.name, row.script_location, row.version_table, row.track) == (
            "shop",
            str(project.location),
            "alembic_version",
            "heads",
        )


def test_project_add_resolves_a_relative_location(
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = make_project("linear")
    monkeypatch.chdir(project.location.parent)
    data = cli_json(
        "project",
        "add",
        "rel",
        "--script-location",
        project.location.name,
        "--version-table",
        "my_versions",
        "--track",
        "b2",
    )
    assert data["script_location"] == str(project.location.resolve())
    assert data["revisions"] == 3


def test_project_add_text_output(
    cli: Callable[..., Result], make_project: Callable[..., Any]
) -> None:
    project = make_project("two_heads")
    result = cli("project", "add", "p", "--script-location", str(project.location))
    assert result.stdout == "registered project p (4 revisions)\n"


def test_project_with_a_broken_revision_is_registered_with_a_warning(
    cli: Callable[..., Result], cli_json: Callable[..., Any], make_project: Callable[..., Any]
) -> None:
    """An Alembic environment whose revision file does not load is still registered (to be fixed
    in place); registration reads no revision file, the warning comes from loading the graph."""
    project = make_project("linear")
    (bad,) = (project.location / "versions").glob("b2_*.py")
    bad.write_text(bad.read_text().replace("def upgrade():", "def upgrade(:"))
    data = cli_json("project", "add", "typo", "--script-location", str(project.location))
    assert data["revisions"] is None
    assert bad.name in data["error"]
    assert "syntax error on line" in data["error"]
    text = cli("project", "add", "typo2", "--script-location", str(project.location))
    assert "warning:" in text.stdout


PLANTED = "PLANTED-7f3a root:x:0:0:root:/root:/bin/bash"
"""Planted in files offered as script locations: no refusal may quote it."""


def _planted(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{PLANTED}\n")
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: str(_planted(p / "passwd")), "is not an ini file (no section header)"),
        (lambda p: str(write_project(p / "proj", [])) + "/env.py", "is env.py itself"),
        (lambda p: str(_folder(p / "plain")), "has no env.py (nor an alembic.ini)"),
        (lambda p: str(p / "nowhere"), "does not exist"),
    ],
    ids=["plain file", "env.py", "folder without env.py", "missing"],
)
def test_project_add_refuses_what_is_not_an_alembic_environment(
    cli: Callable[..., Result],
    tmp_path: Path,
    app: Flask,
    make: Callable[[Path], str],
    reason: str,
) -> None:
    location = make(tmp_path)
    for args in (["--json"], []):
        result = cli("project", "add", "p", "--script-location", location, *args, ok=False)
        assert result.exit_code == 1
        assert reason in result.output
        assert location in result.output
        assert PLANTED not in result.output
        assert "Traceback" not in result.output
    with services_of(app).sessions() as session:
        assert all_projects(session) == []


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "README").write_text(PLANTED)
    return path


def test_project_add_refuses_a_relative_path_to_a_password_file(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app: Flask
) -> None:
    """``../../etc/passwd`` from the shell's folder: resolved, read as an ini, refused unquoted."""
    passwd = _planted(tmp_path / "etc" / "passwd")
    cwd = tmp_path / "home" / "me"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    result = cli("project", "add", "p", "--script-location", "../../etc/passwd", ok=False)
    assert result.exit_code == 1
    assert f"{passwd} is not an ini file (no section header)" in result.output
    assert PLANTED not in result.output
    with services_of(app).sessions() as session:
        assert all_projects(session) == []


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="no /etc/passwd here")
def test_project_add_refuses_the_real_password_file_without_quoting_it(
    cli: Callable[..., Result],
) -> None:
    first_line = Path("/etc/passwd").read_text().splitlines()[0]
    result = cli("project", "add", "p", "--script-location", "/etc/passwd", ok=False)
    assert "/etc/passwd is not an ini file (no section header)" in result.output
    assert first_line not in result.output


def test_project_edit_refuses_a_bad_location_and_keeps_the_old_one(
    cli: Callable[..., Result], make_project: Callable[..., Any], tmp_path: Path, app: Flask
) -> None:
    project = make_project("linear")
    cli("project", "add", "p", "--script-location", str(project.location))
    plain = _planted(tmp_path / "plain.txt")
    result = cli("project", "edit", "p", "--script-location", str(plain), "--json", ok=False)
    assert result.exit_code == 1
    assert f"{plain} is not an ini file (no section header)" in result.output
    assert PLANTED not in result.output
    with services_of(app).sessions() as session:
        (row,) = all_projects(session)
        assert row.script_location == str(project.location)


# --- MIGDASH_SCRIPT_ROOTS -------------------------------------------------------------------


@pytest.fixture
def rooted(tmp_path: Path) -> Iterator[tuple[Flask, Path]]:
    """An app whose MIGDASH_SCRIPT_ROOTS is tmp_path/allowed (plus its projects root)."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    ensure_instance(tmp_path / "rooted")
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "rooted"),
            "MIGDASH_SECRET_KEY": "test-secret-key",
            "MIGDASH_SCRIPT_ROOTS": str(allowed),
        }
    )
    services_of(app).upgrade_schema()
    yield app, allowed
    services_of(app).probes.close()
    services_of(app).db_engine.dispose()


def _outside_ways(allowed: Path, outside: Path) -> dict[str, str]:
    """Three spellings of one project outside the root: plain, through ``..``, through a link."""
    (allowed / "link").symlink_to(outside)
    return {
        "plain": str(outside),
        "dot-dot": f"{allowed}/../{outside.parent.name}/{outside.name}",
        "symlink": str(allowed / "link"),
    }


def test_project_add_stays_inside_the_script_roots(
    rooted: tuple[Flask, Path], tmp_path: Path
) -> None:
    app, allowed = rooted
    outside = write_project(tmp_path / "outside" / "proj", [RevisionSpec("a1", None, "x")])
    inside = write_project(allowed / "proj", [RevisionSpec("a1", None, "x")])
    runner = app.test_cli_runner()
    for how, location in _outside_ways(allowed, outside).items():
        result = runner.invoke(main, ["project", "add", how, "--script-location", location])
        assert result.exit_code == 1, (how, result.output)
        assert f"{outside} is outside the folders projects may live in" in result.output
        assert str(allowed) in result.output
    added = runner.invoke(main, ["project", "add", "in", "--script-location", str(inside)])
    assert added.exit_code == 0, added.output
    edited = runner.invoke(main, ["project", "edit", "in", "--script-location", str(outside)])
    assert edited.exit_code == 1
    assert "is outside the folders projects may live in" in edited.output
    with services_of(app).sessions() as session:
        assert [(p.name, p.script_location) for p in all_projects(session)] == [("in", str(inside))]


def test_project_init_still_works_under_script_roots(rooted: tuple[Flask, Path]) -> None:
    """`migdash project init` writes under MIGDASH_PROJECTS_ROOT, which always counts as allowed."""
    app, allowed = rooted
    runner = app.test_cli_runner()
    created = runner.invoke(main, ["project", "init", "fresh", "--json"])
    assert created.exit_code == 0, created.output
    location = json.loads(created.stdout)["script_location"]
    assert not location.startswith(str(allowed))
    edited = runner.invoke(
        main, ["project", "edit", "fresh", "--script-location", location, "--track", "heads"]
    )
    assert edited.exit_code == 0, edited.output


def test_duplicate_or_bad_project_is_a_clean_error(
    cli: Callable[..., Result], make_project: Callable[..., Any], app: Flask
) -> None:
    location = str(make_project("linear").location)
    cli("project", "add", "p", "--script-location", location)
    duplicate = cli("project", "add", "p", "--script-location", location, ok=False)
    assert duplicate.exit_code == 1
    assert "Error: a project named 'p' already exists" in duplicate.output
    bad = cli("project", "add", "no good", "--script-location", location, ok=False)
    assert bad.exit_code == 1
    assert "project name 'no good' is not allowed" in bad.output
    assert "hint: Use 1–100 letters" in bad.output
    for result in (duplicate, bad):
        assert "Traceback" not in result.output
    with services_of(app).sessions() as session:
        assert [p.name for p in all_projects(session)] == ["p"]


def test_env_add_orders_by_creation(cli_json: Callable[..., Any], app: Flask) -> None:
    created = [cli_json("env", "add", name) for name in ("dev", "staging")]
    created.append(cli_json("env", "add", "prod", "--protected"))
    assert [(e["environment"], e["protected"]) for e in created] == [
        ("dev", False),
        ("staging", False),
        ("prod", True),
    ]
    positions = [e["position"] for e in created]
    assert positions == sorted(positions)
    assert len(set(positions)) == 3
    with services_of(app).sessions() as session:
        assert [(e.name, e.protected) for e in all_environments(session)] == [
            ("dev", False),
            ("staging", False),
            ("prod", True),
        ]


def test_env_add_with_position_goes_where_asked(cli_json: Callable[..., Any], app: Flask) -> None:
    cli_json("env", "add", "dev")
    cli_json("env", "add", "prod", "--position", "10")
    assert cli_json("env", "add", "qa", "--position", "5")["position"] == 5
    with services_of(app).sessions() as session:
        assert [e.name for e in all_environments(session)] == ["dev", "qa", "prod"]


def test_target_add_creates_a_missing_environment(
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    app: Flask,
) -> None:
    project = make_project("linear")
    cli_json("project", "add", "linear", "--script-location", str(project.location))
    cli_json("env", "add", "dev")
    url = make_target(project, at="a1")
    data = cli_json(
        "target",
        "add",
        "db1",
        "--project",
        "linear",
        "--env",
        "canary",
        "--url",
        url,
        "--tag",
        "eu",
        "--tag",
        "team:a",
    )
    assert data == {
        "target": "db1",
        "project": "linear",
        "environment": "canary",
        "url": url,
        "tags": ["eu", "team:a"],
    }
    with services_of(app).sessions() as session:
        assert [e.name for e in all_environments(session)] == ["dev", "canary"]
        (target,) = find_targets(session)
        assert (target.environment.name, target.url) == ("canary", url)


def test_target_add_masks_the_password(
    cli: Callable[..., Result],
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    app: Flask,
) -> None:
    project = make_project("linear")
    cli_json("project", "add", "linear", "--script-location", str(project.location))
    url = "postgresql+psycopg://app:pa55word-x@db.internal:5432/app"
    data = cli_json("target", "add", "pg", "--project", "linear", "--env", "prod", "--url", url)
    assert "pa55word-x" not in str(data)
    assert data["url"] == "postgresql+psycopg://app:***@db.internal:5432/app"
    text = cli("target", "add", "pg2", "--project", "linear", "--env", "prod", "--url", url)
    assert "pa55word-x" not in text.output
    with services_of(app).sessions() as session:
        assert {t.url for t in find_targets(session)} == {url}  # stored as given


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "nope", "--url", "sqlite://"], "no project named 'nope'"),
        (["--project", "linear", "--url", "not a url"], "that is not a database URL"),
    ],
)
def test_target_add_errors_are_clean(
    cli: Callable[..., Result],
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    args: list[str],
    message: str,
) -> None:
    cli_json("project", "add", "linear", "--script-location", str(make_project().location))
    result = cli("target", "add", "t", "--env", "dev", *args, ok=False)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_user_create_makes_an_account_that_can_sign_in(
    cli_json: Callable[..., Any], app: Flask
) -> None:
    data = cli_json("user", "create", "root", "--role", "admin", "--password", "s3cure-pass")
    assert data == {"username": "root", "role": "admin"}
    client = app.test_client()
    assert (
        client.post("/login", data={"username": "root", "password": "wrong-pass"}).status_code
        == 200
    )
    response = client.post("/login", data={"username": "root", "password": "s3cure-pass"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_user_create_prompts_for_the_password(cli: Callable[..., Result], app: Flask) -> None:
    result = cli("user", "create", "viewer1", input="long-enough\nlong-enough\n")
    assert "created user viewer1 (viewer)" in result.output
    assert "long-enough" not in result.output
    client = app.test_client()
    client.post("/login", data={"username": "viewer1", "password": "long-enough"})
    assert client.get("/").status_code == 200
    assert client.get("/admin/").status_code == 403


def test_user_create_refuses_short_passwords_and_duplicates(cli: Callable[..., Result]) -> None:
    short = cli("user", "create", "bob", "--password", "short", ok=False)
    assert short.exit_code == 1
    assert "at least 8 characters" in short.output
    cli("user", "create", "bob", "--password", "long-enough")
    again = cli("user", "create", "bob", "--password", "long-enough", ok=False)
    assert again.exit_code == 1
    assert "a user named 'bob' already exists" in again.output
    assert "Traceback" not in short.output + again.output


def test_rotate_key_re_encrypts_urls_with_the_new_first_key(
    tmp_path: Path, make_project: Callable[..., Any]
) -> None:
    """Old key only -> add a target; new,old -> rotate; new only -> the URL still reads."""
    import subprocess
    import sys

    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    project = make_project("linear")
    base = {"PATH": "/usr/bin:/bin", "MIGDASH_INSTANCE": str(tmp_path / "inst")}

    def migdash(key: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "migdash", *args],
            env={**base, "MIGDASH_ENCRYPTION_KEY": key},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    migdash(old, "project", "add", "p", "--script-location", str(project.location))
    migdash(old, "target", "add", "t", "--project", "p", "--env", "dev", "--url", "sqlite:////x.db")
    assert "re-encrypted 1" in migdash(f"{new},{old}", "db", "rotate-key")
    assert "sqlite:////x.db" in migdash(new, "target", "list")
