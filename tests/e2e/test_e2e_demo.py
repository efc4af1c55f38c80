"""Drive the real demo in Chromium: sign in, overview, Probe now, project graph, revision page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from migdash.demo import DEMO_PASSWORD, DEMO_USER, demo_targets

pytestmark = pytest.mark.e2e

CELL = "#matrix .target[data-state]"


def sign_in(page: Any) -> None:
    page.goto("/")
    assert page.url.endswith("/login?next=%2F")
    page.fill("input[name=username]", DEMO_USER)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))


def wait_for_probed_matrix(page: Any) -> dict[str, str]:
    """Wait until htmx has swapped in a probed matrix (no cell still says "not probed yet")."""
    page.wait_for_function(
        """() => {
            const cells = document.querySelectorAll('#matrix .target[data-state]');
            return cells.length > 0 && ![...cells].some(c => c.textContent.includes('not probed'));
        }"""
    )
    cells = page.locator(CELL)
    return {
        cells.nth(i).get_attribute("data-target"): cells.nth(i).get_attribute("data-state")
        for i in range(cells.count())
    }


def test_wrong_password_is_refused(page: Any) -> None:
    page.goto("/login")
    page.fill("input[name=username]", DEMO_USER)
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    assert page.locator("p.error[role=alert]").inner_text() == "Wrong username or password."


def test_overview_matrix_after_sign_in(page: Any, screenshots: Path) -> None:
    sign_in(page)
    states = wait_for_probed_matrix(page)
    planned = [t.name for t in demo_targets(Path("unused"))]
    assert sorted(states) == sorted(planned)
    assert list(states.values()).count("unreachable") == 1
    assert list(states.values()).count("uninitialised") == 1
    assert states["shop-dev"] == "up_to_date"
    assert states["shop-staging"] == "behind"
    headers = page.locator("#matrix thead th").all_inner_texts()
    assert [h.split()[0] for h in headers[1:]] == ["dev", "staging", "prod"]
    page.screenshot(path=str(screenshots / "overview.png"), full_page=True)


def test_probe_now_swaps_the_matrix_through_htmx(page: Any) -> None:
    sign_in(page)
    wait_for_probed_matrix(page)
    # mark the current matrix element; an htmx outerHTML swap replaces it with a new one
    page.evaluate("document.getElementById('matrix').dataset.old = 'yes'")
    with page.expect_response(lambda r: r.url.endswith("/overview/probe")) as response_info:
        page.get_by_role("button", name="Probe now").click()
    response = response_info.value
    assert response.status == 200
    assert response.request.method == "POST"
    assert response.request.headers.get("hx-request") == "true"
    assert response.request.headers.get("x-csrftoken")
    # a locator wait, not wait_for_function: the page's CSP forbids the eval that one polls with
    page.locator("#matrix[data-old]").wait_for(state="detached")
    assert page.locator(CELL).count() == 9


def test_project_graph_and_revision_page(page: Any, screenshots: Path) -> None:
    sign_in(page)
    wait_for_probed_matrix(page)
    page.locator("#matrix a", has_text=re.compile(r"^shop$")).click()
    page.wait_for_url(re.compile(r"/projects/shop$"))
    svg = page.locator("#revision-graph svg")
    svg.wait_for()
    text = svg.inner_html()
    for marker in ("shop-dev", "shop-staging", "shop-prod-eu"):
        assert marker in text
    hrefs = page.evaluate("""() => [...document.querySelectorAll('#revision-graph svg a')]
        .map(a => a.getAttribute('xlink:href') || a.getAttribute('href'))""")
    assert any("/projects/shop/revisions/" in h for h in hrefs)
    assert any("/targets/shop-dev" in h for h in hrefs)
    assert page.locator("[data-flag=multiple-heads]").count() == 0
    rows = page.locator("#history tbody tr")
    assert rows.count() == 8
    page.screenshot(path=str(screenshots / "project.png"), full_page=True)

    link = rows.filter(has_text="add invoices").locator("td a").first
    revision = link.inner_text()
    link.click()
    page.wait_for_url(re.compile(rf"/projects/shop/revisions/{revision}$"))
    assert page.locator("h1 code").inner_text() == revision
    assert page.locator("pre.doc").inner_text().strip()
    assert (
        "create_table"
        in page.locator("section", has_text="upgrade()").locator(".source").first.inner_text()
    )
    applied = page.locator("section.applied").inner_text()
    assert "shop-dev" in applied
    page.screenshot(path=str(screenshots / "revision.png"), full_page=True)


def test_target_probe_now(page: Any) -> None:
    sign_in(page)
    page.goto("/targets/shop-staging")
    with page.expect_response(lambda r: r.url.endswith("/targets/shop-staging/probe")) as info:
        page.get_by_role("button", name="Probe now").click()
    assert info.value.status == 200
    status = page.locator("#target-status")
    status.wait_for()
    assert status.get_attribute("data-state") == "behind"
    assert page.locator("ol.pending-list li a").count() >= 1
