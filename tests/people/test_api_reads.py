"""The API's read routes: what they answer, in what order, and to whom.

Answers are checked against Alembic itself (history order, heads) and
against the registry; permissions against the documented policy (the audit
trail needs the approver role, as its page does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from alembic.script import ScriptDirectory

from migdash.store.models import Role

BRANCHY = "branchy"  # SHAPES key: a1 -> b2 -> (c3, d4) -> e5


@pytest.fixture
def registry_with_tokens(
    make_project: Callable[..., Any],
    add_environment: Callable[..., None],
    add_target: Callable[..., str],
    make_user: Callable[..., str],
    make_token: Callable[[str], str],
    app: Any,
) -> tuple[Any, dict[str, str]]:
    from migdash.services import services_of
    from migdash.store import registry

    project = make_project("linear", name="shop")
    add_environment("dev")
    add_environment("prod", protected=True)
    add_target(project, "shop-dev", "dev", at="a1")
    add_target(project, "shop-prod", "prod", at="c3")
    with services_of(app).sessions() as session:
        registry.get_target(session, "shop-prod").tags = ["eu", "primary"]
        session.commit()
    tokens = {role.value: make_token(make_user(role.value, role)) for role in Role}
    return project, tokens


def test_projects_heads_graph_and_revision(
    api: Callable[..., Any], registry_with_tokens: tuple[Any, dict[str, str]]
) -> None:
    project, tokens = registry_with_tokens
    viewer = tokens["viewer"]
    listed = api("GET", "/projects", viewer).get_json()
    assert listed == [{"name": "shop", "heads": ["c3"], "multiple_heads": False, "problem": None}]
    assert api("GET", "/projects/shop", viewer).get_json() == listed[0]
    heads = api("GET", "/projects/shop/heads", viewer).get_json()
    assert [h["revision"] for h in heads] == ["c3"]
    graph = api("GET", "/projects/shop/graph", viewer).get_json()
    assert graph["bases"] == ["a1"]
    assert [r["revision"] for r in graph["revisions"]] == ["c3", "b2", "a1"]
    revision = api("GET", "/projects/shop/revisions/b2", viewer).get_json()
    assert revision["down_revisions"] == ["a1"]
    assert revision["children"] == ["c3"]
    assert "def upgrade" in revision["source"]
    missing = api("GET", "/projects/shop/revisions/zz", viewer)
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "unknown_revision"
    assert api("GET", "/projects/nope/graph", viewer).get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("n", [1, 2, 3, 50])
def test_history_pages_concatenate_to_alembics_order(
    api: Callable[..., Any], registry_with_tokens: tuple[Any, dict[str, str]], n: int
) -> None:
    project, tokens = registry_with_tokens
    expected = [
        s.revision for s in ScriptDirectory.from_config(project.alembic_config()).walk_revisions()
    ]
    first = api("GET", f"/projects/shop/history?n={n}", tokens["viewer"]).get_json()
    assert first["total"] == len(expected)
    assert first["pages"] == -(-len(expected) // n)
    seen = []
    for page in range(1, first["pages"] + 2):  # one past the end: empty
        body = api("GET", f"/projects/shop/history?n={n}&page={page}", tokens["viewer"]).get_json()
        assert len(body["revisions"]) <= n
        seen += [r["revision"] for r in body["revisions"]]
    assert seen == expected


def test_status_and_targets_filter_by_environment_tag_and_state(
    api: Callable[..., Any], registry_with_tokens: tuple[Any, dict[str, str]]
) -> None:
    _, tokens = registry_with_tokens
    viewer = tokens["viewer"]
    probed = api("GET", "/status?probe=1", viewer).get_json()
    assert {r["target"]: r["state"] for r in probed} == {
        "shop-dev": "behind",
        "shop-prod": "up_to_date",
    }

    def names(path: str) -> list[str]:
        response = api("GET", path, viewer)
        assert response.status_code == 200, response.get_json()
        return [row["target"] for row in response.get_json()]

    assert names("/status?environment=prod") == ["shop-prod"]
    assert names("/status?env=dev") == ["shop-dev"]
    assert names("/status?tag=eu") == ["shop-prod"]
    assert names("/status?state=behind") == ["shop-dev"]
    assert names("/status?state=behind&tag=eu") == []
    assert names("/targets?tag=primary") == ["shop-prod"]
    assert names("/targets?environment=dev&project=shop") == ["shop-dev"]
    one = api("GET", "/targets/shop-prod", viewer).get_json()
    assert one["tags"] == ["eu", "primary"]
    assert one["status"]["state"] == "up_to_date"
    assert "sqlite" in one["url"]


def test_compare_and_schema_diff(
    api: Callable[..., Any], registry_with_tokens: tuple[Any, dict[str, str]]
) -> None:
    _, tokens = registry_with_tokens
    viewer = tokens["viewer"]
    comparison = api("GET", "/compare/shop?a=dev&b=prod", viewer).get_json()
    assert [r["revision"] for r in comparison["a_lacks"]] == ["b2", "c3"]
    assert comparison["b_lacks"] == []
    by_target = api("GET", "/compare/shop?target_a=shop-prod&target_b=shop-dev", viewer)
    assert by_target.get_json()["b_lacks"][0]["lacked_by"] == ["shop-dev"]
    half = api("GET", "/compare/shop?a=dev", viewer).get_json()["error"]
    assert (half["code"], half["field"]) == ("invalid_input", "b")
    diff = api("GET", "/schemas/diff?left=shop-dev&right=shop-prod", viewer).get_json()
    assert diff["same"] is False
    added = {(i["change"], i["kind"], i["name"]) for i in diff["items"]}
    assert {("added", "table", "orders"), ("added", "table", "items")} <= added


@pytest.mark.parametrize(
    ("role", "allowed"),
    [("viewer", False), ("operator", False), ("approver", True), ("admin", True)],
)
def test_the_audit_trail_needs_the_approver_role_and_pages_back(
    api: Callable[..., Any],
    registry_with_tokens: tuple[Any, dict[str, str]],
    role: str,
    allowed: bool,
) -> None:
    _, tokens = registry_with_tokens
    response = api("GET", "/audit?limit=2", tokens[role])
    if not allowed:
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "forbidden"
        return
    everything = api("GET", "/audit?limit=1000", tokens[role]).get_json()
    assert len(everything) >= 4  # registry changes, users, tokens
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True)
    pages, before = [], None
    for _ in range(len(everything) + 1):  # bounded: a cursor that does not move fails, not hangs
        query = "/audit?limit=2" + (f"&before={before}" if before else "")
        page = api("GET", query, tokens[role]).get_json()
        if not page:
            break
        pages += page
        before = page[-1]["id"]
    assert pages == everything
    prefix = everything[0]["action"].rsplit(".", 1)[0]  # "registry.target" of "...target.add"
    kept = api("GET", f"/audit?action={prefix}", tokens[role]).get_json()
    assert kept == [e for e in everything if e["action"].startswith(prefix)]
    assert len(kept) < len(everything)
