"""Project code never runs beside the keys, and text sent to a revision file never becomes code.

A planted revision file records, each time it is imported, the process it
runs in and that process's environment.  After every page of its project is
opened (the web process, here this test process) and a job runs on one of
its targets (a real ``migdash worker`` process), the records show it ran
only in child processes, none of which saw the encryption key, the secret
key, the key files' contents or the metadata DB URL.

Then revision and merge messages with triple quotes, backslashes, NUL,
newlines and Python statements are requested through the web: each is
either refused with a message, or written so that the file's docstring is
the message and the marker its statements would write never appears.  A
project whose template puts the message in a comment gets its hostile files
refused by the syntax-tree check and removed.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from migdash.scaffold import RevisionSpec, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Job, JobState

SPY = """
import json as _json, os as _os, sys as _sys
with open({log!r}, "a") as _log:
    _log.write(_json.dumps({{"pid": _os.getpid(), "env": dict(_os.environ),
                            "argv": _sys.argv}}) + "\\n")
"""


def planted_project(root: Path, log: Path) -> Path:
    """A linear project whose second revision reports every import to *log*."""
    location = write_project(
        root,
        [
            RevisionSpec("a1", None, "create accounts", table="accounts"),
            RevisionSpec("b2", "a1", "the spy", table="spied"),
        ],
    )
    spy = next((location / "versions").glob("b2*.py"))
    text = spy.read_text()
    head, _, rest = text.partition("\nrevision = ")
    spy.write_text(head + SPY.format(log=str(log)) + "\nrevision = " + rest)
    return location


def records(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.fixture
def keys(app: Flask, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The secrets a child must never see, also put in this process's environment."""
    instance = Path(services_of(app).settings["MIGDASH_INSTANCE"])
    secrets = {
        "MIGDASH_ENCRYPTION_KEY": (instance / "encryption.key").read_text().strip(),
        "MIGDASH_SECRET_KEY": "test-secret-key",
        "MIGDASH_DATABASE_URL": services_of(app).settings["MIGDASH_DATABASE_URL"],
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    return secrets


@pytest.fixture
def worker_process(app: Flask, tmp_path: Path, keys: dict[str, str]) -> Iterator[int]:
    """A real ``migdash worker`` holding the keys in its environment; yields its pid."""
    env = {**os.environ, **keys, "MIGDASH_INSTANCE": services_of(app).settings["MIGDASH_INSTANCE"]}
    env["MIGDASH_JOB_HEARTBEAT_TIMEOUT"] = "5"
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "migdash", "worker", "--threads", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    yield process.pid
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def test_a_planted_revision_never_runs_beside_the_keys(
    app: Flask,
    login: Callable[..., FlaskClient],
    make_target: Callable[..., str],
    keys: dict[str, str],
    worker_process: int,
    wait_for_jobs: Callable[..., list[Any]],
    tmp_path: Path,
) -> None:
    log = tmp_path / "spy.log"
    location = planted_project(tmp_path / "projects" / "spied", log)
    fixture = type("P", (), {"location": location})()
    url = make_target(fixture, at="a1", name="spied-db")
    with services_of(app).sessions() as session:
        registry.add_project(session, "spied", str(location))
        registry.add_target(session, "spied-dev", project="spied", environment="dev", url=url)
        session.commit()
    log.unlink()  # setting the target up ran Alembic in this process; from here on it must not
    web = login("admin")
    pages = [
        "/",
        "/overview/matrix",
        "/projects/",
        "/projects/spied",
        "/projects/spied/graph.svg",
        "/projects/spied/revisions/b2",
        "/projects/spied/revisions/a1",
        "/targets/spied-dev",
        "/actions/targets/spied-dev?action=upgrade&revision=heads",
        "/admin/",
    ]
    for path in pages:
        assert web.get(path).status_code == 200, path
    response = web.post("/actions/targets/spied-dev", data={"action": "upgrade", "revision": "b2"})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    (job,) = wait_for_jobs([job_id], timeout=60)
    assert job.state == JobState.SUCCEEDED, job.error

    seen = records(log)
    assert len(seen) >= 3, "the spy ran: graph load, plan and job children at least"
    pids = {record["pid"] for record in seen}
    assert os.getpid() not in pids, "project code ran in the web process"
    assert worker_process not in pids, "project code ran in the worker process"
    for record in seen:
        leaked = {
            name
            for name, secret in keys.items()
            for value in [*record["env"].values(), *record["argv"]]
            if secret in value
        }
        assert leaked == set(), (leaked, sorted(record["env"]))
        assert not any(name.startswith("MIGDASH_") for name in record["env"]), record["env"]


HOSTILE_MESSAGES = [
    'closes """ and reopens """ the docstring',
    "single quotes ''' too",
    'x"""\nimport pathlib; pathlib.Path({marker!r}).write_text("ran")\n"""',
    "x'''\nimport pathlib; pathlib.Path({marker!r}).write_text('ran')\n'''",
    'a backslash \\ and an escape \\n and a quote \\" in the middle',
    "ends with a backslash \\",
    "two lines\nimport pathlib; pathlib.Path({marker!r}).write_text('ran')",
    "<script>alert(1)</script> {{ jinja }} ${{mako}}",
]


def written_file(job: Job) -> Path:
    assert job.output, job.error
    assert job.output.get("new_file"), job.error
    return Path(job.output["new_file"])


@pytest.mark.parametrize("kind", ["revision", "merge"])
def test_hostile_messages_are_text_in_the_file_or_refused(
    app: Flask,
    login: Callable[..., FlaskClient],
    make_project: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Job],
    tmp_path: Path,
    kind: str,
) -> None:
    marker = tmp_path / "MARKER"
    web = login("admin")
    for number, template in enumerate(HOSTILE_MESSAGES):
        message = template.format(marker=str(marker))
        project = make_project("two_heads", name=f"{kind}{number}")
        with services_of(app).sessions() as session:
            registry.add_project(session, project.name, str(project.location))
            session.commit()
        data = {"message": message}
        if kind == "merge":
            data["heads"] = ["c3", "d4"]  # type: ignore[assignment]
        else:
            data["head"] = "c3"
        response = web.post(f"/actions/projects/{project.name}/{kind}", data=data)
        assert response.status_code == 302, (message, response.get_data(as_text=True)[:800])
        job_id = int(response.headers["Location"].rsplit("/", 1)[1])
        run_queue()
        job = load_job(job_id)
        assert job.state == JobState.SUCCEEDED, (message, job.error)
        path = written_file(job)
        docstring = ast.get_docstring(ast.parse(path.read_text()), clean=False) or ""
        assert docstring.startswith(message.strip()), (message, docstring[:200])
        assert web.get(f"/projects/{project.name}").status_code == 200
        assert not marker.exists(), f"the message ran as code: {message!r}"


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ("has a NUL \x00 inside", "NUL character"),
        ("a carriage return\rimport os", "control character"),
        ("   ", "a message is required"),
        ("x" * 1001, "at most 1000"),
    ],
)
def test_messages_that_cannot_be_text_are_refused_before_anything_is_queued(
    app: Flask,
    login: Callable[..., FlaskClient],
    make_project: Callable[..., Any],
    message: str,
    problem: str,
) -> None:
    project = make_project("linear", name="refusing")
    with services_of(app).sessions() as session:
        registry.add_project(session, project.name, str(project.location))
        session.commit()
    web = login("admin")
    response = web.post(f"/actions/projects/{project.name}/revision", data={"message": message})
    assert response.status_code == 400
    assert problem in response.get_data(as_text=True)
    with services_of(app).sessions() as session:
        assert session.query(Job).count() == 0


COMMENT_TEMPLATE = '''"""A project whose template also puts the message in a comment."""
# ${message}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade():
    pass


def downgrade():
    pass
'''


def test_a_template_that_lets_a_message_out_gets_the_file_refused_and_removed(
    app: Flask,
    login: Callable[..., FlaskClient],
    make_project: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Job],
    tmp_path: Path,
) -> None:
    marker = tmp_path / "MARKER"
    project = make_project("linear", name="commenting")
    (project.location / "script.py.mako").write_text(COMMENT_TEMPLATE)
    with services_of(app).sessions() as session:
        registry.add_project(session, project.name, str(project.location))
        session.commit()
    before = sorted(p.name for p in (project.location / "versions").glob("*.py"))
    web = login("admin")

    safe = web.post(f"/actions/projects/{project.name}/revision", data={"message": "plain"})
    run_queue()
    assert load_job(int(safe.headers["Location"].rsplit("/", 1)[1])).state == JobState.SUCCEEDED

    statement = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')"
    for hostile, why in [
        ("line one\nimport os", "changed the structure"),  # valid Python: the trees differ
        (f"line one\n{statement}", "would not be valid Python"),  # escaped quotes break it
    ]:
        response = web.post(f"/actions/projects/{project.name}/revision", data={"message": hostile})
        job_id = int(response.headers["Location"].rsplit("/", 1)[1])
        run_queue()
        job = load_job(job_id)
        assert job.state == JobState.FAILED
        assert "UnsafeRevisionFile" in (job.error or "")
        assert why in (job.error or ""), job.error
        assert "the file was removed" in (job.error or "")
    after = sorted(p.name for p in (project.location / "versions").glob("*.py"))
    assert len(after) == len(before) + 1, "only the plain revision was kept"
    assert not marker.exists()
    assert web.get(f"/projects/{project.name}").status_code == 200
