"""The ``migdash`` group and what every command shares: errors, JSON, the store, the actor.

Exit status, the same for every command:

- ``0``: the command did what was asked (a report of unreachable targets is
  still a report; an upgrade with nothing to do is not an error);
- ``1``: it was refused or failed: any :class:`~migdash.errors.MigdashError`
  (a role that does not allow it, an unknown name, a conflict...), a metadata
  database that cannot be used, a ``--wait`` job that did not succeed, or an
  answer to a prompt cut short; the message (and hint) go to stderr;
- ``2``: the command line itself is wrong (unknown command or option, a missing
  or badly typed argument), as click reports it.

Mutating commands carry ``@requires(permission)`` (or pass the role on to
``migdash.jobs``, which checks it), so the role of ``--as USER`` applies.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from migdash import create_app
from migdash.config import ensure_instance
from migdash.engine.child import protect_process_memory
from migdash.errors import MigdashError
from migdash.permissions import Permission, require
from migdash.services import Services, services_of
from migdash.store.models import Role
from migdash.store.session import schema_is_current
from migdash.store.users import get_user


def _create_cli_app() -> Flask:
    protect_process_memory()
    ensure_instance(Path(os.environ.get("MIGDASH_INSTANCE", "instance")).expanduser().resolve())
    return create_app()


class MigdashGroup(FlaskGroup):
    """Flask's CLI group, with migdash errors shown as a message and a hint, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MigdashError as exc:
            hint = f"\n  hint: {exc.hint}" if exc.hint else ""
            raise click.ClickException(f"{exc.message}{hint}") from exc
        except (OperationalError, ProgrammingError) as exc:
            raise click.ClickException(
                f"the metadata database cannot be used: {str(exc.orig).splitlines()[0]}\n"
                "  hint: run `migdash db upgrade`, and check MIGDASH_DATABASE_URL"
            ) from exc


@click.group(
    cls=MigdashGroup,
    create_app=_create_cli_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
)
def main() -> None:
    """Oversee Alembic migrations across many databases."""


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif text is not None:
        click.echo(text)


@contextmanager
def store() -> Iterator[tuple[Session, Services]]:
    """A session on a metadata DB at the current schema (embedded SQLite upgrades itself)."""
    services = services_of()
    if not schema_is_current(services.db_engine):
        if services.db_engine.dialect.name != "sqlite":
            raise MigdashError(
                "the metadata database is not at the current schema",
                hint="run `migdash db upgrade` (once per release) before other commands",
            )
        services.upgrade_schema()
    with services.sessions() as session:
        try:
            yield session, services
        except MigdashError as exc:
            if exc.keeps_record:  # a refusal that is itself a fact (e.g. a refused self-approval)
                session.commit()
            raise


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


CLI_ACTOR = "cli"


class Actor(NamedTuple):
    """Who a command acts as: a named user with their role, or the trusted ``cli``."""

    name: str
    role: Role


ACTOR_OPTION = click.option(
    "--as",
    "actor",
    default=None,
    envvar="MIGDASH_CLI_USER",
    help="Act as this migdash user (their role applies); default: the shell's trusted 'cli'.",
)


def resolve_actor(session: Session, name: str | None) -> Actor:
    """The named user and their role, or the shell's trusted ``cli`` actor.

    Anyone who can run ``migdash`` on the instance can read its keys anyway,
    so an anonymous CLI call acts with admin rights; approvals still need a
    named user, because the four-eyes rule is about people.
    """
    if name is None:
        return Actor(CLI_ACTOR, Role.ADMIN)
    user = get_user(session, name)
    if not user.active:
        raise MigdashError(f"user {name!r} is disabled")
    return Actor(user.username, Role(user.role))


def requires(permission: Permission) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a mutating command ``--as USER`` and run it only if that role has *permission*.

    The command receives ``actor``, an :class:`Actor`, to name in its audit
    rows.  The check reads the user in a session of its own and ends before
    the command's body opens one, so a refused command changes nothing, and a
    password is never prompted for only to be refused.  The app context is
    pushed here, so the decorator works in any position under ``@command``.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def checked(*args: Any, actor: str | None, **kwargs: Any) -> Any:
            with store() as (session, _):
                who = resolve_actor(session, actor)
            require(who.role, permission, actor=who.name)
            return command(*args, actor=who, **kwargs)

        return ACTOR_OPTION(with_appcontext(checked))

    return decorate
