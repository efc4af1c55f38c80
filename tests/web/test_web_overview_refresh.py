"""A slow target never holds the overview back: the matrix answers on its budget, then catches up.

One healthy SQLite target and one PostgreSQL URL on a loopback port that
accepts connections and never answers (the probe waits out its connect
time-out, 3 s in the test app).  The matrix must answer well before that,
with the healthy target's fresh state, and show the silent one as
unreachable once its probe has ended.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from migdash.store.models import Role
from tests.web.pagetext import target_states

HX = {"HX-Request": "true"}
PAGE_WAIT = 1.0


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts every connection and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def swallow() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=swallow, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(timeout=2)
    for connection in accepted:
        connection.close()
    listener.close()


def test_the_matrix_answers_on_its_budget_and_picks_up_a_slow_target_later(
    app: Flask,
    login: Callable[..., FlaskClient],
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    silent_port: int,
) -> None:
    app.config["MIGDASH_PAGE_WAIT_SECONDS"] = PAGE_WAIT
    project = make_project("linear")
    register_project(project)
    register_target(project, "t-quick", at="a1")
    register_target(
        project, "t-silent", url=f"postgresql+psycopg://app:pw@127.0.0.1:{silent_port}/app"
    )
    client = login(Role.VIEWER)

    started = time.monotonic()
    first = client.get("/overview/matrix", headers=HX)
    elapsed = time.monotonic() - started

    assert first.status_code == 200
    assert elapsed < 3.0  # the silent target's probe takes its whole 3 s connect time-out
    assert target_states(first.get_data(as_text=True)) == {
        "t-quick": "behind",
        "t-silent": "not_probed",
    }
    # The refresh goes on without the page; a later refresh of the matrix shows its answer.
    deadline = time.monotonic() + 15
    states = {}
    while time.monotonic() < deadline:
        time.sleep(0.5)
        states = target_states(client.get("/").get_data(as_text=True))
        if states.get("t-silent") != "not_probed":
            break
    assert states == {"t-quick": "behind", "t-silent": "unreachable"}
