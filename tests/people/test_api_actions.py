"""The API's action routes: merges and revisions, promotions, rollouts, and who may send them.

Each route is checked against the state it should change (the job or rollout
read back through the API) and against the policy: viewers are refused with
403 and nothing is created, operators request, approvers decide, and the
requester of a rollout cannot approve it (four eyes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from migdash.services import services_of
from migdash.store.models import Role


@pytest.fixture
def world(
    make_project: Callable[..., Any],
    add_environment: Callable[..., None],
    add_target: Callable[..., str],
    make_user: Callable[..., str],
    make_token: Callable[[str], str],
) -> dict[str, str]:
    """Project shop (two heads c3, d4): dev at c3, prod (protected) at b2, two of qa at a1."""
    project = make_project("two_heads", name="shop")
    add_environment("dev")
    add_environment("qa")
    add_environment("prod", protected=True)
    add_target(project, "shop-dev", "dev", at="c3")
    add_target(project, "shop-prod", "prod", at="b2")
    add_target(project, "shop-qa1", "qa", at="a1")
    add_target(project, "shop-qa2", "qa", at="a1")
    return {role.value: make_token(make_user(role.value, role)) for role in Role}


def counts(app: Any) -> tuple[int, int]:
    import sqlalchemy as sa

    from migdash.store.models import Job
    from migdash.store.rollout_models import Rollout

    with services_of(app).sessions() as session:
        jobs = session.scalar(sa.select(sa.func.count()).select_from(Job))
        rollouts = session.scalar(sa.select(sa.func.count()).select_from(Rollout))
    return int(jobs or 0), int(rollouts or 0)


ACTIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/projects/shop/merge", {"message": "merge them"}),
    ("POST", "/projects/shop/revision", {"message": "more", "head": "c3"}),
    ("GET", "/compare/shop/promote?from=dev&to=qa", {}),
    ("POST", "/compare/shop/promote", {"from": "dev", "to": "qa"}),
    ("POST", "/rollouts", {"project": "shop", "revision": "c3", "environments": ["qa"]}),
]


@pytest.mark.parametrize(("method", "path", "body"), ACTIONS)
def test_a_viewer_is_refused_and_nothing_is_created(
    app: Any, api: Callable[..., Any], world: dict[str, str], method: str, path: str, body: Any
) -> None:
    before = counts(app)
    response = api(method, path, world["viewer"], body or None)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert counts(app) == before
    allowed = api(method, path, world["operator"], body or None)
    assert allowed.status_code in (200, 201), allowed.get_json()


def test_merge_and_revision_jobs_are_created_and_visible(
    api: Callable[..., Any], world: dict[str, str]
) -> None:
    operator = world["operator"]
    merged = api("POST", "/projects/shop/merge", operator, {"message": "merge them"})
    assert merged.status_code == 201, merged.get_json()
    job = merged.get_json()
    assert (job["kind"], job["project"], job["state"]) == ("merge", "shop", "queued")
    assert job["arguments"]["message"] == "merge them"
    assert sorted(job["arguments"]["heads"]) == ["c3", "d4"]
    assert api("GET", f"/jobs/{job['id']}", world["viewer"]).get_json() == job
    made = api("POST", "/projects/shop/revision", operator, {"message": "x", "head": "d4"})
    assert made.status_code == 201
    assert made.get_json()["arguments"]["head"] == "d4"
    bad = api("POST", "/projects/shop/revision", operator, {"message": "x", "head": "zz"})
    assert bad.status_code in (400, 404)
    assert api("POST", "/projects/nope/merge", operator, {"message": "m"}).status_code == 404


def test_promotion_plan_then_a_stale_fingerprint_is_refused_and_nothing_is_created(
    app: Any, api: Callable[..., Any], world: dict[str, str]
) -> None:
    operator = world["operator"]
    plan = api("GET", "/compare/shop/promote?from=dev&to=qa", operator)
    assert plan.status_code == 200, plan.get_json()
    body = plan.get_json()
    assert body["source_revisions"] == ["c3"]
    assert {t["target"]: t["destination"] for t in body["targets"]} == {
        "shop-qa1": "c3",
        "shop-qa2": "c3",
    }
    assert all(t["steps"] and t["plan_hash"] for t in body["targets"])
    before = counts(app)
    stale = api(
        "POST",
        "/compare/shop/promote",
        operator,
        {"from": "dev", "to": "qa", "fingerprint": "0" * 64},
    )
    assert stale.status_code == 409
    assert stale.get_json()["error"]["code"] == "conflict"
    assert counts(app) == before
    fresh = {"from": "dev", "to": "qa", "fingerprint": body["fingerprint"]}
    requested = api("POST", "/compare/shop/promote", operator, fresh)
    assert requested.status_code == 201, requested.get_json()
    jobs = requested.get_json()
    assert sorted(j["target"] for j in jobs) == ["shop-qa1", "shop-qa2"]
    assert counts(app)[0] == before[0] + 2


def test_a_rollout_created_paused_resumed_and_cancelled_through_the_api(
    api: Callable[..., Any], world: dict[str, str]
) -> None:
    operator = world["operator"]
    body = {"project": "shop", "revision": "c3", "environments": ["qa"], "canary": 1, "wave": 1}
    made = api("POST", "/rollouts", operator, body)
    assert made.status_code == 201, made.get_json()
    rollout = made.get_json()
    assert rollout["state"] == "running"
    assert [(w["name"], w["targets"]) for w in rollout["waves"]] == [
        ("the canary", 1),
        ("wave 1", 1),
    ]
    rid = rollout["id"]
    assert [r["id"] for r in api("GET", "/rollouts", world["viewer"]).get_json()] == [rid]
    assert api("POST", f"/rollouts/{rid}/pause", world["viewer"]).status_code == 403
    assert api("POST", f"/rollouts/{rid}/pause", operator).get_json()["state"] == "paused"
    assert api("GET", f"/rollouts/{rid}", world["viewer"]).get_json()["state"] == "paused"
    assert api("POST", f"/rollouts/{rid}/resume", operator).get_json()["state"] == "running"
    assert api("POST", f"/rollouts/{rid}/cancel", operator).get_json()["state"] == "cancelled"
    again = api("POST", f"/rollouts/{rid}/pause", operator)
    assert again.status_code == 409
    assert api("GET", "/rollouts/999999", operator).status_code == 404


def test_rollout_approval_keeps_four_eyes(api: Callable[..., Any], world: dict[str, str]) -> None:
    body = {"project": "shop", "revision": "c3", "environments": ["prod"]}
    made = api("POST", "/rollouts", world["admin"], body).get_json()
    assert made["state"] == "awaiting_approval"
    rid = made["id"]
    assert api("POST", f"/rollouts/{rid}/approve", world["operator"], {}).status_code == 403
    own = api("POST", f"/rollouts/{rid}/approve", world["admin"], {"comment": "mine"})
    assert own.status_code == 403
    assert own.get_json()["error"]["code"] == "four_eyes"
    stale = api("POST", f"/rollouts/{rid}/approve", world["approver"], {"fingerprint": "0" * 64})
    assert stale.status_code == 409
    approved = api(
        "POST", f"/rollouts/{rid}/approve", world["approver"], {"fingerprint": made["fingerprint"]}
    )
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["state"] == "running"


def test_rollout_reject_ends_it_cancelled(api: Callable[..., Any], world: dict[str, str]) -> None:
    body = {"project": "shop", "revision": "c3", "environments": ["prod"]}
    rid = api("POST", "/rollouts", world["operator"], body).get_json()["id"]
    assert api("POST", f"/rollouts/{rid}/reject", world["viewer"], {}).status_code == 403
    rejected = api("POST", f"/rollouts/{rid}/reject", world["approver"], {"comment": "no"})
    assert rejected.get_json()["state"] == "cancelled"
