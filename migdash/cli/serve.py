"""``migdash serve`` and ``migdash demo``: one command from nothing to a running dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from gunicorn.app.base import BaseApplication

from migdash.cli.base import main, store
from migdash.demo import DEMO_PASSWORD, DEMO_USER, build_demo

host_option = click.option("--host", default="127.0.0.1", show_default=True)
port_option = click.option("--port", default=5000, show_default=True, type=int)
threads_option = click.option("--threads", default=8, show_default=True, type=int,
                              help="Request threads (probes already run concurrently).")


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


def run_server(app: Flask, host: str, port: int, threads: int) -> None:
    options = {"bind": f"{host}:{port}", "workers": 1, "threads": threads,
               "worker_class": "gthread", "accesslog": "-", "timeout": 60}
    _Gunicorn(app, options).run()


@main.command("serve")
@host_option
@port_option
@threads_option
@with_appcontext
def serve(host: str, port: int, threads: int) -> None:
    """Upgrade the metadata DB if needed, then serve the dashboard."""
    with store():
        pass
    click.echo(f"migdash on http://{host}:{port}/")
    run_server(current_app._get_current_object(), host, port, threads)  # type: ignore[attr-defined]


@main.command("demo")
@host_option
@port_option
@threads_option
@click.option("--no-serve", is_flag=True, help="Build the demo workspace and exit.")
@with_appcontext
def demo(host: str, port: int, threads: int, no_serve: bool) -> None:
    """Build a demo workspace (two projects, eight targets) and serve it."""
    workspace = Path(current_app.instance_path) / "demo"
    with store() as (session, _):
        targets = build_demo(session, workspace)
    click.echo(f"demo workspace: {workspace} ({len(targets)} targets)")
    click.echo(f"sign in as {DEMO_USER} / {DEMO_PASSWORD}")
    if no_serve:
        return
    click.echo(f"open http://{host}:{port}/")
    run_server(current_app._get_current_object(), host, port, threads)  # type: ignore[attr-defined]
