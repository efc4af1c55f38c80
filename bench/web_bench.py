"""The overview of a 1,000-target fleet: server time in process, then gunicorn under load.

Builds its own fixture (a 30-revision project, N SQLite targets copied from a
few real templates, one metadata DB) and prints, in one run:

  * overview server time  - ``GET /`` through the Flask test client (what the
                            app spends; no network), warm median / p95 / size,
                            against the issue's goal of 50 ms;
  * matrix fragment        - ``GET /overview/matrix`` with fresh snapshots (the
                            auto-refresh when nothing is due for a probe);
  * gunicorn under load    - ``wrk`` with 32 connections against ``/`` served by
                            gunicorn with 2 workers: requests/s, p50, p99, errors;
                            the same against ``/login`` (a page that reads no
                            targets) as the baseline, and the ratio.

Usage: python bench/web_bench.py [--targets 1000] [--runs 30] [--duration 30]
``wrk`` comes from Debian (``apt-get install wrk``; ``./dev bench`` installs it).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from migdash import create_app
from migdash.config import ensure_instance
from migdash.scaffold import RevisionSpec, migrate_database, write_project
from migdash.services import services_of
from migdash.status import refresh_status
from migdash.store import registry
from migdash.store.models import Role
from migdash.store.queries import find_targets
from migdash.store.users import create_user

REVISIONS = 30
TEMPLATE_REVISIONS = (5, 12, 20, 30)
ENVIRONMENTS = ("dev", "staging", "prod")
USER, PASSWORD = "bench", "bench-password"
AGENT = "migdash-web-bench"
"""One User-Agent for the login and for wrk: Flask-Login's strong session protection ties
the session to it."""


def build_fleet(root: Path, size: int) -> dict[str, Any]:
    """A project and *size* SQLite targets in an instance under *root*; returns app settings."""
    project = root / "project"
    specs = [
        RevisionSpec(f"r{i:04d}", f"r{i - 1:04d}" if i else None, f"step {i}", table=f"t{i}")
        for i in range(REVISIONS)
    ]
    write_project(project, specs)
    templates = []
    for at in TEMPLATE_REVISIONS:
        path = root / f"template_{at}.db"
        migrate_database(project, f"sqlite:///{path}", f"r{at - 1:04d}")
        templates.append(path)
    settings = {
        "MIGDASH_INSTANCE": str(root / "instance"),
        "MIGDASH_SECRET_KEY": "web-bench-secret",
        "MIGDASH_REFRESH_SECONDS": 3600,
        "MIGDASH_LOGIN_RATE_LIMIT": "1000 per minute",
    }
    ensure_instance(Path(settings["MIGDASH_INSTANCE"]))
    app = create_app(settings)
    services = services_of(app)
    services.upgrade_schema()
    with services.sessions() as session:
        create_user(session, USER, PASSWORD, Role.VIEWER)
        registry.add_project(session, "fleet", str(project))
        for name in ENVIRONMENTS:
            registry.add_environment(session, name, protected=name == "prod")
        for i in range(size):
            path = root / "dbs" / f"tenant{i:05d}.db"
            path.parent.mkdir(exist_ok=True)
            shutil.copyfile(templates[i % len(templates)], path)
            registry.add_target(
                session,
                f"tenant-{i:05d}",
                project="fleet",
                environment=ENVIRONMENTS[i % len(ENVIRONMENTS)],
                url=f"sqlite:///{path}",
            )
        session.commit()
        # every target probed once, so the pages render real snapshots
        refresh_status(
            session, services.catalog, services.probes, find_targets(session), max_age=None
        )
        session.commit()
    services.probes.close()
    services.db_engine.dispose()
    return settings


def in_process(settings: dict[str, Any], runs: int) -> dict[str, tuple[float, float, int]]:
    """Median and p95 server time (ms) and body size of the overview and its fragment."""
    app = create_app({**settings, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    client.post("/login", data={"username": USER, "password": PASSWORD})
    found = {}
    for path in ("/", "/overview/matrix"):
        times, size = [], 0
        for _ in range(runs + 3):
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
            assert b"tenant-00000" in response.data, f"{path} does not list the fleet"
            size = len(response.data)
        warm = sorted(times[3:])
        found[path] = (statistics.median(warm), warm[int(len(warm) * 0.95) - 1], size)
    services_of(app).probes.close()
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(settings: dict[str, Any], port: int, log: Path) -> subprocess.Popen[bytes]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn), "-w", "2", "-b", f"127.0.0.1:{port}", "migdash:create_app()"]
    environ = {**os.environ, **{key: str(value) for key, value in settings.items()}}
    output = log.open("wb")
    process = subprocess.Popen(command, env=environ, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2):  # noqa: S310
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"gunicorn did not start:\n{log.read_text()}")


def session_cookie(base: str) -> str:
    """Sign in as the bench user the way a browser does (CSRF token from the form)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", AGENT)]
    page = opener.open(f"{base}/login").read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    form = {"csrf_token": token.group(1), "username": USER, "password": PASSWORD}
    opener.open(f"{base}/login", urllib.parse.urlencode(form).encode()).read()
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    request = urllib.request.Request(f"{base}/", headers={"Cookie": cookie, "User-Agent": AGENT})
    with urllib.request.urlopen(request) as response:  # noqa: S310
        body = response.read()
        assert response.status == 200, "signed-in overview not served"
        assert b"tenant-00000" in body, "the overview does not list the fleet"
    return cookie


def wrk(url: str, cookie: str, duration: int) -> dict[str, Any]:
    command = ["wrk", "-t2", "-c32", f"-d{duration}s", "--latency", "-H", f"User-Agent: {AGENT}"]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    socket_errors = r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
    errors = re.search(socket_errors, output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": latency.get("50"),
        "p99": latency.get("99"),
        "errors": sum(map(int, errors.groups())) if errors else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--duration", type=int, default=30, help="seconds of each wrk run")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="migdash-web-bench-"))
    try:
        started = time.perf_counter()
        settings = build_fleet(root, args.targets)
        built = time.perf_counter() - started
        print(f"fleet: {args.targets} SQLite targets built in {built:.1f} s")
        figures = in_process(settings, args.runs)
        for path, (median, p95, size) in figures.items():
            label = "overview /" if path == "/" else "matrix fragment"
            print(
                f"{label:<16} median {median:7.1f} ms   p95 {p95:7.1f} ms   "
                f"{size / 1024:6.0f} KB   (n={args.runs})"
            )
        print(f"ratio overview median / goal 50 ms: {figures['/'][0] / 50:.2f}")
        if shutil.which("wrk") is None:
            print("wrk not installed (apt-get install wrk): gunicorn figures skipped")
            return
        port = free_port()
        server = serve(settings, port, root / "gunicorn.log")
        try:
            base = f"http://127.0.0.1:{port}"
            cookie = session_cookie(base)
            loaded = wrk(f"{base}/", cookie, args.duration)
            baseline = wrk(f"{base}/login", "", args.duration)
        finally:
            server.terminate()
            server.wait(timeout=30)
        for label, result in (("gunicorn /", loaded), ("gunicorn /login", baseline)):
            print(
                f"{label:<16} {result['rps']:8.1f} req/s   p50 {result['p50']}   "
                f"p99 {result['p99']}   errors {result['errors']}   non-2xx {result['non_2xx']}"
                "   (2 workers, 32 connections)"
            )
        print(f"ratio req/s overview / login: {loaded['rps'] / baseline['rps']:.2f}")
    finally:
        if os.environ.get("MIGDASH_BENCH_KEEP"):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
