"""One table maps each error to its HTTP status, for pages and the API alike."""

from __future__ import annotations

import html
import inspect
import pkgutil
from collections.abc import Callable
from importlib import import_module

import pytest
from flask import Flask
from flask.testing import FlaskClient

import migdash
from migdash.errors import MigdashError
from migdash.web.errors import ERROR_TABLE, classify

ENTRY_POINTS = {"migdash.__main__", "migdash.wsgi"}
"""Modules that build an app or run when imported (the app needs its secret key)."""


def all_error_types() -> list[type[MigdashError]]:
    """Every MigdashError subclass defined anywhere in the package."""
    for info in pkgutil.walk_packages(migdash.__path__, "migdash."):
        if ".migrations" not in info.name and info.name not in ENTRY_POINTS:
            import_module(info.name)
    found: set[type[MigdashError]] = set()
    pending = [MigdashError]
    while pending:
        kind = pending.pop()
        found.add(kind)
        pending.extend(kind.__subclasses__())
    return sorted(found, key=lambda k: k.__name__)


def example(kind: type[MigdashError]) -> MigdashError:
    """An instance, whatever the constructor wants."""
    params = [
        p
        for p in inspect.signature(kind.__init__).parameters.values()
        if p.name != "self" and p.default is p.empty and p.kind is not p.VAR_KEYWORD
    ]
    values = {"job_id": 7}
    return kind(*(values.get(p.name, "x") for p in params))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", all_error_types(), ids=lambda k: k.__name__)
def test_pages_and_api_answer_the_same_status_from_the_one_table(
    app: Flask, login: Callable[..., FlaskClient], kind: type[MigdashError]
) -> None:
    error = example(kind)
    code, status = classify(error)
    assert 400 <= status < 500, "an error migdash raises on purpose is never a 5xx"

    @app.get(f"/boom-{kind.__name__}")
    def page() -> str:
        raise error

    @app.get(f"/api/v1/boom-{kind.__name__}")
    def api() -> str:
        raise error

    client = login("admin")
    page_answer = client.get(f"/boom-{kind.__name__}")
    api_answer = client.get(f"/api/v1/boom-{kind.__name__}")
    assert page_answer.status_code == status
    assert error.message in html.unescape(page_answer.get_data(as_text=True))
    assert api_answer.status_code == status
    assert api_answer.get_json()["error"]["code"] == code


def test_the_table_puts_subclasses_before_their_parents() -> None:
    kinds = [kind for kind, _, _ in ERROR_TABLE]
    for position, kind in enumerate(kinds):
        for later in kinds[position + 1 :]:
            assert not issubclass(later, kind) or later is kind, (kind, later)


def test_a_pending_job_error_links_the_job_on_pages_and_names_it_in_json(
    app: Flask, login: Callable[..., FlaskClient]
) -> None:
    from migdash.errors import JobPending

    @app.get("/boom-pending")
    def page() -> str:
        raise JobPending(7, "shop-prod", "queued")

    @app.get("/api/v1/boom-pending")
    def api() -> str:
        raise JobPending(7, "shop-prod", "queued")

    client = login("admin")
    html = client.get("/boom-pending").get_data(as_text=True)
    assert 'href="/jobs/7"' in html
    assert "job 7 is already pending for target shop-prod" in html
    data = client.get("/api/v1/boom-pending").get_json()["error"]
    assert (data["code"], data["job"]) == ("job_pending", 7)
