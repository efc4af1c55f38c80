"""People commands: users (create, list, set-role, set-password, disable) and API tokens.

Each change goes through the same ``migdash.store.users`` / ``tokens`` function
the web's user pages call, with the acting user passed in, so the safety rules
(nobody changes their own role or disables themself, an instance keeps an
active admin) and the audit rows cannot drift between the two.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from migdash.cli.base import Actor, emit, json_option, main, requires, store
from migdash.permissions import Permission
from migdash.store.models import Role, utcnow
from migdash.store.tokens import issue_token, list_tokens, withdraw_token
from migdash.store.users import (
    change_active,
    change_role,
    get_user,
    list_users,
    register_user,
    reset_password,
)

ROLE_CHOICE = click.Choice([r.value for r in Role])
PASSWORD_OPTION = click.option(
    "--password", default=None, help="Prompted for (hidden, twice) when not given."
)


def _new_password(password: str | None) -> str:
    """The given password, or one asked for only now: after the role check, never before it."""
    if password is not None:
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@main.group("user")
def user_group() -> None:
    """People who sign in."""


@user_group.command("create")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, default=Role.VIEWER.value, show_default=True)
@PASSWORD_OPTION
@json_option
@requires(Permission.ADMIN)
def user_create(name: str, role: str, password: str | None, as_json: bool, actor: Actor) -> None:
    """Create a user with a hashed password."""
    with store() as (session, _):
        user = register_user(session, name, _new_password(password), Role(role), actor=actor.name)
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
@requires(Permission.ADMIN)
def user_set_role(name: str, role: str, actor: Actor) -> None:
    """Change a user's role (never your own; the last active admin stays one)."""
    with store() as (session, _):
        user = get_user(session, name)
        before = user.role
        change_role(session, user, Role(role), actor=actor.name)
        session.commit()
        click.echo(f"{name}: {before} -> {role}" if before != role else f"{name} is already {role}")


@user_group.command("set-password")
@click.argument("name")
@PASSWORD_OPTION
@requires(Permission.ADMIN)
def user_set_password(name: str, password: str | None, actor: Actor) -> None:
    """Set a new password for a user (an admin's reset; they sign in with it from now on)."""
    with store() as (session, _):
        user = get_user(session, name)
        reset_password(session, user, _new_password(password), actor=actor.name)
        session.commit()
        click.echo(f"{name}: password changed")


@user_group.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Re-enable instead.")
@requires(Permission.ADMIN)
def user_disable(name: str, enable: bool, actor: Actor) -> None:
    """Disable an account (sign-in and tokens stop working at once); never your own."""
    with store() as (session, _):
        change_active(session, get_user(session, name), enable, actor=actor.name)
        session.commit()
        click.echo(f"{name}: {'enabled' if enable else 'disabled'}")


@main.group("token")
def token_group() -> None:
    """Personal API tokens for /api/v1."""


@token_group.command("create")
@click.argument("name")
@click.option("--user", "username", required=True, help="Whose token (their role applies).")
@json_option
@requires(Permission.ADMIN)
def token_create(name: str, username: str, as_json: bool, actor: Actor) -> None:
    """Create a token; it is printed once and only its hash is kept."""
    with store() as (session, _):
        plaintext, token = issue_token(
            session, get_user(session, username), name, actor=actor.name, now=utcnow()
        )
        session.commit()
        emit(
            {"id": token.id, "name": token.name, "user": username, "token": plaintext},
            as_json,
            f"token {token.id} for {username}: {plaintext}\n(shown once; store it now)",
        )


@token_group.command("revoke")
@click.argument("token_id", type=int)
@requires(Permission.ADMIN)
def token_revoke(token_id: int, actor: Actor) -> None:
    """Revoke a token (by the id `token list` shows)."""
    with store() as (session, _):
        withdraw_token(session, token_id, actor=actor.name, now=utcnow())
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
