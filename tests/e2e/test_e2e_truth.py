"""The overview in a real browser: one matrix request per refresh period, long names wrap.

A server of its own (``migdash demo`` with ``MIGDASH_REFRESH_SECONDS=30`` and
80-character names registered through the CLI), so the shared demo fixture
keeps its own settings for the other e2e tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migdash.demo import DEMO_PASSWORD, DEMO_USER
from migdash.scaffold import RevisionSpec, migrate_database, write_project
from tests.e2e.conftest import _free_port, _migdash_command, _wait_until_serving

pytestmark = pytest.mark.e2e

REFRESH_SECONDS = 30
WATCH_MS = 10_000
LONG_PROJECT = "project_" + "p" * 72
LONG_ENV = "environment_" + "e" * 68
LONG_TARGET = "target_" + "t" * 73
LONG_TARGET_2 = "shop_dev_twin_" + "s" * 66
LONG_MESSAGE = "create_" + "m" * 73
"""A revision message with no space in it: the hardest case for wrapping."""


def _cli(root: Path, env: dict[str, str], *args: str) -> None:
    done = subprocess.run(  # noqa: S603 - our own console script
        [*_migdash_command(), *args], env=env, cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def truth_server(tmp_path_factory: pytest.TempPathFactory, chromium_path: str) -> Iterator[str]:
    """The demo plus a project, an environment and targets with 80-character names."""
    assert {len(n) for n in (LONG_PROJECT, LONG_ENV, LONG_TARGET, LONG_TARGET_2, LONG_MESSAGE)} == {
        80
    }
    root = tmp_path_factory.mktemp("e2e-truth")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGDASH_")}
    env["MIGDASH_INSTANCE"] = str(root / "instance")
    env["MIGDASH_REFRESH_SECONDS"] = str(REFRESH_SECONDS)
    _cli(root, env, "demo", "--no-serve")
    location = write_project(root / "long", [RevisionSpec("l1", None, LONG_MESSAGE, table="t")])
    url = f"sqlite:///{root / 'long.db'}"
    migrate_database(location, url, "heads")
    _cli(root, env, "project", "add", LONG_PROJECT, "--script-location", str(location))
    _cli(root, env, "target", "add", LONG_TARGET, "--project", LONG_PROJECT, "--env", LONG_ENV,
         "--url", url)  # fmt: skip
    _cli(root, env, "target", "add", LONG_TARGET_2, "--project", LONG_PROJECT, "--env", "dev",
         "--url", url)  # fmt: skip
    port = _free_port()
    log = root / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own console script
            [
                *_migdash_command(),
                "demo",
                "--no-worker",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=root,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base, process, log)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def watched(browser: Any, truth_server: str) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A signed-in page, the matrix requests it makes, and every 5xx it sees."""
    context = browser.new_context(base_url=truth_server, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=username]", DEMO_USER)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{truth_server}/")
    matrix: list[str] = []
    broken: list[str] = []
    page.on("request", lambda r: "/overview/matrix" in r.url and matrix.append(r.url))
    page.on("response", lambda r: r.status >= 500 and broken.append(f"{r.status} {r.url}"))
    yield page, matrix, broken
    context.close()


def test_overview_asks_for_the_matrix_once_per_refresh_period(
    watched: tuple[Any, list[str], list[str]],
) -> None:
    page, matrix, broken = watched
    matrix.clear()
    page.goto("/")
    page.wait_for_timeout(WATCH_MS)
    assert 1 <= len(matrix) <= 2, f"{len(matrix)} matrix requests in {WATCH_MS} ms"
    page.wait_for_load_state("networkidle", timeout=2_000)
    assert broken == []
    assert page.locator("#matrix .target[data-state=not_probed]").count() == 0


def widths(page: Any) -> tuple[int, int]:
    """The document's scroll width and the window's width: equal unless it scrolls sideways."""
    return page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )


def test_long_names_wrap_instead_of_scrolling_the_overview(
    watched: tuple[Any, list[str], list[str]], screenshots: Path
) -> None:
    page, _, broken = watched
    page.goto("/")
    page.wait_for_function(
        "name => { const c = document.querySelector(`#matrix [data-target='${name}']`);"
        " return c && c.dataset.state !== 'not_probed'; }",
        arg=LONG_TARGET,
    )
    for text in (LONG_PROJECT, LONG_ENV, LONG_TARGET, LONG_TARGET_2, LONG_MESSAGE):
        assert page.locator("#matrix").get_by_text(text).first.is_visible(), text
    page.screenshot(path=str(screenshots / "overview-long-names.png"), full_page=True)
    scroll_width, client_width = widths(page)
    assert scroll_width <= client_width
    assert broken == []


@pytest.mark.parametrize(
    "path",
    [
        f"/projects/{LONG_PROJECT}",
        f"/targets/{LONG_TARGET}",
        f"/projects/{LONG_PROJECT}/revisions/l1",
    ],
)
def test_long_names_wrap_on_the_project_target_and_revision_pages(
    watched: tuple[Any, list[str], list[str]], path: str
) -> None:
    page, _, broken = watched
    page.goto(path)
    assert LONG_PROJECT in page.content()
    scroll_width, client_width = widths(page)
    assert scroll_width <= client_width
    assert broken == []
