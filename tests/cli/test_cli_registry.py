"""``migdash project|env|target add`` and ``migdash user create``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask

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


def test_broken_project_is_registered_with_a_warning(
    cli: Callable[..., Result], cli_json: Callable[..., Any], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    data = cli_json("project", "add", "gone", "--script-location", str(missing))
    assert data["revisions"] is None
    assert str(missing) in data["error"]
    text = cli("project", "add", "gone2", "--script-location", str(missing))
    assert "warning:" in text.stdout


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
