"""``migdash serve`` and ``migdash demo``: one command from nothing to a running dashboard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from gunicorn.app.base import BaseApplication

from migdash.cli.base import main, store
from migdash.demo import (
    DEMO_APPROVER,
    DEMO_APPROVER_PASSWORD,
    DEMO_PASSWORD,
    DEMO_USER,
    build_demo,
    observe_demo,
)

host_option = click.option("--host", default="127.0.0.1", show_default=True)
port_option = click.option("--port", default=5000, show_default=True, type=int)
threads_option = click.option(
    "--threads",
    default=8,
    show_default=True,
    type=int,
    help="Request threads (probes already run concurrently).",
)
worker_option = click.option(
    "--worker/--no-worker",
    default=True,
    show_default=True,
    help="Run a job worker beside the web server.",
)


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    """gunicorn in-process, so ``serve`` behaves like the production ``gunicorn wsgi:app``."""

    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def run_server(app: Flask, host: str, port: int, threads: int, *, with_worker: bool = True) -> None:
    """Serve with gunicorn; unless told not to, run one ``migdash worker`` beside it.

    The worker is a child process (the web process never runs jobs), stopped
    when the server stops, so a newcomer needs only one command.
    """
    options = {
        "bind": f"{host}:{port}",
        "workers": 1,
        "threads": threads,
        "worker_class": "gthread",
        "accesslog": "-",
        "timeout": 60,
    }
    worker = None
    if with_worker:
        worker = subprocess.Popen([sys.executable, "-m", "migdash", "worker"])  # noqa: S603
        click.echo(f"job worker running (pid {worker.pid})")
    try:
        _Gunicorn(app, options).run()
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()


@main.command("serve")
@host_option
@port_option
@threads_option
@worker_option
@with_appcontext
def serve(host: str, port: int, threads: int, worker: bool) -> None:
    """Upgrade the metadata DB if needed, then serve the dashboard."""
    with store():
        pass
    click.echo(f"migdash on http://{host}:{port}/")
    run_server(
        current_app._get_current_object(),
        host,
        port,
        threads,  # type: ignore[attr-defined]
        with_worker=worker,
    )


@main.command("demo")
@host_option
@port_option
@threads_option
@worker_option
@click.option("--no-serve", is_flag=True, help="Build the demo workspace and exit.")
@with_appcontext
def demo(host: str, port: int, threads: int, worker: bool, no_serve: bool) -> None:
    """Build a demo workspace (two projects, nine targets) and serve it."""
    workspace = Path(current_app.instance_path) / "demo"
    with store() as (session, services):
        targets = build_demo(session, workspace)
        observe_demo(session, services.jobs, services.settings)
    click.echo(f"demo workspace: {workspace} ({len(targets)} targets)")
    click.echo(f"sign in as {DEMO_USER} / {DEMO_PASSWORD} (admin)")
    click.echo(f"a second person to approve prod jobs: {DEMO_APPROVER} / {DEMO_APPROVER_PASSWORD}")
    if no_serve:
        return
    click.echo(f"open http://{host}:{port}/")
    run_server(
        current_app._get_current_object(),
        host,
        port,
        threads,  # type: ignore[attr-defined]
        with_worker=worker,
    )
