"""Drift against history on the target page and the overview (SQLite targets, no scratch server)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask

from migdash.services import services_of
from migdash.store import registry


def test_a_hand_change_shows_on_the_target_page_and_is_badged_on_the_overview(
    app: Flask,
    login: Callable[..., Any],
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
) -> None:
    project = make_project("linear")
    clean, changed = make_target(project, at="c3"), make_target(project, at="c3")
    db = sa.create_engine(changed)
    with db.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE orders ADD COLUMN note VARCHAR(200)")
    db.dispose()
    with services_of(app).sessions() as session:
        registry.add_project(session, project.name, str(project.location))
        for name, url in (("clean", clean), ("changed", changed)):
            registry.add_target(session, name, project=project.name, environment="dev", url=url)
        session.commit()
    viewer = login("viewer")
    assert 'id="check-history-drift"' not in viewer.get("/targets/changed").get_data(as_text=True)
    operator = login("operator")
    page = operator.get("/targets/changed").get_data(as_text=True)
    assert '<section id="history-drift" data-outcome="never">' in page
    for name in ("clean", "changed"):
        done = operator.post(f"/targets/{name}/drift-history", headers={"HX-Request": "true"})
        assert done.status_code == 200
    changed_page = operator.get("/targets/changed").get_data(as_text=True)
    assert 'data-outcome="drift"' in changed_page
    assert "column orders.note added" in changed_page
    clean_page = operator.get("/targets/clean").get_data(as_text=True)
    start = clean_page.index('<section id="history-drift"')
    assert 'data-outcome="none"' in clean_page[start : start + 200], clean_page[start : start + 900]
    overview = operator.get("/").get_data(as_text=True)
    assert overview.count('data-drift="history"') == 1
    assert 'href="/targets/changed#history-drift"' in overview
