"""Headers, escaping and CSRF: a strict CSP, no inline scripts, hostile text rendered inert."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from migdash import create_app
from migdash.scaffold import RevisionSpec, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Role
from migdash.store.users import create_user
from tests.web.pagetext import HOSTILE, INLINE_HANDLER, INLINE_SCRIPT, Site, uncovered_endpoints

HX = {"HX-Request": "true"}

PAGES = [
    "/",
    "/overview/matrix",
    "/projects/",
    "/projects/shop",
    "/projects/shop/graph.svg",
    "/projects/shop/revisions/a1",
    "/projects/shop/history",
    "/projects/shop/loading",
    "/targets/shop-dev",
    "/history/targets/shop-dev",
    "/schemas/targets/shop-dev",
    "/schemas/diff?left=shop-dev&right=shop-dev",
    "/admin/",
    "/admin/projects/new",
    "/admin/projects/init",
    "/admin/projects/shop/edit",
    "/admin/environments/new",
    "/admin/environments/dev/edit",
    "/admin/targets/new",
    "/admin/targets/shop-dev/edit",
    "/admin/projects/shop/delete",
    "/users/",
    "/users/site-admin",
    "/jobs/",
    "/jobs/1",
    "/jobs/1/live",
    "/approvals/",
    "/approvals/1",
    "/audit/",
    "/audit/export.csv",
    "/audit/export.json",
    "/actions/targets/shop-dev?action=upgrade&revision=heads",
    "/actions/targets/shop-dev/plan.sql?action=upgrade&revision=heads",
    "/actions/environment?environment=dev&project=shop&action=upgrade&revision=heads",
    "/compare/",
    "/compare/shop?a=dev&b=dev",
    "/compare/shop/promote?from=dev&to=nope",
    "/webhooks/",
    "/rollouts/",
    "/rollouts/1",
    "/api/v1/docs",
    "/webhooks/new",
    "/webhooks/nope",
    "/webhooks/nope/edit",
]
"""One URL per GET endpoint (a test below keeps this list complete)."""

HOSTILE_PAGES = [
    ("/", {}),
    ("/overview/matrix", HX),
    ("/projects/", {}),
    ("/projects/hostile", {}),
    ("/projects/hostile-gone", {}),
    ("/projects/hostile/revisions/a1", {}),
    ("/projects/hostile/revisions/b2", {}),
    ("/projects/hostile-gone/revisions/a1", {}),
    ("/targets/hostile-dev", {}),
    ("/history/targets/hostile-dev", {}),
    ("/admin/", {}),
    ("/admin/projects/hostile/edit", {}),
    ("/projects/hostile/graph.svg", {}),
    ("/actions/targets/hostile-dev?action=upgrade&revision=heads", {}),
    ("/compare/hostile?a=dev&b=dev", {}),
]
"""Every page that shows the hostile project's text, and the SVG."""


def test_pages_cover_every_get_endpoint(app: Flask) -> None:
    assert uncovered_endpoints(app, PAGES) == set()


@pytest.mark.parametrize("path", [*PAGES, "/login", "/projects/nope", "/static/css/migdash.css"])
def test_every_response_carries_a_strict_csp(site: Site, path: str) -> None:
    with site.client.get(path) as response:
        assert response.status_code in {200, 404}
        headers = response.headers
    policy = headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


NOT_HTML = ("/audit/export.csv", "/audit/export.json")
"""Downloads: data served as text/csv or JSON, never rendered as a page."""


@pytest.mark.parametrize(
    "path",
    [*(p for p in PAGES if p not in NOT_HTML), *(p for p, _ in HOSTILE_PAGES), "/projects/nope"],
)
def test_no_inline_scripts_or_handlers(site: Site, path: str) -> None:
    body = site.client.get(path, headers=HX if path == "/overview/matrix" else {}).get_data(
        as_text=True
    )
    assert INLINE_SCRIPT.findall(body) == []
    assert INLINE_HANDLER.findall(body) == []
    for src in re.findall(r"<script\b[^>]*\bsrc=\"([^\"]+)\"", body):
        assert src.startswith("/static/")


def test_login_page_has_no_inline_scripts(client: FlaskClient) -> None:
    body = client.get("/login").get_data(as_text=True)
    assert "<form" in body
    assert INLINE_SCRIPT.findall(body) == []
    assert INLINE_HANDLER.findall(body) == []


def test_the_regexes_do_catch_inline_script() -> None:
    sample = '<p><script>alert(1)</script><script src="/static/x.js"></script><b onclick="x()">'
    assert INLINE_SCRIPT.findall(sample) == ["<script>"]
    assert len(INLINE_HANDLER.findall(sample)) == 1


def test_htmx_is_served_and_configured_without_eval(site: Site) -> None:
    body = site.client.get("/").get_data(as_text=True)
    (src,) = re.findall(r'<script src="([^"]+)"', body)
    with site.client.get(src) as script:
        assert script.status_code == 200
        assert b"htmx" in script.data
    config = re.search(r"<meta name=\"htmx-config\" content='([^']+)'", body)
    assert config is not None
    assert '"allowEval": false' in config.group(1)
    assert '"includeIndicatorStyles": false' in config.group(1)
    assert re.search(r'<body hx-headers=\'\{"X-CSRFToken": "[^"]+"\}\'>', body)


# --- hostile text (planted by the ``site`` fixture) ---------------------------------------

RAW = "<script>alert(1)"
ESCAPED = "&lt;script&gt;alert(1)"


@pytest.mark.parametrize(("path", "headers"), HOSTILE_PAGES)
def test_hostile_text_is_escaped_everywhere(site: Site, path: str, headers: dict[str, str]) -> None:
    response = site.client.get(path, headers=headers)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert HOSTILE.startswith(RAW)
    assert RAW not in body
    assert "x<b>" not in body
    assert ESCAPED in body
    assert INLINE_SCRIPT.findall(body) == []


def test_hostile_svg_has_no_script_at_all(site: Site) -> None:
    svg = site.client.get("/projects/hostile/graph.svg").get_data(as_text=True)
    assert "<script" not in svg.lower()
    assert "javascript:" not in svg.lower()
    assert svg.count(ESCAPED) >= 2  # both revision boxes are labelled


def test_hostile_text_is_escaped_in_attributes(site: Site) -> None:
    edit = site.client.get("/admin/projects/hostile/edit").get_data(as_text=True)
    (field,) = re.findall(r'<input[^>]*name="script_location"[^>]*>', edit)
    location = str(site.hostile_location).replace("<", "&lt;").replace(">", "&gt;")
    assert f'value="{location}"' in field
    overview = site.client.get("/").get_data(as_text=True)
    (title,) = re.findall(r'title="([^"]*cannot be loaded[^"]*)"', overview)
    assert ESCAPED in title


# --- CSRF ---------------------------------------------------------------------------------


@pytest.fixture
def csrf_app(tmp_path: Path) -> Iterator[Flask]:
    """Like the ``app`` fixture but with CSRF protection left on, as in production."""
    (tmp_path / "csrf-instance").mkdir()
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "csrf-instance"),
            "MIGDASH_SECRET_KEY": "csrf-secret-key",
            "MIGDASH_PROBE_TIMEOUT": 3.0,
        }
    )
    services_of(app).upgrade_schema()
    with services_of(app).sessions() as session:
        create_user(session, "carol", "carol-password", Role.ADMIN)
        session.commit()
    yield app
    services_of(app).probes.close()
    services_of(app).db_engine.dispose()


def csrf_token_in(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match is not None, "no csrf_token field"
    return match.group(1)


def test_csrf_is_enforced_for_forms_and_htmx(csrf_app: Flask) -> None:
    client = csrf_app.test_client()
    credentials = {"username": "carol", "password": "carol-password"}
    refused = client.post("/login", data=credentials)
    assert refused.status_code == 400
    assert "CSRF" in refused.get_data(as_text=True)

    token = csrf_token_in(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={**credentials, "csrf_token": token}).status_code == 302
    page = client.get("/").get_data(as_text=True)
    header = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page)
    assert header is not None

    without = client.post("/overview/probe", headers=HX)
    assert without.status_code == 400
    assert "<html" not in without.get_data(as_text=True)  # an htmx error fragment
    assert (
        client.post("/overview/probe", headers={**HX, "X-CSRFToken": "forged"}).status_code == 400
    )
    with_token = client.post("/overview/probe", headers={**HX, "X-CSRFToken": header.group(1)})
    assert with_token.status_code == 200
    assert 'id="matrix"' in with_token.get_data(as_text=True)


def test_csrf_guards_admin_forms(csrf_app: Flask, tmp_path: Path) -> None:
    client = csrf_app.test_client()
    token = csrf_token_in(client.get("/login").get_data(as_text=True))
    client.post(
        "/login", data={"username": "carol", "password": "carol-password", "csrf_token": token}
    )
    project = write_project(tmp_path / "p1", [RevisionSpec("a1", None, "first")])
    form = {
        "name": "p1",
        "script_location": str(project),
        "version_table": "alembic_version",
        "track": "heads",
    }
    assert client.post("/admin/projects/new", data=form).status_code == 400
    token = csrf_token_in(client.get("/admin/projects/new").get_data(as_text=True))
    assert client.post("/admin/projects/new", data={**form, "csrf_token": token}).status_code == 302
    with services_of(csrf_app).sessions() as session:
        assert registry.get_project(session, "p1").script_location == str(project)


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [("/audit/export.csv", "text/csv"), ("/audit/export.json", "application/json")],
)
def test_exports_are_downloads_not_pages(site: Site, path: str, mimetype: str) -> None:
    response = site.client.get(path)
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.headers["X-Content-Type-Options"] == "nosniff"
