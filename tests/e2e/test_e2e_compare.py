"""Compare in a real browser: open it from the nav, pick two environments, read the promotion.

On the demo, analytics sits at aa04 in dev, aa03 in staging (two targets,
one changed by hand, so their schema fingerprints differ) and aa02 in prod
(protected).  Staging against prod: prod lacks aa03, and promoting
staging to prod would run ``upgrade aa02 -> aa03`` on analytics-prod, held
for approval.  Dev against prod: the promotion would skip staging, which
does not hold aa04 yet, and the page says so.  analytics-qa against
analytics-staging (targets): no revision lacked, and their schema diff
names the hand-added column and nothing else.  Nothing is confirmed, so the
demo stays as the other browser tests expect.  Every response is recorded:
no error status (the ``page`` fixture) and no request storm.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.test_e2e_demo import sign_in

pytestmark = pytest.mark.e2e

MAX_SAME_URL = 2
"""More requests than this for one URL is a storm: the compare page does not poll (going back
to a pushed URL may fetch it once more)."""
IDLE_MS = 3_000


@pytest.fixture
def network(page: Any) -> list[tuple[float, int, str]]:
    """(time, status, path and query) of every response the page receives but static files."""
    seen: list[tuple[float, int, str]] = []

    def record(response: Any) -> None:
        url = urlsplit(response.url)
        if not url.path.startswith("/static/"):
            seen.append((time.monotonic(), response.status, f"{url.path}?{url.query}"))

    page.on("response", record)
    return seen


def choose_environments(page: Any, a: str, b: str) -> None:
    """Pick two environments and compare; htmx swaps the comparison in place."""
    page.select_option("#env-a", a)
    page.select_option("#env-b", b)
    with page.expect_response(lambda r: "/compare/analytics?" in r.url) as answer:
        page.click("#compare-environments")
    assert answer.value.status == 200
    assert answer.value.request.headers.get("hx-request") == "true"
    page.wait_for_url(re.compile(rf"/compare/analytics\?a={a}&b={b}$"))
    page.locator(f'#b-lacks[data-lacking="{b}"]').wait_for()


def test_compare_two_environments_and_read_what_promotion_would_run(
    page: Any, network: list[tuple[float, int, str]], screenshots: Path
) -> None:
    sign_in(page)
    page.get_by_role("link", name="Compare").click()
    page.wait_for_url(re.compile(r"/compare/$"))
    page.get_by_role("link", name="analytics").click()
    page.wait_for_url(re.compile(r"/compare/analytics$"))
    headers = page.locator("#board thead th").all_inner_texts()
    assert [h.split()[0] for h in headers] == ["dev", "staging", "prod"]
    prod_card = page.locator('#board .target[data-target="analytics-prod"]')
    assert "aa02" in prod_card.inner_text()
    schema = {
        name: page.locator(f'#board .target[data-target="{name}"] [data-schema]').get_attribute(
            "data-schema"
        )
        for name in ("analytics-staging", "analytics-qa", "analytics-prod")
    }
    assert all(re.fullmatch(r"[0-9a-f]{64}", value or "") for value in schema.values()), schema
    # the demo changed analytics-staging by hand: same revision as analytics-qa, other schema
    assert schema["analytics-staging"] != schema["analytics-qa"]

    choose_environments(page, "staging", "prod")
    page.locator("#board").wait_for()  # the board stays: only the comparison was swapped
    prod_lacks = page.locator("#b-lacks li[data-revision]")
    assert prod_lacks.all_inner_texts() == ["aa03 add daily rollups"]
    assert page.locator("#a-lacks li[data-revision]").count() == 0
    offer = page.locator("#promote-staging-to-prod")
    assert "held for approval" in offer.inner_text()
    page.screenshot(path=str(screenshots / "compare.png"), full_page=True)

    offer.get_by_role("link", name="Plan the promotion…").click()
    page.wait_for_url(re.compile(r"/compare/analytics/promote\?from=staging&to=prod$"))
    row = page.locator('#promotion-targets tr[data-target="analytics-prod"]')
    assert row.locator(".plan-steps li").all_inner_texts() == [
        "aa03 add daily rollups (upgrade aa02 -> aa03)"
    ]
    assert "protected" in page.locator("#needs-approval").inner_text()
    assert page.locator("#confirm-promotion").inner_text() == "Request approval for 1 job(s)"
    assert page.locator("#order-warning").count() == 0
    page.screenshot(path=str(screenshots / "promote.png"), full_page=True)

    page.go_back()
    page.wait_for_url(re.compile(r"/compare/analytics\?a=staging&b=prod$"))
    choose_environments(page, "dev", "prod")
    assert page.locator("#b-lacks li[data-revision]").all_inner_texts() == [
        "aa03 add daily rollups",
        "aa04 add funnels",
    ]
    warning = page.locator("#promote-dev-to-prod [data-order=warn]").inner_text()
    assert "staging comes before prod and does not hold aa04 yet" in warning

    # two targets at one revision: nothing lacked either way, and their schema diff one click away
    page.select_option("#target-a", "analytics-qa")
    page.select_option("#target-b", "analytics-staging")
    with page.expect_response(lambda r: "target_a=analytics-qa" in r.url) as answer:
        page.click("#compare-targets")
    assert answer.value.status == 200
    page.locator("#schema-diff-link").wait_for()
    assert page.locator("#a-lacks li[data-revision]").count() == 0
    assert page.locator("#b-lacks li[data-revision]").count() == 0
    page.get_by_role("link", name="Schema diff of analytics-qa and analytics-staging").click()
    page.wait_for_url(re.compile(r"/schemas/diff\?left=analytics-qa&right=analytics-staging$"))
    assert page.locator("#diff-summary").get_attribute("data-same") == "no"
    rows = page.locator("#real-differences tbody tr").all_inner_texts()
    # the demo's hand change (ALTER TABLE daily_rollups ADD COLUMN note), and nothing else
    assert len(rows) == 1, rows
    assert rows[0].split("\t")[:4] == ["added", "column", "daily_rollups", "note"]
    page.screenshot(path=str(screenshots / "schema-diff.png"), full_page=True)

    page.go_back()
    page.wait_for_url(re.compile(r"/compare/analytics\?target_a=analytics-qa"))
    quiet_since = time.monotonic()
    page.wait_for_timeout(IDLE_MS)
    assert [path for at, _, path in network if at > quiet_since] == [], "the page polls"
    assert all(status < 500 for _, status, _ in network)
    storms = {p: n for p, n in Counter(p for _, _, p in network).items() if n > MAX_SAME_URL}
    assert storms == {}
