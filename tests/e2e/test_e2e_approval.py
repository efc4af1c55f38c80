"""Four-eyes in a real browser: an operator requests a prod upgrade, an approver approves it.

The demo's ``prod`` environment is protected and ``migdash demo`` runs a
worker beside the server, so the approved job really runs.  The two people
are created with ``migdash user create`` on the demo's instance folder, as an
admin would, and each uses their own browser context (their own cookies).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Console

pytestmark = pytest.mark.e2e

TARGET = "analytics-prod"
"""At aa02 in the demo; aa03 (daily rollups) and aa04 (funnels) are pending."""
PASSWORD = "four-eyes-password"  # noqa: S105 - a throwaway demo instance


def migdash(demo_root: Path, *args: str, ok: bool = True) -> str:
    """Run ``migdash ARGS`` on the demo's instance; stdout, or (not *ok*) all output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGDASH_")}
    env["MIGDASH_INSTANCE"] = str(demo_root / "instance")
    done = subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "migdash", *args],
        env=env,
        cwd=demo_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if not ok:
        assert done.returncode != 0, done.stdout
        return done.stdout + done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def people(demo_server: str, demo_root: Path) -> dict[str, str]:
    """An operator and an approver on the running demo's instance."""
    people = {"olga": "operator", "amir": "approver"}
    for name, role in people.items():
        out = migdash(demo_root, "user", "create", name, "--role", role, "--password", PASSWORD)
        assert f"created user {name} ({role})" in out
    return people


@pytest.fixture
def second_page(browser: Any, demo_server: str, console: Console) -> Iterator[Any]:
    """Another person's browser (a new context), reporting to the same console checks."""
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


def sign_in(page: Any, username: str) -> None:
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    assert username in page.locator("form.who").inner_text()


def test_an_operator_requests_and_another_person_approves(
    page: Any, second_page: Any, people: dict[str, str], screenshots: Path, demo_root: Path
) -> None:
    sign_in(page, "olga")
    page.goto(f"/targets/{TARGET}")
    assert page.locator("#upgrade-revision").input_value() == "heads"
    page.click("#plan-upgrade")
    page.wait_for_url(re.compile(rf"/actions/targets/{TARGET}\?"))
    assert "protected" in page.locator("dl.fields").inner_text()
    assert "CREATE TABLE daily_rollups" in page.locator("#plan-sql").inner_text()
    page.click("#confirm-action")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_id = page.url.rsplit("/", 1)[1]
    assert page.locator("#job-state").inner_text() == "awaiting_approval"
    assert "waits for approval" in page.locator("#job-live").inner_text()

    approver = second_page
    sign_in(approver, "amir")
    approver.get_by_role("link", name="Approvals").click()
    approver.wait_for_url(re.compile(r"/approvals/$"))
    row = approver.locator("#awaiting tbody tr", has_text=TARGET)
    assert "olga" in row.inner_text()
    row.locator("a").first.click()
    approver.wait_for_url(re.compile(rf"/approvals/{job_id}$"))
    sql = approver.locator("#review-sql").inner_text()
    assert "CREATE TABLE daily_rollups" in sql
    assert "CREATE TABLE funnels" in sql
    assert "UPDATE alembic_version SET version_num='aa04'" in sql
    assert "0 of 1 needed" in approver.locator("dl.fields").inner_text()
    approver.screenshot(path=str(screenshots / "approval.png"), full_page=True)

    approver.fill("form.decision input[name=comment] >> nth=0", "read the SQL; fine")
    approver.click("#approve")
    approver.wait_for_url(re.compile(rf"/jobs/{job_id}$"))
    approver.locator("#job-live[data-state=succeeded]").wait_for(timeout=30_000)  # htmx polls
    log = approver.locator("#job-log").inner_text()
    assert "approved by amir (1 of 1): read the SQL; fine" in log
    assert re.search(
        r"upgrade analytics-prod to heads succeeded in [\d.]+ s; target now at aa04", log
    ), log

    page.reload()
    assert page.locator("#job-state").inner_text() == "succeeded"
    assert "aa04" in page.locator("#job-live").inner_text()

    # and back to aa02 through the CLI (the same rule), as the demo tests and screenshots expect
    back = json.loads(migdash(demo_root, "downgrade", TARGET, "aa02", "--as", "olga", "--json"))
    assert back["state"] == "awaiting_approval"
    refused = migdash(demo_root, "approve", str(back["id"]), "--as", "olga", ok=False)
    assert "olga (operator) may not approve" in refused
    assert "; queued" in migdash(demo_root, "approve", str(back["id"]), "--as", "amir")
    approver.goto(f"/jobs/{back['id']}")
    approver.locator("#job-live[data-state=succeeded]").wait_for(timeout=30_000)
    assert "target now at aa02" in approver.locator("#job-log").inner_text()
