"""An upgrade in a real browser: target page, SQL preview, confirm, live log, overview cell.

``analytics-staging`` is on an unprotected environment, so the confirmed job
runs at once on the worker ``migdash demo`` starts beside the server.  The
test puts the target back where the demo left it, through the CLI, so the
other browser tests see the demo unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_e2e_approval import migdash
from tests.e2e.test_e2e_demo import sign_in, wait_for_probed_matrix

pytestmark = pytest.mark.e2e

TARGET = "analytics-staging"
"""At aa03 in the demo; aa04 ("add funnels") is its one pending revision."""


@pytest.fixture
def restore_target(demo_root: Path) -> Any:
    yield
    migdash(demo_root, "downgrade", TARGET, "aa03", "--wait", "--timeout", "60")


def test_upgrade_from_target_page_to_up_to_date_overview(
    page: Any, restore_target: Any, screenshots: Path
) -> None:
    sign_in(page)
    assert wait_for_probed_matrix(page)[TARGET] == "behind"

    page.goto(f"/targets/{TARGET}")
    page.select_option("#upgrade-revision", "heads")
    page.click("#plan-upgrade")
    sql = page.locator("#plan-sql").inner_text()
    assert "CREATE TABLE funnels" in sql
    assert "CREATE TABLE daily_rollups" not in sql, "aa03 is applied: the SQL must start there"
    assert page.locator("#plan-steps li").all_inner_texts() == [
        "aa04 add funnels (upgrade aa03 -> aa04)"
    ]
    page.screenshot(path=str(screenshots / "plan.png"), full_page=True)

    page.click("#confirm-action")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    page.wait_for_selector("#job-live[data-state=succeeded]", timeout=30_000)
    log = page.locator("#job-log").inner_text()
    assert "Running upgrade aa03 -> aa04, add funnels" in log
    assert "succeeded" in log
    assert "target now at aa04" in log

    page.goto("/")
    assert wait_for_probed_matrix(page)[TARGET] == "up_to_date"
