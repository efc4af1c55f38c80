"""Registry and account commands: db, user, project, env, target."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from migdash.cli.base import emit, json_option, main, store
from migdash.engine.scrub import mask_url
from migdash.services import services_of
from migdash.status import project_graph
from migdash.store import registry
from migdash.store.models import Role
from migdash.store.session import upgrade_schema
from migdash.store.users import create_user


# --- db -----------------------------------------------------------------------------------


@main.group("db")
def db_group() -> None:
    """migdash's own metadata database."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Create or upgrade the metadata database schema."""
    upgrade_schema(services_of().db_engine)
    click.echo("metadata database is at the current schema")


# --- user ---------------------------------------------------------------------------------


@main.group("user")
def user_group() -> None:
    """People who sign in."""


@user_group.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.VIEWER.value)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Prompted for when not given.")
@json_option
@with_appcontext
def user_create(name: str, role: str, password: str, as_json: bool) -> None:
    """Create a user with a hashed password."""
    with store() as (session, _):
        user = create_user(session, name, password, Role(role))
        session.commit()
        emit({"username": user.username, "role": user.role}, as_json,
             f"created user {user.username} ({user.role})")


# --- registry -----------------------------------------------------------------------------


@main.group("project")
def project_group() -> None:
    """Alembic projects (script directories)."""


@project_group.command("add")
@click.argument("name")
@click.option("--script-location", required=True, help="Folder with env.py, or an alembic.ini.")
@click.option("--version-table", default="alembic_version", show_default=True)
@click.option("--version-table-schema", default=None)
@click.option("--track", default="heads", show_default=True,
              help="What targets should reach: heads, a revision, or label@head.")
@json_option
@with_appcontext
def project_add(name: str, script_location: str, version_table: str,
                version_table_schema: str | None, track: str, as_json: bool) -> None:
    """Register an existing Alembic project."""
    with store() as (session, services):
        location = str(Path(script_location).expanduser().resolve())
        project = registry.add_project(session, name, location, version_table=version_table,
                                       version_table_schema=version_table_schema, track=track)
        session.commit()
        graph, problem = project_graph(services.catalog, project)
        data = {"project": project.name, "script_location": location,
                "revisions": len(graph) if graph else None, "error": problem}
        note = f" ({len(graph)} revisions)" if graph else f"\nwarning: {problem}"
        emit(data, as_json, f"registered project {project.name}{note}")


@main.group("env")
def env_group() -> None:
    """Environments (ordered: dev before prod)."""


@env_group.command("add")
@click.argument("name")
@click.option("--protected", is_flag=True, help="Mutating actions here will need approval.")
@click.option("--position", type=int, default=None, help="Order; default: after the others.")
@json_option
@with_appcontext
def env_add(name: str, protected: bool, position: int | None, as_json: bool) -> None:
    """Create an environment."""
    with store() as (session, _):
        env = registry.add_environment(session, name, protected=protected, position=position)
        session.commit()
        emit({"environment": env.name, "position": env.position, "protected": env.protected},
             as_json, f"created environment {env.name} (position {env.position})")


@main.group("target")
def target_group() -> None:
    """Databases a project is applied to."""


@target_group.command("add")
@click.argument("name")
@click.option("--project", required=True)
@click.option("--env", "environment", required=True, help="Created if missing.")
@click.option("--url", required=True, help="SQLAlchemy URL of the database.")
@click.option("--tag", "tags", multiple=True)
@click.option("--version-table", default=None, help="Override the project's version table.")
@click.option("--version-table-schema", default=None)
@json_option
@with_appcontext
def target_add(name: str, project: str, environment: str, url: str, tags: tuple[str, ...],
               version_table: str | None, version_table_schema: str | None, as_json: bool) -> None:
    """Register a database."""
    with store() as (session, _):
        target = registry.add_target(session, name, project=project, environment=environment,
                                     url=url, tags=tags, version_table=version_table,
                                     version_table_schema=version_table_schema)
        session.commit()
        emit({"target": target.name, "project": project, "environment": environment,
              "url": mask_url(target.url), "tags": target.tags}, as_json,
             f"registered target {target.name} ({mask_url(target.url)})")
