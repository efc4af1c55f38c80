"""A real ``migdash demo`` process and a real Chromium driven by Playwright.

The server is started exactly as a user would (``migdash demo --port N``
with its own ``MIGDASH_INSTANCE``), so CSRF, gunicorn, static files and the
CSP are all the production ones.  Chromium is Debian's (``MIGDASH_TEST_CHROMIUM``
or ``/usr/bin/chromium``); Playwright never downloads a browser here.  Without
it the suite skips locally and fails under ``CI=true``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
"""Where README's pictures live; refreshed only on request (MIGDASH_TEST_SCREENSHOTS=docs)."""
START_TIMEOUT = 30.0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("MIGDASH_TEST_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).is_file() or not os.access(path, os.X_OK):
        _unavailable(
            f"no Chromium at {path} (apt-get install chromium, or set MIGDASH_TEST_CHROMIUM)"
        )
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _migdash_command() -> list[str]:
    script = Path(sys.executable).with_name("migdash")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from migdash.cli import main; main()"]


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"migdash demo exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/login", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    pytest.fail(f"migdash demo did not answer within {START_TIMEOUT} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo server's folder; its instance (for ``migdash user create``…) is ``instance/``."""
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def demo_server(demo_root: Path) -> Iterator[str]:
    """``migdash demo`` on a free port with a fresh instance folder; yields its base URL."""
    root = demo_root
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGDASH_")}
    env["MIGDASH_INSTANCE"] = str(root / "instance")
    log = root / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own console script
            [
                *_migdash_command(),
                "demo",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--threads",
                "4",
            ],
            env=env,
            cwd=root,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process, log)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed: {exc}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class Console:
    """What the page said on its console, and uncaught errors."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    """``STATUS URL`` of every page response >= 400 (the favicon is not reported here)."""

    def csp_violations(self) -> list[str]:
        return [text for _kind, text in self.messages if "Content Security Policy" in text]

    def errors(self) -> list[str]:
        return [text for kind, text in self.messages if kind == "error"] + self.page_errors


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Any, demo_server: str, console: Console) -> Iterator[Any]:
    """A fresh browser context on the demo server; every test ends with a clean console."""
    context = browser.new_context(base_url=demo_server, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("console", lambda message: console.messages.append((message.type, message.text)))
    page.on("pageerror", lambda error: console.page_errors.append(str(error)))
    page.on(
        "response",
        lambda response: (
            response.status >= 400
            and console.failed_requests.append(f"{response.status} {response.url}")
        ),
    )
    yield page
    context.close()
    assert console.csp_violations() == []
    assert console.errors() == [], console.failed_requests
    assert console.failed_requests == []


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test run never rewrites tracked files: pictures go to a temp folder unless asked."""
    if os.environ.get("MIGDASH_TEST_SCREENSHOTS") == "docs":
        folder = DOCS_SCREENSHOTS
    else:
        folder = tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
