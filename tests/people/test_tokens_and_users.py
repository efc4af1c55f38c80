"""Users and API tokens through ``migdash user`` / ``migdash token``, checked on the web and API."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.people.conftest import PASSWORD


@pytest.fixture
def shop(make_project: Callable[..., Any], add_target: Callable[..., str]) -> None:
    """A linear project with target ``shop-dev`` at a1 in the unprotected ``dev``."""
    add_target(make_project("linear"), "shop-dev", "dev", at="a1")


def create_user_cli(cli: Callable[..., Any], name: str, role: str) -> None:
    result = cli("user", "create", name, "--role", role, "--password", PASSWORD)
    assert result.output.strip() == f"created user {name} ({role})"


def test_a_token_works_until_it_is_revoked(
    cli: Callable[..., Any],
    cli_json: Callable[..., Any],
    api: Callable[..., Any],
    audit_events: Callable[..., list[Any]],
) -> None:
    create_user_cli(cli, "alice", "viewer")
    created = cli_json("token", "create", "ci", "--user", "alice")
    token = created["token"]
    assert token.startswith("mdt_")
    assert len(token) > 40

    assert api("GET", "/status", token).status_code == 200
    assert api("GET", "/targets", token).get_json() == []
    listed = cli("token", "list", "--json").stdout
    assert token not in listed
    (row,) = json.loads(listed)
    assert (row["id"], row["user"], row["name"], row["revoked"]) == (
        created["id"],
        "alice",
        "ci",
        False,
    )
    assert token.startswith(row["prefix"])
    assert len(row["prefix"]) < len(token) // 3

    assert cli("token", "revoke", str(created["id"])).output.strip() == (
        f"token {created['id']} revoked"
    )
    refused = api("GET", "/status", token)
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthorized"
    assert "Bearer" in refused.get_json()["error"]["hint"]
    assert json.loads(cli("token", "list", "--json").stdout)[0]["revoked"] is True
    assert [(e.actor, e.detail["user"]) for e in audit_events("token.create")] == [("cli", "alice")]
    assert [e.detail["token_id"] for e in audit_events("token.revoke")] == [created["id"]]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer mdt_not-a-real-token",
        "Bearer nope",
        "Basic YWxpY2U6cGFzcw==",
    ],
)
def test_anything_but_a_valid_token_is_refused(
    header: str | None, cli: Callable[..., Any], client: FlaskClient
) -> None:
    create_user_cli(cli, "alice", "admin")
    response = client.get("/api/v1/status", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_a_disabled_user_can_neither_sign_in_nor_use_tokens(
    cli: Callable[..., Any],
    cli_json: Callable[..., Any],
    api: Callable[..., Any],
    sign_in: Callable[[str], FlaskClient],
    client: FlaskClient,
    shop: None,
) -> None:
    create_user_cli(cli, "bob", "operator")
    token = cli_json("token", "create", "laptop", "--user", "bob")["token"]
    session = sign_in("bob")
    assert session.get("/").status_code == 200

    assert cli("user", "disable", "bob").output.strip() == "bob: disabled"
    assert cli_json("user", "list") == [{"username": "bob", "role": "operator", "active": False}]
    kicked = session.get("/")
    assert kicked.status_code == 302, "the open session ends at once"
    assert kicked.headers["Location"].startswith("/login")
    refused = client.post("/login", data={"username": "bob", "password": PASSWORD})
    assert refused.status_code == 200
    assert "Wrong username or password." in refused.get_data(as_text=True)
    assert api("GET", "/status", token).status_code == 401
    acting = cli("upgrade", "shop-dev", "heads", "--as", "bob", ok=False)
    assert acting.exit_code != 0
    assert "user 'bob' is disabled" in acting.output

    cli("user", "disable", "bob", "--enable")
    assert api("GET", "/status", token).status_code == 200
    assert sign_in("bob").get("/").status_code == 200


def test_set_role_changes_what_a_user_may_do_at_once(
    cli: Callable[..., Any],
    cli_json: Callable[..., Any],
    api: Callable[..., Any],
    sign_in: Callable[[str], FlaskClient],
    audit_events: Callable[..., list[Any]],
    shop: None,
) -> None:
    create_user_cli(cli, "carol", "viewer")
    token = cli_json("token", "create", "ci", "--user", "carol")["token"]
    web = sign_in("carol")
    plan = "/actions/targets/shop-dev?action=upgrade&revision=heads"
    job = {"target": "shop-dev", "action": "upgrade", "revision": "heads"}

    assert web.get(plan).status_code == 403
    forbidden = api("POST", "/jobs", token, job)
    assert forbidden.status_code == 403
    assert forbidden.get_json()["error"]["code"] == "forbidden"

    assert cli("user", "set-role", "carol", "operator").output.strip() == (
        "carol: viewer -> operator"
    )
    assert web.get(plan).status_code == 200, "the signed-in session sees the new role"
    created = api("POST", "/jobs", token, job)
    assert created.status_code == 201
    assert (created.get_json()["state"], created.get_json()["requested_by"]) == ("queued", "carol")
    assert web.get("/audit/").status_code == 403

    cli("user", "set-role", "carol", "viewer")
    assert web.get(plan).status_code == 403
    assert api("POST", "/jobs", token, job).status_code == 403
    changes = [e.detail for e in audit_events("user.set_role")]
    assert changes == [
        {"user": "carol", "from": "viewer", "to": "operator"},
        {"user": "carol", "from": "operator", "to": "viewer"},
    ]


def test_tokens_and_passwords_are_stored_only_as_hashes(
    cli: Callable[..., Any],
    cli_json: Callable[..., Any],
    api: Callable[..., Any],
    instance_bytes: Callable[[], bytes],
) -> None:
    create_user_cli(cli, "dora", "viewer")
    token = cli_json("token", "create", "ci", "--user", "dora")["token"]
    assert api("GET", "/status", token).status_code == 200  # it is the real token
    stored = instance_bytes()
    assert token.encode() not in stored
    assert token[12:].encode() not in stored, "not even the part after the shown prefix"
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored
    assert PASSWORD.encode() not in stored
    assert b"dora" in stored, "the search does read the database"


def test_user_create_refuses_a_short_password_and_a_duplicate(cli: Callable[..., Any]) -> None:
    short = cli("user", "create", "erin", "--password", "short", ok=False)
    assert short.exit_code != 0
    assert "at least 8 characters" in short.output
    create_user_cli(cli, "erin", "viewer")
    again = cli("user", "create", "erin", "--password", PASSWORD, ok=False)
    assert again.exit_code != 0
    assert "already exists" in again.output
