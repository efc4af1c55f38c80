"""The README's production recipe, as written, from the built wheel.

``python -m build --wheel``, the wheel installed into a fresh virtualenv, then
``migdash db upgrade`` on PostgreSQL, ``gunicorn 'migdash.wsgi:app'`` with two
workers and a separate ``migdash worker`` on Redis; a job requested through
the HTTP API runs on that worker.  Nothing comes from the checkout: every
process runs outside it, without ``PYTHONPATH``, and must import the
installed ``migdash``.

The fresh virtualenv gets migdash's dependencies by a ``.pth`` line naming
the site-packages of the interpreter running the tests (``./dev`` installed
them there from the same ``pyproject.toml``), so pip installs the wheel with
``--no-index`` and still checks every requirement: the test runs offline and
in a few seconds.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.jobs.conftest import redis_server, redis_url  # noqa: F401 - fixtures used below

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"succeeded", "failed", "refused", "interrupted", "cancelled", "rejected"}


def build_wheel(outdir: Path) -> Path:
    subprocess.run(  # noqa: S603 - our own build
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = outdir.glob("migdash-*.whl")
    return wheel


def fresh_venv(where: Path, wheel: Path) -> Path:
    """A new virtualenv with *wheel* installed by pip; returns its ``bin`` folder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "migdash_test_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    subprocess.run(  # noqa: S603 - pip on our own wheel
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        env=clean_environment(),
    )
    return where / "bin"


def clean_environment(**settings: str) -> dict[str, str]:
    """This process's environment without PYTHONPATH or MIGDASH_*, plus *settings*."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "VIRTUAL_ENV"} and not k.startswith("MIGDASH_")
    }
    return {**env, **settings}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def call(url: str, token: str | None = None, body: Any = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - http only
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a long-running process (output to a log in tmp_path); stopped at teardown."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 - the installed migdash and gunicorn
                argv, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
            )
        started.append((process, log))
        return process

    yield start
    for process, log in started:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(f"--- {log.name} (exit {process.returncode}) ---")
        print(log.read_text(errors="replace")[-3000:])


def wait_until_serving(base: str, server: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "gunicorn exited; see gunicorn.log"
        try:
            if call(f"{base}/login")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer within {timeout} s")


def wait_for_job(base: str, token: str, job_id: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = call(f"{base}/api/v1/jobs/{job_id}", token)
        assert status == 200, body
        job: dict[str, Any] = json.loads(body)
        if job["state"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {job['state']} after {timeout} s: {job}")
        time.sleep(0.2)


@pytest.mark.server
def test_the_readme_production_recipe_runs_a_job_from_the_installed_wheel(
    tmp_path: Path,
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    postgres_url: str,
    redis_url: str,  # noqa: F811 - the fixture imported above
    spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    bin_dir = fresh_venv(tmp_path / "venv", build_wheel(tmp_path / "dist"))
    env = clean_environment(
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        MIGDASH_DATABASE_URL=postgres_url,
        MIGDASH_SECRET_KEY="deploy-test-secret-key",
        MIGDASH_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        MIGDASH_RATELIMIT_STORAGE_URL=redis_url,
        MIGDASH_QUEUE_URL=redis_url,
        MIGDASH_INSTANCE=str(tmp_path / "instance"),
    )

    def migdash(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - the installed console script
            [str(bin_dir / "migdash"), *args],
            env=env,
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    installed = subprocess.run(  # noqa: S603
        [str(bin_dir / "python"), "-c", "import migdash.wsgi as m; print(m.__file__)"],
        env={**env, "MIGDASH_INSTANCE": str(tmp_path / "probe-instance")},
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert installed.startswith(str(tmp_path / "venv")), installed

    project = make_project("linear", name="shop")
    url = make_target(project, at="a1", name="shop1")
    migdash("db", "upgrade")
    migdash("user", "create", "admin", "--role", "admin", "--password", "correct-horse")
    token = json.loads(migdash("token", "create", "ci", "--user", "admin", "--json"))["token"]
    migdash("project", "add", "shop", "--script-location", str(project.location))
    migdash("target", "add", "shop1", "--project", "shop", "--env", "dev", "--url", url)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    python = str(bin_dir / "python")
    server = spawn(
        "gunicorn",
        [python, "-m", "gunicorn", "--workers", "2", "--threads", "8", "--worker-class"]
        + ["gthread", "--bind", f"127.0.0.1:{port}", "migdash.wsgi:app"],
        env,
    )
    worker = spawn("worker", [str(bin_dir / "migdash"), "worker", "--threads", "4"], env)
    wait_until_serving(base, server)
    status, htmx = call(f"{base}/static/vendor/htmx.min.js")
    assert (status, b"htmx" in htmx) == (200, True), "the pinned htmx is served from the wheel"

    status, body = call(
        f"{base}/api/v1/jobs", token, {"target": "shop1", "action": "upgrade", "revision": "heads"}
    )
    assert status == 201, body
    job = wait_for_job(base, token, json.loads(body)["id"])

    assert job["state"] == "succeeded", job
    assert job["worker"].endswith(f":{worker.pid}"), "the separate worker process ran it"
    assert job["result_revisions"] == ["c3"]
    with sqlite3.connect(url.removeprefix("sqlite:///")) as target:
        assert target.execute("SELECT version_num FROM alembic_version").fetchall() == [("c3",)]
