"""Removing a project in a real browser: its prod approval is cancelled, not left behind.

A project ``reports`` (the demo's analytics scripts, one protected prod
target at aa02) is registered on the running demo through the CLI, so the
demo's own projects stay as the other browser tests expect.  The admin asks
for an upgrade of reports-prod (it waits for approval), follows the
registry's remove link to the confirmation page, reads what goes and
confirms; then Approvals is empty and the audit trail shows the
cancellation.  Every response is recorded: no 5xx, and no request storm.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from migdash.demo import DEMO_USER
from migdash.scaffold import migrate_database
from tests.e2e.test_e2e_approval import migdash
from tests.e2e.test_e2e_demo import sign_in

pytestmark = pytest.mark.e2e

PROJECT, TARGET = "reports", "reports-prod"
MAX_SAME_URL = 4
"""More requests than this for one page or fragment (polling gone wild) is a storm."""
IDLE_MS = 6_000
"""Longer than the slowest polling interval (5 s, a job awaiting approval)."""
MAX_RESPONSES = 80


@pytest.fixture
def reports(demo_server: str, demo_root: Path) -> Iterator[None]:
    """Register the extra project and its prod target; unregister it if the test did not."""
    scripts = demo_root / "instance" / "demo" / "projects" / "analytics"
    url = f"sqlite:///{demo_root / 'reports-prod.db'}"
    migrate_database(scripts, url, "aa02")
    migdash(demo_root, "project", "add", PROJECT, "--script-location", str(scripts))
    migdash(demo_root, "target", "add", TARGET, "--project", PROJECT, "--env", "prod", "--url", url)
    yield
    if PROJECT in migdash(demo_root, "project", "list"):
        migdash(demo_root, "project", "remove", PROJECT, "--yes")


@pytest.fixture
def network(page: Any) -> list[tuple[float, int, str]]:
    """(time, status, path) of every response the page receives."""
    seen: list[tuple[float, int, str]] = []
    page.on(
        "response",
        lambda response: seen.append(
            (time.monotonic(), response.status, urlsplit(response.url).path)
        ),
    )
    return seen


def test_removing_a_project_cancels_its_waiting_prod_upgrade(
    page: Any, network: list[tuple[float, int, str]], reports: None, screenshots: Path
) -> None:
    sign_in(page)
    page.goto(f"/targets/{TARGET}")
    page.click("#plan-upgrade")
    page.wait_for_url(re.compile(rf"/actions/targets/{TARGET}\?"))
    assert "protected" in page.locator("dl.fields").inner_text()
    page.click("#confirm-action")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_id = page.url.rsplit("/", 1)[1]
    assert page.locator("#job-state").inner_text() == "awaiting_approval"
    page.goto("/approvals/")
    assert TARGET in page.locator("#awaiting").inner_text()

    page.get_by_role("link", name="Registry").click()
    page.wait_for_url(re.compile(r"/admin/$"))
    page.locator(f"a[href='/admin/projects/{PROJECT}/delete']").click()
    page.wait_for_url(re.compile(rf"/admin/projects/{PROJECT}/delete$"))
    assert TARGET in page.locator("#removal-targets").inner_text()
    row = page.locator(f"#removal-jobs tr[data-job='{job_id}']")
    assert row.get_attribute("data-state") == "awaiting_approval"
    assert f"upgrade {TARGET} to heads" in row.inner_text()
    consequences = page.locator("#removal-consequences").inner_text()
    assert (
        f"Job {job_id} (upgrade {TARGET} to heads, awaiting_approval) is cancelled" in consequences
    )
    page.screenshot(path=str(screenshots / "removal.png"), full_page=True)
    page.click("#confirm-remove")
    page.wait_for_url(re.compile(r"/admin/$"))
    assert (
        f"Removed project {PROJECT}. Cancelled job(s) {job_id}."
        in page.locator("#flash").inner_text()
    )
    assert f"/admin/projects/{PROJECT}/delete" not in page.content()

    page.get_by_role("link", name="Approvals").click()
    page.wait_for_url(re.compile(r"/approvals/$"))
    assert page.locator("#awaiting tbody").inner_text().strip() == "Nothing is waiting."

    page.goto("/audit/?action=job.cancel")
    cancel = page.locator("#audit-events tbody tr", has_text=f"removed by {DEMO_USER}")
    assert cancel.count() == 1
    assert cancel.locator("td").nth(5).inner_text() == job_id
    assert f"reason=project {PROJECT} removed by {DEMO_USER}" in cancel.inner_text()
    page.goto(f"/jobs/{job_id}")
    assert page.locator("#job-state").inner_text() == "cancelled"
    settled = len(network)
    page.wait_for_timeout(IDLE_MS)
    assert network[settled:] == [], "a cancelled job's page keeps asking the server"

    assert [(s, p) for _t, s, p in network if s >= 500] == []
    per_url = Counter(path for _t, _s, path in network if not path.startswith("/static/"))
    assert max(per_url.values()) <= MAX_SAME_URL, per_url
    assert len(network) <= MAX_RESPONSES, per_url
