"""Four-eyes approval on protected environments, through the web, the API and the CLI.

Requests are made as a person would (the plan page's POST), jobs run through
a real Worker in this process, targets are real SQLite databases read back
with plain SQL, and the audit trail is read from the metadata database.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from migdash.store.models import Approval, JobState
from migdash.store.users import get_user
from tests.conftest import migrate_to

REVIEW_SQL = re.compile(r'<pre class="sql" id="review-sql">(.*?)</pre>', re.DOTALL)
PLAN_HASH = re.compile(r'<input type="hidden" name="plan_hash" value="([0-9a-f]{64})">')


def revisions_in(url: str) -> list[str]:
    """What the target's version table holds, read directly (not through migdash)."""
    db_engine = sa.create_engine(url)
    try:
        with db_engine.connect() as connection:
            return sorted(
                r[0] for r in connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            )
    finally:
        db_engine.dispose()


def request_upgrade(client: FlaskClient, target: str, revision: str = "heads") -> int:
    """Press "Confirm upgrade" on the plan page; the redirect names the new job."""
    response = client.post(
        f"/actions/targets/{target}", data={"action": "upgrade", "revision": revision}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    match = re.fullmatch(r"/jobs/(\d+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def read_review(client: FlaskClient, job_id: int) -> tuple[str, str, str]:
    """The review page: (page text, the SQL shown, the plan hash the Approve form carries)."""
    response = client.get(f"/approvals/{job_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    sql, plan_hash = REVIEW_SQL.search(page), PLAN_HASH.search(page)
    assert sql, "the review page shows the SQL"
    assert plan_hash, "and the Approve form carries the plan's hash"
    return page, html.unescape(sql.group(1)), plan_hash.group(1)


def approve_in_web(client: FlaskClient, job_id: int, plan_hash: str, comment: str = "") -> Any:
    return client.post(
        f"/approvals/{job_id}/approve", data={"plan_hash": plan_hash, "comment": comment}
    )


@pytest.fixture
def prod(
    make_project: Callable[..., Any],
    add_environment: Callable[..., None],
    add_target: Callable[..., str],
) -> Callable[..., tuple[Any, str]]:
    """A linear project with target ``shop-prod`` at a1 in protected ``prod``; (project, url)."""

    def factory(required_approvals: int = 1) -> tuple[Any, str]:
        project = make_project("linear")
        add_environment("prod", protected=True, required_approvals=required_approvals)
        return project, add_target(project, "shop-prod", "prod", at="a1")

    return factory


@pytest.mark.parametrize(
    ("requester_role", "refusal"),
    [
        ("operator", "forbidden"),
        ("approver", "four_eyes"),
    ],
)
def test_a_requester_never_approves_their_own_job_and_another_approver_does(
    requester_role: str,
    refusal: str,
    prod: Callable[..., tuple[Any, str]],
    make_user: Callable[..., str],
    sign_in: Callable[[str], FlaskClient],
    make_token: Callable[[str], str],
    api: Callable[..., Any],
    cli: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    audit_events: Callable[..., list[Any]],
    db_session: Any,
) -> None:
    _, url = prod()
    make_user("olga", requester_role)
    make_user("amir", "approver")
    olga = sign_in("olga")

    job_id = request_upgrade(olga, "shop-prod")
    job = load_job(job_id)
    assert job.state == JobState.AWAITING_APPROVAL.value
    assert job.from_revisions == ["a1"]
    assert re.fullmatch(r"[0-9a-f]{64}", job.plan_hash or "")
    assert run_queue() == 0, "nothing was queued"
    assert revisions_in(url) == ["a1"], "nothing ran"
    job_page = olga.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'data-state="awaiting_approval"' in job_page
    assert "waits for approval" in job_page

    web = approve_in_web(olga, job_id, job.plan_hash)
    assert web.status_code == 403
    message = "cannot approve it" if refusal == "four_eyes" else "needs the approver role"
    assert message in web.get_data(as_text=True)
    refused = api("POST", f"/jobs/{job_id}/approve", make_token("olga"), {"comment": "mine"})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == refusal
    result = cli("approve", str(job_id), "--as", "olga", ok=False)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert load_job(job_id).state == JobState.AWAITING_APPROVAL.value
    assert db_session.scalars(sa.select(Approval)).all() == []

    amir = sign_in("amir")
    page, sql, plan_hash = read_review(amir, job_id)
    assert "CREATE TABLE orders" in sql
    assert "CREATE TABLE items" in sql
    assert plan_hash == job.plan_hash
    assert "Requested by</dt><dd>olga" in page
    approved = approve_in_web(amir, job_id, plan_hash, comment="read the SQL; fine")
    assert approved.status_code == 302
    assert approved.headers["Location"] == f"/jobs/{job_id}"
    assert load_job(job_id).state == JobState.QUEUED.value

    assert run_queue() == 1
    done = load_job(job_id)
    assert done.state == JobState.SUCCEEDED.value, done.error
    assert done.result_revisions == ["c3"]
    assert revisions_in(url) == ["c3"]

    refusals = audit_events("job.approve_refused", job_id=job_id)
    expected_refusals = ["olga"] * 3 if refusal == "four_eyes" else []
    assert [e.actor for e in refusals] == expected_refusals, "web, API and CLI refusals are kept"
    events = [e for e in audit_events(job_id=job_id) if e.action != "job.approve_refused"]
    assert [e.action for e in events] == ["job.request", "job.approve", "job.start", "job.end"]
    request, approval, start, end = events
    shown_sql_hash = hashlib.sha256(sql.encode()).hexdigest()
    assert (request.actor, request.target, request.environment, request.project) == (
        "olga",
        "shop-prod",
        "prod",
        "linear",
    )
    assert (request.from_revisions, request.to_revision) == (["a1"], "heads")
    assert request.sql_hash == shown_sql_hash, "the request hashes the SQL the approver read"
    assert (approval.actor, approval.target, approval.environment) == ("amir", "shop-prod", "prod")
    assert (approval.from_revisions, approval.to_revision) == (["a1"], "heads")
    assert approval.sql_hash == shown_sql_hash
    assert approval.detail["comment"] == "read the SQL; fine"
    assert start.actor == end.actor
    assert start.actor not in ("olga", "amir"), "the worker acts"
    assert (start.target, start.from_revisions) == ("shop-prod", ["a1"])
    assert (end.target, end.from_revisions, end.to_revision) == ("shop-prod", ["a1"], "c3")
    assert end.detail["state"] == "succeeded"
    assert get_user(db_session, "olga").role == requester_role


def test_two_required_approvals_need_two_distinct_approvers(
    prod: Callable[..., tuple[Any, str]],
    make_user: Callable[..., str],
    sign_in: Callable[[str], FlaskClient],
    make_token: Callable[[str], str],
    api: Callable[..., Any],
    cli: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    audit_events: Callable[..., list[Any]],
) -> None:
    _, url = prod(required_approvals=2)
    make_user("olga", "operator")
    make_user("amir", "approver")
    make_user("bea", "admin")
    job_id = request_upgrade(sign_in("olga"), "shop-prod")
    amir = make_token("amir")

    unseen = api("POST", f"/jobs/{job_id}/approve", amir, {"comment": "one"})
    assert unseen.status_code == 400, "the API approves only the plan the caller reviewed"
    assert unseen.get_json()["error"]["code"] == "invalid_input"
    assert "plan_hash is required" in unseen.get_json()["error"]["message"]
    plan = api("GET", f"/jobs/{job_id}/plan", amir).get_json()
    assert plan["steps"] == ["upgrade a1 -> b2", "upgrade b2 -> c3"]
    assert "CREATE TABLE orders" in plan["sql"]
    reviewed = {"comment": "one", "plan_hash": plan["plan_hash"]}
    first = api("POST", f"/jobs/{job_id}/approve", amir, reviewed)
    assert first.status_code == 200
    assert (first.get_json()["approvals"], first.get_json()["required_approvals"]) == (1, 2)
    assert first.get_json()["state"] == JobState.AWAITING_APPROVAL.value
    assert run_queue() == 0
    again = api("POST", f"/jobs/{job_id}/approve", amir, {**reviewed, "comment": "me again"})
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "conflict"
    assert "already decided" in again.get_json()["error"]["message"]
    review = sign_in("bea").get(f"/approvals/{job_id}").get_data(as_text=True)
    assert "1 of 2 needed" in review

    second = cli("approve", str(job_id), "--as", "bea", "--comment", "two")
    assert "approved by bea (2 of 2); queued" in second.output
    assert run_queue() == 1
    assert load_job(job_id).state == JobState.SUCCEEDED.value
    assert revisions_in(url) == ["c3"]
    approvers = [e.actor for e in audit_events("job.approve", job_id=job_id)]
    assert approvers == ["amir", "bea"]


def test_a_rejected_job_never_runs(
    prod: Callable[..., tuple[Any, str]],
    make_user: Callable[..., str],
    sign_in: Callable[[str], FlaskClient],
    make_token: Callable[[str], str],
    api: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    audit_events: Callable[..., list[Any]],
) -> None:
    _, url = prod()
    make_user("olga", "operator")
    make_user("amir", "approver")
    make_user("bea", "approver")
    job_id = request_upgrade(sign_in("olga"), "shop-prod")

    rejected = sign_in("amir").post(
        f"/approvals/{job_id}/reject", data={"comment": "not during the sale"}
    )
    assert rejected.status_code == 302
    job = load_job(job_id)
    assert job.state == JobState.REJECTED.value
    assert job.finished_at is not None
    late = api("POST", f"/jobs/{job_id}/approve", make_token("bea"), {})
    assert late.status_code == 409
    assert late.get_json()["error"]["code"] == "conflict"
    assert "rejected, not awaiting approval" in late.get_json()["error"]["message"]
    assert run_queue() == 0
    assert load_job(job_id).state == JobState.REJECTED.value
    assert revisions_in(url) == ["a1"]
    (event,) = audit_events("job.reject", job_id=job_id)
    assert (event.actor, event.target, event.detail["comment"]) == (
        "amir",
        "shop-prod",
        "not during the sale",
    )
    assert audit_events("job.start", job_id=job_id) == []


def test_a_target_that_moved_needs_its_new_plan_approved(
    prod: Callable[..., tuple[Any, str]],
    make_user: Callable[..., str],
    sign_in: Callable[[str], FlaskClient],
    make_token: Callable[[str], str],
    api: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    audit_events: Callable[..., list[Any]],
) -> None:
    project, url = prod()
    make_user("olga", "operator")
    make_user("amir", "approver")
    make_user("bea", "approver")
    job_id = request_upgrade(sign_in("olga"), "shop-prod")
    amir = sign_in("amir")
    _, old_sql, old_plan = read_review(amir, job_id)
    assert "CREATE TABLE orders" in old_sql

    migrate_to(project, url, "b2")  # someone ran Alembic by hand meanwhile

    moved = api("POST", f"/jobs/{job_id}/approve", make_token("bea"), {"plan_hash": old_plan})
    assert moved.status_code == 409
    error = moved.get_json()["error"]
    assert error["code"] == "target_moved"
    assert "now at b2" in error["message"]
    assert load_job(job_id).plan_hash != old_plan, "the plan was renewed"

    stale = approve_in_web(amir, job_id, old_plan)
    assert stale.status_code == 409
    page = stale.get_data(as_text=True)
    assert 'id="plan-changed"' in page
    assert "<code>b2</code>" in page, "the page shows where the target is now"
    new_sql = html.unescape(REVIEW_SQL.search(page).group(1))  # type: ignore[union-attr]
    assert "CREATE TABLE items" in new_sql
    assert "CREATE TABLE orders" not in new_sql
    new_plan = PLAN_HASH.search(page).group(1)  # type: ignore[union-attr]
    assert new_plan == load_job(job_id).plan_hash != old_plan
    assert load_job(job_id).state == JobState.AWAITING_APPROVAL.value
    assert run_queue() == 0

    assert approve_in_web(amir, job_id, new_plan).status_code == 302
    assert run_queue() == 1
    done = load_job(job_id)
    assert done.state == JobState.SUCCEEDED.value
    assert revisions_in(url) == ["c3"]
    (approval,) = audit_events("job.approve", job_id=job_id)
    assert (approval.actor, approval.from_revisions) == ("amir", ["b2"])
    assert approval.sql_hash == hashlib.sha256(new_sql.encode()).hexdigest()


def test_approvals_for_an_old_plan_stop_counting_and_can_be_given_again(
    prod: Callable[..., tuple[Any, str]],
    make_user: Callable[..., str],
    sign_in: Callable[[str], FlaskClient],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    audit_events: Callable[..., list[Any]],
) -> None:
    project, url = prod(required_approvals=2)
    make_user("olga", "operator")
    make_user("amir", "approver")
    make_user("bea", "approver")
    job_id = request_upgrade(sign_in("olga"), "shop-prod")
    amir, bea = sign_in("amir"), sign_in("bea")
    _, _, old_plan = read_review(amir, job_id)
    assert approve_in_web(amir, job_id, old_plan).status_code == 302  # 1 of 2

    migrate_to(project, url, "b2")
    _, _, new_plan = read_review(bea, job_id)  # the review page re-plans on every view
    assert new_plan != old_plan
    assert approve_in_web(bea, job_id, old_plan).status_code == 409
    assert approve_in_web(bea, job_id, new_plan).status_code == 302
    page, _, _ = read_review(amir, job_id)
    assert "1 of 2 needed" in page, "amir's approval was for the old plan"
    assert "no longer counts" in page
    assert load_job(job_id).state == JobState.AWAITING_APPROVAL.value

    renewed = approve_in_web(amir, job_id, new_plan, comment="the new plan is fine too")
    assert renewed.status_code == 302, renewed.get_data(as_text=True)[:2000]
    assert load_job(job_id).state == JobState.QUEUED.value
    assert run_queue() == 1
    assert revisions_in(url) == ["c3"]
    approvals = audit_events("job.approve", job_id=job_id)
    assert [(e.actor, e.from_revisions) for e in approvals] == [
        ("amir", ["a1"]),
        ("bea", ["b2"]),
        ("amir", ["b2"]),
    ]
    assert approvals[0].sql_hash != approvals[2].sql_hash == approvals[1].sql_hash
