"""``migdash user`` and ``migdash token``: the web's safety rules and audit rows, from the shell."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask

from migdash.services import services_of
from migdash.store.models import ApiToken, AuditEvent, Role, User
from migdash.store.users import authenticate, create_user

PASSWORD = "correct-horse"  # noqa: S105 - test users only


@pytest.fixture
def people(app: Flask) -> Callable[..., None]:
    """Create users: ``people(ada="admin", vera="viewer")``, all with the password PASSWORD."""

    def factory(**roles: str) -> None:
        with services_of(app).sessions() as session:
            for username, role in roles.items():
                create_user(session, username, PASSWORD, Role(role))
            session.commit()

    return factory


def accounts(app: Flask) -> dict[str, tuple[str, bool]]:
    with services_of(app).sessions() as session:
        return {u.username: (u.role, u.active) for u in session.scalars(sa.select(User))}


def audit_rows(app: Flask) -> list[tuple[str, str, dict[str, Any] | None]]:
    with services_of(app).sessions() as session:
        events = session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))
        return [(e.actor, e.action, e.detail) for e in events]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["user", "set-role", "bob", "viewer", "--as", "bob"], "cannot change your own role"),
        (["user", "disable", "bob", "--as", "bob"], "cannot disable your own account"),
        (["user", "set-role", "bob", "operator"], "bob is the last active admin; cannot demote"),
        (["user", "disable", "bob"], "bob is the last active admin; cannot disable"),
    ],
)
def test_nobody_locks_themself_out_nor_the_instance(
    cli: Callable[..., Result],
    people: Callable[..., None],
    app: Flask,
    args: list[str],
    message: str,
) -> None:
    people(ada="admin", bob="admin")
    cli("user", "disable", "ada", "--as", "bob")  # bob is now the only active admin
    before = accounts(app), audit_rows(app)
    result = cli(*args, ok=False)
    assert result.exit_code == 1
    assert message in result.output
    assert "hint:" in result.output
    assert (accounts(app), audit_rows(app)) == before


def test_the_cli_actor_changes_roles_and_the_audit_names_who_did(
    cli: Callable[..., Result], people: Callable[..., None], app: Flask
) -> None:
    people(ada="admin", carol="viewer")
    assert cli("user", "set-role", "carol", "operator", "--as", "ada").output == (
        "carol: viewer -> operator\n"
    )
    assert cli("user", "set-role", "carol", "operator").output == "carol is already operator\n"
    cli("user", "disable", "carol")
    assert accounts(app)["carol"] == ("operator", False)
    assert audit_rows(app) == [
        ("ada", "user.set_role", {"user": "carol", "from": "viewer", "to": "operator"}),
        ("cli", "user.disable", {"user": "carol"}),
    ]


def test_set_password_prompts_and_the_new_password_signs_in(
    cli: Callable[..., Result], people: Callable[..., None], app: Flask
) -> None:
    people(ada="admin", carol="viewer")
    result = cli("user", "set-password", "carol", "--as", "ada", input="new-secret\nnew-secret\n")
    assert result.output.endswith("carol: password changed\n")
    assert "new-secret" not in result.output
    with services_of(app).sessions() as session:
        assert authenticate(session, "carol", "new-secret") is not None
        assert authenticate(session, "carol", PASSWORD) is None
    assert audit_rows(app) == [("ada", "user.set_password", {"user": "carol"})]

    short = cli("user", "set-password", "carol", "--password", "short", ok=False)
    assert short.exit_code == 1
    assert "at least 8 characters" in short.output
    mismatch = cli("user", "set-password", "carol", input="new-secret\nother-one\n", ok=False)
    assert mismatch.exit_code == 1, "the second prompt never matches; the input runs out"
    assert "do not match" in mismatch.output
    assert len(audit_rows(app)) == 1


def test_tokens_are_issued_and_withdrawn_once(
    cli: Callable[..., Result], people: Callable[..., None], app: Flask
) -> None:
    people(ada="admin", dora="operator")
    created = cli("token", "create", "ci", "--user", "dora", "--as", "ada")
    with services_of(app).sessions() as session:
        (token_id,) = session.scalars(sa.select(ApiToken.id)).all()
    assert created.output.startswith(f"token {token_id} for dora: mdt_")
    cli("token", "revoke", str(token_id), "--as", "ada")
    again = cli("token", "revoke", str(token_id), ok=False)
    assert again.exit_code == 1
    assert f"token {token_id} was revoked already" in again.output
    missing = cli("token", "revoke", "999", ok=False)
    assert missing.exit_code == 1
    assert "no token 999" in missing.output

    cli("user", "disable", "dora")
    disabled = cli("token", "create", "laptop", "--user", "dora", ok=False)
    assert disabled.exit_code == 1
    assert "dora is disabled; a token for them would never work" in disabled.output
    assert [(actor, action) for actor, action, _ in audit_rows(app)] == [
        ("ada", "token.create"),
        ("ada", "token.revoke"),
        ("cli", "user.disable"),
    ]
