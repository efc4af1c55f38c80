"""People commands: users (create, list, set-role, disable) and personal API tokens."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from migdash.cli.base import emit, json_option, main, store
from migdash.store import audit
from migdash.store.models import Role, utcnow
from migdash.store.tokens import create_token, list_tokens, revoke_token
from migdash.store.users import create_user, get_user, list_users, set_active, set_role

ROLE_CHOICE = click.Choice([r.value for r in Role])


@main.group("user")
def user_group() -> None:
    """People who sign in."""


@user_group.command("create")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, default=Role.VIEWER.value, show_default=True)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Prompted for when not given.",
)
@json_option
@with_appcontext
def user_create(name: str, role: str, password: str, as_json: bool) -> None:
    """Create a user with a hashed password."""
    with store() as (session, _):
        user = create_user(session, name, password, Role(role))
        audit.record(session, "cli", "user.create", detail={"user": user.username, "role": role})
        session.commit()
        emit(
            {"username": user.username, "role": user.role},
            as_json,
            f"created user {user.username} ({user.role})",
        )


@user_group.command("list")
@json_option
@with_appcontext
def user_list(as_json: bool) -> None:
    """Users and their roles."""
    with store() as (session, _):
        rows = [
            {"username": u.username, "role": u.role, "active": u.active}
            for u in list_users(session)
        ]
        emit(
            rows,
            as_json,
            "\n".join(
                f"{r['username']:<24} {r['role']:<10} {'' if r['active'] else 'disabled'}"
                for r in rows
            )
            or "no users",
        )


@user_group.command("set-role")
@click.argument("name")
@click.argument("role", type=ROLE_CHOICE)
@with_appcontext
def user_set_role(name: str, role: str) -> None:
    """Change a user's role."""
    with store() as (session, _):
        user = get_user(session, name)
        before = user.role
        set_role(session, user, Role(role))
        audit.record(
            session, "cli", "user.set_role", detail={"user": name, "from": before, "to": role}
        )
        session.commit()
        click.echo(f"{name}: {before} -> {role}")


@user_group.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Re-enable instead.")
@with_appcontext
def user_disable(name: str, enable: bool) -> None:
    """Disable an account (sign-in and tokens stop working at once)."""
    with store() as (session, _):
        set_active(session, get_user(session, name), enable)
        audit.record(
            session, "cli", "user.enable" if enable else "user.disable", detail={"user": name}
        )
        session.commit()
        click.echo(f"{name}: {'enabled' if enable else 'disabled'}")


@main.group("token")
def token_group() -> None:
    """Personal API tokens for /api/v1."""


@token_group.command("create")
@click.argument("name")
@click.option("--user", "username", required=True, help="Whose token (their role applies).")
@json_option
@with_appcontext
def token_create(name: str, username: str, as_json: bool) -> None:
    """Create a token; it is printed once and only its hash is kept."""
    with store() as (session, _):
        plaintext, token = create_token(session, get_user(session, username), name, utcnow())
        audit.record(
            session,
            "cli",
            "token.create",
            detail={"user": username, "token_id": token.id, "name": name},
        )
        session.commit()
        emit(
            {"id": token.id, "name": name, "user": username, "token": plaintext},
            as_json,
            f"token {token.id} for {username}: {plaintext}\n(shown once; store it now)",
        )


@token_group.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
def token_revoke(token_id: int) -> None:
    """Revoke a token (by the id `token list` shows)."""
    with store() as (session, _):
        token = revoke_token(session, token_id, utcnow())
        audit.record(
            session,
            "cli",
            "token.revoke",
            detail={"token_id": token_id, "user": token.user.username},
        )
        session.commit()
        click.echo(f"token {token_id} revoked")


@token_group.command("list")
@click.option("--user", "username", default=None)
@json_option
@with_appcontext
def token_list(username: str | None, as_json: bool) -> None:
    """Tokens (prefix only; the secret is never shown again)."""
    with store() as (session, _):
        user = get_user(session, username) if username else None
        rows = [
            {
                "id": t.id,
                "name": t.name,
                "user": t.user.username,
                "prefix": t.prefix,
                "revoked": t.revoked_at is not None,
            }
            for t in list_tokens(session, user)
        ]
        emit(
            rows,
            as_json,
            "\n".join(
                f"{r['id']:>4} {r['user']:<16} {r['name']:<20} {r['prefix']}…"
                f"{' revoked' if r['revoked'] else ''}"
                for r in rows
            )
            or "no tokens",
        )
