"""What the web tests share besides fixtures: reading pages with plain regular expressions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

HOSTILE = '<script>alert(1)</script> "quotes"'
"""Markup planted in every free-text place a project offers."""

INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>", re.IGNORECASE)
"""A ``<script>`` element without ``src``: what a strict CSP would block."""
INLINE_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)
"""An ``onclick=``-style attribute: also blocked by ``script-src 'self'``."""
REVISION_LINK = re.compile(r'/revisions/([^"/?]+)"')


def uncovered_endpoints(app: Flask, paths: list[str]) -> set[str]:
    """GET endpoints of *app* (but static files and the login page) no path in *paths* reaches."""
    adapter = app.url_map.bind("localhost")
    covered = {adapter.match(path.split("?")[0], method="GET")[0] for path in paths}
    wanted = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or ())
        and rule.endpoint not in {"static", "auth.login"}
        and not rule.endpoint.startswith("api.")  # token-authenticated: tests/web/test_authz.py
        # no sign-in (health) or a token (metrics): tests/jobs/test_health.py, test_metrics.py
        and not rule.endpoint.startswith(("health.", "metrics."))
    }
    return wanted - covered


def section(html: str, start: str, end: str | None = None) -> str:
    """The part of *html* from the first *start* to the next *end* (or to the end)."""
    begin = html.index(start)
    finish = html.index(end, begin) if end else len(html)
    return html[begin:finish]


def target_states(html: str) -> dict[str, str]:
    """``data-target`` -> ``data-state`` for every target cell in the overview matrix."""
    return dict(re.findall(r'data-target="([^"]+)" data-state="([^"]+)"', html))


def revision_links(html: str) -> list[str]:
    """Revision ids linked from *html*, in document order."""
    return REVISION_LINK.findall(html)


@dataclass(frozen=True)
class Site:
    """The module-scoped app built by the ``site`` fixture."""

    app: Flask
    client: FlaskClient
    """Signed in as an admin."""
    hostile_location: Path
