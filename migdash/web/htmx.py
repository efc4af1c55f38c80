"""The only reader of HX-* headers: one URL answers a whole page or a fragment."""

from __future__ import annotations

from typing import Any

from flask import Response, make_response, render_template

from migdash.extensions import htmx

STOP_POLLING = 286
"""htmx stops an ``every Ns`` trigger when the server answers 286."""


def render_page_or_partial(page: str, partial: str, **context: Any) -> Response:
    """Render *partial* for an htmx request (not a boosted navigation), else *page*.

    A history restore (back to a URL htmx pushed, not in its cache) wants the
    whole page.  Pages include their partials, so each fragment has one source.
    """
    template = partial if htmx and not htmx.boosted and not htmx.history_restore_request else page
    response = make_response(render_template(template, **context))
    response.headers["Vary"] = "HX-Request"
    return response


def is_htmx() -> bool:
    return bool(htmx)


def stop_polling(response: Response) -> Response:
    response.status_code = STOP_POLLING
    return response


def refresh_page(response: Response) -> Response:
    """Ask htmx to reload the whole page (a fragment learnt that the page it sits in is stale)."""
    response.headers["HX-Refresh"] = "true"
    return response
