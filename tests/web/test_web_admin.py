"""Registry admin: add, edit and remove projects, environments and targets through the forms."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from migdash import create_app
from migdash.config import ensure_instance
from migdash.scaffold import RevisionSpec, write_project
from migdash.services import services_of
from migdash.store.models import Role
from migdash.store.queries import all_environments, all_projects, find_targets
from migdash.store.users import create_user
from tests.web.pagetext import section


@pytest.fixture
def admin(login: Callable[..., FlaskClient]) -> FlaskClient:
    return login(Role.ADMIN)


@pytest.fixture
def read(app: Flask) -> Iterator[Callable[[], Session]]:
    """A fresh session each call, so what the web committed is what we see."""
    opened: list[Session] = []

    def open_session() -> Session:
        session = services_of(app).sessions()
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()


SEEN = re.compile(r'<input type="hidden" name="seen" value="([0-9a-f]{64})">')


def remove_confirmed(admin: FlaskClient, kind: str, name: str) -> tuple[str, int]:
    """Follow the registry's remove link: read the confirmation page, then confirm it."""
    index = admin.get("/admin/").get_data(as_text=True)
    assert f'href="/admin/{kind}/{name}/delete"' in index
    page = admin.get(f"/admin/{kind}/{name}/delete")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    seen = SEEN.search(body)
    assert seen, body
    response = admin.post(f"/admin/{kind}/{name}/delete", data={"seen": seen.group(1)})
    return body, response.status_code


def project_form(name: str, location: str, **extra: str) -> dict[str, str]:
    return {
        "name": name,
        "script_location": location,
        "version_table": "alembic_version",
        "version_table_schema": "",
        "track": "heads",
        "url_mode": "config",
        "url_env_var": "",
        **extra,
    }


def test_project_crud(
    admin: FlaskClient, make_project: Callable[..., Any], read: Callable[[], Session]
) -> None:
    project = make_project("linear")
    assert admin.get("/admin/projects/new").status_code == 200
    response = admin.post(
        "/admin/projects/new", data=project_form("billing", str(project.location))
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    (row,) = all_projects(read())
    assert (row.name, row.script_location, row.track) == ("billing", str(project.location), "heads")
    index = admin.get("/admin/").get_data(as_text=True)
    assert "Project billing saved." in index
    assert str(project.location) in section(index, "<h2>Projects</h2>", "</table>")
    assert admin.get("/projects/billing").status_code == 200

    edit = admin.get("/admin/projects/billing/edit").get_data(as_text=True)
    assert f'value="{project.location}"' in edit
    response = admin.post(
        "/admin/projects/billing/edit",
        data=project_form(
            "billing2",
            str(project.location),
            track="b2",
            version_table="my_versions",
            url_mode="env",
            url_env_var="DATABASE_URL",
        ),
    )
    assert response.status_code == 302
    (row,) = all_projects(read())
    assert (row.name, row.track, row.version_table) == ("billing2", "b2", "my_versions")
    assert (row.url_mode, row.url_env_var) == ("env", "DATABASE_URL")
    edit = admin.get("/admin/projects/billing2/edit").get_data(as_text=True)
    assert '<option selected value="env">' in edit

    assert len(all_projects(read())) == 1  # reading the confirmation page removes nothing
    _, status = remove_confirmed(admin, "projects", "billing2")
    assert status == 302
    assert all_projects(read()) == []
    assert project.location.is_dir()  # files are never touched


def test_project_form_rejects_missing_fields_and_bad_names(
    admin: FlaskClient, read: Callable[[], Session]
) -> None:
    response = admin.post("/admin/projects/new", data=project_form("", ""))
    assert response.status_code == 200
    assert response.get_data(as_text=True).count('class="err"') == 2
    response = admin.post("/admin/projects/new", data=project_form("p", "/tmp/x", url_mode="bogus"))
    assert response.status_code == 200
    assert "Not a valid choice" in response.get_data(as_text=True)
    response = admin.post("/admin/projects/new", data=project_form("bad name!", "/tmp/x"))
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "project name &#39;bad name!&#39; is not allowed" in body
    assert "Traceback" not in body
    assert all_projects(read()) == []


def test_duplicate_project_is_a_409(
    admin: FlaskClient, make_project: Callable[..., Any], read: Callable[[], Session]
) -> None:
    location = str(make_project("linear").location)
    admin.post("/admin/projects/new", data=project_form("dup", location))
    response = admin.post("/admin/projects/new", data=project_form("dup", location))
    assert response.status_code == 409
    assert "already exists" in response.get_data(as_text=True)
    assert len(all_projects(read())) == 1


def test_environment_crud(admin: FlaskClient, read: Callable[[], Session]) -> None:
    for name in ("dev", "prod"):
        response = admin.post("/admin/environments/new", data={"name": name, "position": ""})
        assert response.status_code == 302
    admin.post(
        "/admin/environments/new", data={"name": "staging", "position": "1", "protected": "y"}
    )
    admin.post(
        "/admin/environments/prod/edit", data={"name": "prod", "position": "5", "protected": "y"}
    )
    rows = [(e.name, e.protected) for e in all_environments(read())]
    assert rows == [("dev", False), ("staging", True), ("prod", True)]
    edit = admin.get("/admin/environments/staging/edit").get_data(as_text=True)
    assert 'value="staging"' in edit
    (checkbox,) = re.findall(r'<input[^>]*name="protected"[^>]*>', edit)
    assert "checked" in checkbox
    admin.post("/admin/environments/staging/edit", data={"name": "stage", "position": "1"})
    assert [(e.name, e.protected) for e in all_environments(read())][1] == ("stage", False)
    assert remove_confirmed(admin, "environments", "stage")[1] == 302
    assert [e.name for e in all_environments(read())] == ["dev", "prod"]


@pytest.fixture
def project_and_env(admin: FlaskClient, make_project: Callable[..., Any]) -> Any:
    project = make_project("linear")
    admin.post("/admin/projects/new", data=project_form("linear", str(project.location)))
    admin.post("/admin/environments/new", data={"name": "dev", "position": ""})
    admin.post("/admin/environments/new", data={"name": "prod", "position": ""})
    return project


def test_target_crud(
    admin: FlaskClient,
    project_and_env: Any,
    make_target: Callable[..., str],
    read: Callable[[], Session],
) -> None:
    url = make_target(project_and_env, at="a1")
    form = admin.get("/admin/targets/new").get_data(as_text=True)
    assert '<option value="linear">' in form
    response = admin.post(
        "/admin/targets/new",
        data={
            "name": "db1",
            "project": "linear",
            "environment": "dev",
            "url": url,
            "tags": "eu, team:a",
            "version_table": "",
            "version_table_schema": "",
        },
    )
    assert response.status_code == 302
    (target,) = find_targets(read())
    assert (target.name, target.environment.name, target.url) == ("db1", "dev", url)
    assert target.tags == ["eu", "team:a"]

    # the page shows the target; its state comes from a real probe
    matrix = admin.post("/overview/probe", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'data-target="db1" data-state="behind"' in matrix

    edit = admin.get("/admin/targets/db1/edit").get_data(as_text=True)
    assert url not in edit  # the stored URL is never sent back
    response = admin.post(
        "/admin/targets/db1/edit",
        data={
            "name": "db1",
            "project": "linear",
            "environment": "prod",
            "url": "",
            "tags": "eu",
            "version_table": "",
            "version_table_schema": "",
        },
    )
    assert response.status_code == 302
    (target,) = find_targets(read())
    assert (target.environment.name, target.url, target.tags) == ("prod", url, ["eu"])

    page, status = remove_confirmed(admin, "targets", "db1")
    assert "Target db1 is unregistered." in page
    assert status == 302
    assert find_targets(read()) == []


def test_new_target_needs_a_url(
    admin: FlaskClient, project_and_env: Any, read: Callable[[], Session]
) -> None:
    response = admin.post(
        "/admin/targets/new",
        data={"name": "db1", "project": "linear", "environment": "dev", "url": ""},
    )
    assert response.status_code == 400
    assert "a new target needs a database URL" in response.get_data(as_text=True)
    assert find_targets(read()) == []


def test_target_url_password_is_masked_in_the_registry(
    admin: FlaskClient, project_and_env: Any
) -> None:
    admin.post(
        "/admin/targets/new",
        data={
            "name": "pg",
            "project": "linear",
            "environment": "dev",
            "url": "postgresql+psycopg://app:hunter22@db.example/app",
        },
    )
    html = admin.get("/admin/").get_data(as_text=True)
    assert "hunter22" not in html
    assert "app:***@db.example/app" in section(html, "<h2>Targets</h2>", "</table>")


def test_environment_with_targets_cannot_be_removed(
    admin: FlaskClient,
    project_and_env: Any,
    make_target: Callable[..., str],
    read: Callable[[], Session],
) -> None:
    admin.post(
        "/admin/targets/new",
        data={
            "name": "db1",
            "project": "linear",
            "environment": "dev",
            "url": make_target(project_and_env),
        },
    )
    page = admin.get("/admin/environments/dev/delete").get_data(as_text=True)
    assert "still holds 1 target(s)" in page
    assert 'name="seen"' not in page  # no confirm button to press
    response = admin.post("/admin/environments/dev/delete")
    assert response.status_code == 409
    assert "still holds 1 target(s)" in response.get_data(as_text=True)
    assert [e.name for e in all_environments(read())] == ["dev", "prod"]


def test_removing_a_project_removes_its_targets(
    admin: FlaskClient,
    project_and_env: Any,
    make_target: Callable[..., str],
    read: Callable[[], Session],
) -> None:
    admin.post(
        "/admin/targets/new",
        data={
            "name": "db1",
            "project": "linear",
            "environment": "dev",
            "url": make_target(project_and_env),
        },
    )
    page, status = remove_confirmed(admin, "projects", "linear")
    assert "Project linear is unregistered with its 1 target(s): db1." in page
    assert status == 302
    assert find_targets(read()) == []
    assert all_projects(read()) == []


def test_unknown_kind_or_name_is_refused(admin: FlaskClient, project_and_env: Any) -> None:
    assert admin.post("/admin/users/linear/delete").status_code == 400
    assert admin.get("/admin/users/linear/delete").status_code == 400
    assert admin.post("/admin/targets/nope/delete").status_code == 404
    assert admin.get("/admin/targets/nope/delete").status_code == 404
    assert admin.get("/admin/projects/nope/edit").status_code == 404


def test_admin_creates_a_new_alembic_project_under_the_projects_root(app: Any, login: Any) -> None:
    client = login("admin")
    response = client.post("/admin/projects/init", data={"name": "fresh", "template": "generic"})
    assert response.status_code == 302
    root = Path(app.config["MIGDASH_PROJECTS_ROOT"])
    assert (root / "fresh" / "migrations" / "env.py").is_file()
    assert (root / "fresh" / "alembic.ini").is_file()
    page = client.get("/projects/fresh").get_data(as_text=True)
    assert "cannot be loaded" not in page
    refused = client.post("/admin/projects/init", data={"name": "../escape", "template": "generic"})
    assert refused.status_code == 400
    assert not (root.parent / "escape").exists()


# --- script locations that are not Alembic environments -------------------------------------

PLANTED = "PLANTED-7f3a root:x:0:0:root:/root:/bin/bash"
"""Planted in files offered as script locations: no refusal may quote it."""


def _planted(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{PLANTED}\n")
    return path


def _plain_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "README").write_text(PLANTED)
    return path


REFUSALS: dict[str, tuple[Callable[[Path], str], str]] = {
    "relative path to a password file": (
        lambda p: "../../etc/passwd",
        "the script location &#39;../../etc/passwd&#39; is not an absolute path",
    ),
    "absolute path to a password file": (
        lambda p: str(_planted(p / "etc" / "passwd")),
        "passwd is not an ini file (no section header)",
    ),
    "env.py itself": (
        lambda p: str(write_project(p / "proj", []) / "env.py"),
        "env.py is env.py itself; give the folder that holds it",
    ),
    "folder without env.py": (
        lambda p: str(_plain_folder(p / "plain")),
        "plain has no env.py (nor an alembic.ini)",
    ),
    "ini pointing nowhere": (
        lambda p: str(_bad_ini(p / "ini" / "alembic.ini")),
        "which does not exist",
    ),
}


def _bad_ini(path: Path) -> Path:
    path.parent.mkdir(parents=True)
    path.write_text(f"[alembic]\nscript_location = %(here)s/gone\n# {PLANTED}\n")
    return path


@pytest.mark.parametrize("case", list(REFUSALS))
def test_project_form_refuses_a_location_that_is_not_an_alembic_environment(
    admin: FlaskClient,
    make_project: Callable[..., Any],
    read: Callable[[], Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    make, reason = REFUSALS[case]
    cwd = tmp_path / "srv" / "app"
    cwd.mkdir(parents=True)
    _planted(tmp_path / "etc" / "passwd")  # where ../../etc/passwd would lead from the cwd
    monkeypatch.chdir(cwd)
    location = make(tmp_path)

    response = admin.post("/admin/projects/new", data=project_form("p", location))

    body = response.get_data(as_text=True)
    assert response.status_code == 400
    (field,) = re.findall(r"<label>Script location.*?</label>", body, re.DOTALL)
    assert reason in field  # shown beside the field it is about
    assert PLANTED not in body
    assert "Traceback" not in body
    assert all_projects(read()) == []

    project = make_project("linear")
    assert (
        admin.post("/admin/projects/new", data=project_form("p", str(project.location))).status_code
        == 302
    )
    response = admin.post("/admin/projects/p/edit", data=project_form("p2", location))
    assert response.status_code == 400
    assert reason in response.get_data(as_text=True)
    (row,) = all_projects(read())
    assert (row.name, row.script_location) == ("p", str(project.location))


def test_a_project_that_broke_on_disk_can_still_be_edited(
    admin: FlaskClient, make_project: Callable[..., Any], read: Callable[[], Session]
) -> None:
    """The stored location is not checked again unless it changes."""
    project = make_project("linear")
    admin.post("/admin/projects/new", data=project_form("p", str(project.location)))
    shutil.rmtree(project.location)

    response = admin.post(
        "/admin/projects/p/edit", data=project_form("p", str(project.location), track="b2")
    )

    assert response.status_code == 302
    (row,) = all_projects(read())
    assert (row.track, row.script_location) == ("b2", str(project.location))
    assert "does not exist" in admin.get("/projects/p").get_data(as_text=True)


@pytest.fixture
def rooted_admin(tmp_path: Path) -> Iterator[tuple[FlaskClient, Flask, Path]]:
    """A signed-in admin on an app whose MIGDASH_SCRIPT_ROOTS is tmp_path/allowed."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    ensure_instance(tmp_path / "rooted")
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "rooted"),
            "MIGDASH_SECRET_KEY": "test-secret-key",
            "WTF_CSRF_ENABLED": False,
            "MIGDASH_SCRIPT_ROOTS": str(allowed),
        }
    )
    services = services_of(app)
    services.upgrade_schema()
    with services.sessions() as session:
        create_user(session, "root-admin", "correct-horse", Role.ADMIN)
        session.commit()
    client = app.test_client()
    client.post("/login", data={"username": "root-admin", "password": "correct-horse"})
    yield client, app, allowed
    services.probes.close()
    services.db_engine.dispose()


def test_project_form_stays_inside_the_script_roots(
    rooted_admin: tuple[FlaskClient, Flask, Path], tmp_path: Path
) -> None:
    client, app, allowed = rooted_admin
    outside = write_project(tmp_path / "outside" / "proj", [RevisionSpec("a1", None, "x")])
    (allowed / "link").symlink_to(outside)
    escaping_ini = allowed / "ini" / "alembic.ini"
    escaping_ini.parent.mkdir()
    escaping_ini.write_text(f"[alembic]\nscript_location = {outside}\n")
    spellings = [
        str(outside),
        f"{allowed}/../outside/proj",
        str(allowed / "link"),
        str(escaping_ini),  # inside, but its script folder is not
    ]
    for location in spellings:
        response = client.post("/admin/projects/new", data=project_form("p", location))
        body = response.get_data(as_text=True)
        assert response.status_code == 400, location
        assert f"{outside} is outside the folders projects may live in" in body, location
    inside = write_project(allowed / "proj", [RevisionSpec("a1", None, "x")])
    via_dots = f"{allowed}/ini/../proj"
    response = client.post("/admin/projects/new", data=project_form("p", via_dots))
    assert response.status_code == 302
    with services_of(app).sessions() as session:
        assert [(p.name, p.script_location) for p in all_projects(session)] == [("p", str(inside))]
    init = client.post("/admin/projects/init", data={"name": "fresh", "template": "generic"})
    assert init.status_code == 302  # the projects root always counts as allowed
