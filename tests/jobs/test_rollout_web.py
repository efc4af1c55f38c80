"""The rollout pages: create from the form, live progress that polls without a storm, controls."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from migdash.services import services_of
from migdash.store.models import Role
from migdash.store.users import create_user
from tests.jobs.rollout_fleet import build_fleet


def sign_in(app: Flask, username: str, role: Role) -> FlaskClient:
    with services_of(app).sessions() as session:
        create_user(session, username, "correct-horse", role)
        session.commit()
    client = app.test_client()
    assert (
        client.post("/login", data={"username": username, "password": "correct-horse"}).status_code
        == 302
    )
    return client


def test_a_rollout_from_the_form_to_the_end_with_approval_and_polling(
    app: Flask, tmp_path: Path, run_queue: Callable[[], int]
) -> None:
    fleet = build_fleet(app, tmp_path, 2, environment="prod", protected=True)
    olga, amir = sign_in(app, "olga", Role.OPERATOR), sign_in(app, "amir", Role.APPROVER)
    created = olga.post(
        "/rollouts/",
        data={
            "project": "fleet",
            "revision": "heads",
            "environment": "prod",
            "canary": "1",
            "wave": "5",
            "concurrency": "2",
            "on_failure": "halt",
        },
    )
    assert created.status_code == 302, created.get_data(as_text=True)
    page_url = created.headers["Location"]
    page = olga.get(page_url).get_data(as_text=True)
    assert 'data-state="awaiting_approval"' in page
    assert "2 target(s) from a1" in page, "the one distinct plan and its targets"
    assert "Approve the rollout" not in page, "an operator sees no approve button"
    trigger = re.search(r'hx-trigger="([^"]*)"', page)
    assert trigger is not None
    refresh = app.config["MIGDASH_REFRESH_SECONDS"]
    assert trigger.group(1) == f"every {refresh}s", "no load trigger: a swap never re-fires"
    awaiting = amir.get("/approvals/").get_data(as_text=True)
    assert f'href="{page_url}"' in awaiting

    approver_page = amir.get(page_url).get_data(as_text=True)
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]{64})"', approver_page)
    assert fingerprint is not None
    refused = olga.post(f"{page_url}/approve", data={"fingerprint": fingerprint.group(1)})
    assert refused.status_code == 403
    approved = amir.post(f"{page_url}/approve", data={"fingerprint": fingerprint.group(1)})
    assert approved.status_code == 302
    fleet.drive(run_queue)

    fragment = olga.get(page_url, headers={"HX-Request": "true"})
    assert fragment.status_code == 286, "settled: the poll stops"
    text = fragment.get_data(as_text=True)
    assert 'data-state="succeeded"' in text
    assert "<html" not in text
    assert fleet.versions("t00") == fleet.versions("t01") == ["b2"]
    listed = olga.get("/rollouts/").get_data(as_text=True)
    assert "succeeded" in listed


def test_pause_resume_and_cancel_buttons(app: Flask, tmp_path: Path) -> None:
    build_fleet(app, tmp_path, 1)
    olga = sign_in(app, "olga", Role.OPERATOR)
    created = olga.post(
        "/rollouts/", data={"project": "fleet", "revision": "heads", "environment": "dev"}
    )
    page_url = created.headers["Location"]
    live = olga.get(page_url, headers={"HX-Request": "true"})
    assert live.status_code == 200, "running: keep polling"
    assert olga.post(f"{page_url}/pause").status_code == 302
    assert 'data-state="paused"' in olga.get(page_url).get_data(as_text=True)
    again = olga.post(f"{page_url}/pause")
    assert again.status_code == 409
    assert olga.post(f"{page_url}/resume").status_code == 302
    assert olga.post(f"{page_url}/cancel").status_code == 302
    assert 'data-state="cancelled"' in olga.get(page_url).get_data(as_text=True)
    bad = olga.post(
        "/rollouts/",
        data={"project": "fleet", "revision": "heads", "environment": "dev", "wave": "0"},
    )
    assert bad.status_code == 400
    assert "wave" in bad.get_data(as_text=True)
