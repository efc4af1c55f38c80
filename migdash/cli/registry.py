"""Registry and account commands: db, user, project, env, target."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from migdash.cli.base import Actor, emit, json_option, main, requires, store
from migdash.cli.removal import confirm_removal, yes_option
from migdash.engine.scrub import mask_url
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.status import project_graph
from migdash.store import audit, registry
from migdash.store.crypto import rotate_target_urls

# --- db -----------------------------------------------------------------------------------


@main.group("db")
def db_group() -> None:
    """migdash's own metadata database."""


# Exempt from @requires (no --as, no role): it runs before any user exists (a fresh install
# creates the user table here), and it only brings the metadata DB to this release's schema.
@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Create or upgrade the metadata database schema."""
    services_of().upgrade_schema()
    click.echo("metadata database is at the current schema")


@db_group.command("rotate-key")
@requires(Permission.ADMIN)
def db_rotate_key(actor: Actor) -> None:
    """Re-encrypt every stored target URL with the first key of MIGDASH_ENCRYPTION_KEY.

    Put the new key first and keep the old one after it (comma-separated) while this
    runs; afterwards the old key can be dropped.
    """
    with store() as (session, services):
        count = rotate_target_urls(session, services.cipher)
        audit.record(session, actor.name, "db.rotate_key", detail={"targets": count})
        session.commit()
        click.echo(f"re-encrypted {count} target URL(s) with the first key")


# --- registry -----------------------------------------------------------------------------


@main.group("project")
def project_group() -> None:
    """Alembic projects (script directories)."""


@project_group.command("add")
@click.argument("name")
@click.option("--script-location", required=True, help="Folder with env.py, or an alembic.ini.")
@click.option("--version-table", default="alembic_version", show_default=True)
@click.option("--version-table-schema", default=None)
@click.option(
    "--track",
    default="heads",
    show_default=True,
    help="What targets should reach: heads, a revision, or label@head.",
)
@click.option(
    "--url-mode",
    type=click.Choice(["config", "connection", "env"]),
    default="config",
    show_default=True,
    help="How env.py gets the target URL.",
)
@click.option("--url-env-var", default=None, help="With --url-mode env: the variable's name.")
@json_option
@requires(Permission.ADMIN)
def project_add(
    name: str,
    script_location: str,
    version_table: str,
    version_table_schema: str | None,
    track: str,
    url_mode: str,
    url_env_var: str | None,
    as_json: bool,
    actor: Actor,
) -> None:
    """Register an existing Alembic project."""
    with store() as (session, services):
        location = str(Path(script_location).expanduser().resolve())
        project = registry.add_project(
            session,
            name,
            location,
            version_table=version_table,
            version_table_schema=version_table_schema,
            track=track,
            url_mode=url_mode,
            url_env_var=url_env_var,
            actor=actor.name,
            roots=services.settings["MIGDASH_SCRIPT_ROOTS"],
        )
        session.commit()
        graph, problem = project_graph(services.catalog, project)
        data = {
            "project": project.name,
            "script_location": project.script_location,
            "revisions": len(graph) if graph else None,
            "error": problem,
        }
        note = f" ({len(graph)} revisions)" if graph else f"\nwarning: {problem}"
        emit(data, as_json, f"registered project {project.name}{note}")


PROMOTION_RULE_OPTION = click.option(
    "--promotion-rule",
    type=click.Choice(registry.PROMOTION_RULES),
    default=None,
    help="Promoting here a revision the environment before lacks: warn (default) or refuse.",
)
WINDOWS_OPTION = click.option(
    "--windows",
    default=None,
    help="Rollout windows, e.g. 'Mon-Fri 22:00-02:00 UTC; Sat,Sun 00:00-24:00 UTC' "
    "('' for any time). Jobs due outside them wait as scheduled.",
)


@main.group("env")
def env_group() -> None:
    """Environments (ordered: dev before prod)."""


@env_group.command("add")
@click.argument("name")
@click.option("--protected", is_flag=True, help="Mutating actions here will need approval.")
@click.option("--position", type=int, default=None, help="Order; default: after the others.")
@click.option(
    "--required-approvals",
    type=int,
    default=1,
    show_default=True,
    help="Distinct approvers a job needs when protected.",
)
@PROMOTION_RULE_OPTION
@WINDOWS_OPTION
@json_option
@requires(Permission.ADMIN)
def env_add(
    name: str,
    protected: bool,
    position: int | None,
    required_approvals: int,
    promotion_rule: str | None,
    windows: str | None,
    as_json: bool,
    actor: Actor,
) -> None:
    """Create an environment."""
    with store() as (session, _):
        env = registry.add_environment(
            session,
            name,
            protected=protected,
            position=position,
            required_approvals=required_approvals,
            promotion_rule=promotion_rule or "warn",
            windows=windows or "",
            actor=actor.name,
        )
        session.commit()
        emit(
            {
                "environment": env.name,
                "position": env.position,
                "protected": env.protected,
                "promotion_rule": env.promotion_rule,
                "windows": env.windows,
            },
            as_json,
            f"created environment {env.name} (position {env.position})",
        )


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
@requires(Permission.ADMIN)
def target_add(
    name: str,
    project: str,
    environment: str,
    url: str,
    tags: tuple[str, ...],
    version_table: str | None,
    version_table_schema: str | None,
    as_json: bool,
    actor: Actor,
) -> None:
    """Register a database."""
    with store() as (session, _):
        target = registry.add_target(
            session,
            name,
            project=project,
            environment=environment,
            url=url,
            tags=tags,
            version_table=version_table,
            version_table_schema=version_table_schema,
            actor=actor.name,
        )
        session.commit()
        emit(
            {
                "target": target.name,
                "project": project,
                "environment": environment,
                "url": mask_url(target.url),
                "tags": target.tags,
            },
            as_json,
            f"registered target {target.name} ({mask_url(target.url)})",
        )


# --- edit, remove, list -------------------------------------------------------------------


@project_group.command("edit")
@click.argument("name")
@click.option("--rename", default=None)
@click.option("--script-location", default=None)
@click.option("--version-table", default=None)
@click.option("--version-table-schema", default=None)
@click.option("--track", default=None)
@click.option("--url-mode", type=click.Choice(["config", "connection", "env"]), default=None)
@click.option("--url-env-var", default=None)
@json_option
@requires(Permission.ADMIN)
def project_edit(
    name: str,
    rename: str | None,
    script_location: str | None,
    version_table: str | None,
    version_table_schema: str | None,
    track: str | None,
    url_mode: str | None,
    url_env_var: str | None,
    as_json: bool,
    actor: Actor,
) -> None:
    """Change a project's settings."""
    with store() as (session, services):
        project = registry.get_project(session, name)
        services.catalog.forget(project.script_location)
        changes: dict[str, object] = {
            "version_table": version_table,
            "track": track,
            "url_mode": url_mode,
        }
        if url_env_var is not None:
            changes["url_env_var"] = url_env_var
        if rename:
            changes["name"] = rename
        if script_location:
            changes["script_location"] = str(Path(script_location).expanduser().resolve())
        if version_table_schema is not None:
            changes["version_table_schema"] = version_table_schema
        registry.edit_project(
            session,
            project,
            actor=actor.name,
            roots=services.settings["MIGDASH_SCRIPT_ROOTS"],
            **changes,
        )
        session.commit()
        emit(
            {
                "project": project.name,
                "script_location": project.script_location,
                "version_table": project.version_table,
                "track": project.track,
            },
            as_json,
            f"updated project {project.name}",
        )


@project_group.command("remove")
@click.argument("name")
@yes_option
@requires(Permission.ADMIN)
def project_remove(name: str, yes: bool, actor: Actor) -> None:
    """Unregister a project and its targets; their pending jobs are cancelled.

    Files and databases are not touched.  A running job refuses the removal.
    """
    with store() as (session, services):
        location = registry.get_project(session, name).script_location
        confirm_removal(session, "project", name, yes=yes, actor=actor.name, role=actor.role)
        services.catalog.forget(location)


@project_group.command("list")
@json_option
@with_appcontext
def project_list(as_json: bool) -> None:
    """Registered projects."""
    from migdash.store.queries import all_projects

    with store() as (session, services):
        rows = []
        for project in all_projects(session):
            graph, problem = project_graph(services.catalog, project)
            rows.append(
                {
                    "project": project.name,
                    "script_location": project.script_location,
                    "revisions": len(graph) if graph else None,
                    "heads": list(graph.heads) if graph else [],
                    "error": problem,
                }
            )
        emit(
            rows,
            as_json,
            "\n".join(
                f"{r['project']:<20} {r['script_location']}  "
                f"{r['error'] or str(r['revisions']) + ' revisions'}"
                for r in rows
            )
            or "no projects",
        )


@env_group.command("edit")
@click.argument("name")
@click.option("--rename", default=None)
@click.option("--protected/--unprotected", default=None)
@click.option("--position", type=int, default=None)
@PROMOTION_RULE_OPTION
@WINDOWS_OPTION
@requires(Permission.ADMIN)
def env_edit(
    name: str,
    rename: str | None,
    protected: bool | None,
    position: int | None,
    promotion_rule: str | None,
    windows: str | None,
    actor: Actor,
) -> None:
    """Rename, (un)protect, reorder an environment, or change its promotion rule or windows."""
    with store() as (session, _):
        env = registry.get_environment(session, name)
        changes: dict[str, object] = {
            "position": position,
            "promotion_rule": promotion_rule,
            "windows": windows,
        }
        if rename:
            changes["name"] = rename
        if protected is not None:
            changes["protected"] = protected
        registry.edit_environment(session, env, actor=actor.name, **changes)
        session.commit()
        click.echo(f"updated environment {env.name}")


@env_group.command("remove")
@click.argument("name")
@yes_option
@requires(Permission.ADMIN)
def env_remove(name: str, yes: bool, actor: Actor) -> None:
    """Delete an empty environment."""
    with store() as (session, _):
        confirm_removal(session, "environment", name, yes=yes, actor=actor.name, role=actor.role)


@env_group.command("list")
@json_option
@with_appcontext
def env_list(as_json: bool) -> None:
    """Environments in order."""
    from migdash.store.queries import all_environments

    with store() as (session, _):
        rows = [
            {
                "environment": e.name,
                "position": e.position,
                "protected": e.protected,
                "promotion_rule": e.promotion_rule,
                "windows": e.windows,
                "targets": len(e.targets),
            }
            for e in all_environments(session)
        ]
        emit(
            rows,
            as_json,
            "\n".join(
                f"{r['position']:>3} {r['environment']:<20} "
                f"{'protected' if r['protected'] else '':<9} windows: {r['windows'] or 'always'}"
                for r in rows
            )
            or "no environments",
        )


@target_group.command("edit")
@click.argument("name")
@click.option("--rename", default=None)
@click.option("--project", default=None)
@click.option("--env", "environment", default=None)
@click.option("--url", default=None)
@click.option("--tag", "tags", multiple=True, help="Replaces the tags when given.")
@requires(Permission.ADMIN)
def target_edit(
    name: str,
    rename: str | None,
    project: str | None,
    environment: str | None,
    url: str | None,
    tags: tuple[str, ...],
    actor: Actor,
) -> None:
    """Change a target."""
    with store() as (session, _):
        target = registry.get_target(session, name)
        changes: dict[str, object] = {"project": project, "environment": environment, "url": url}
        if rename:
            changes["name"] = rename
        if tags:
            changes["tags"] = list(tags)
        registry.edit_target(session, target, actor=actor.name, **changes)
        session.commit()
        click.echo(f"updated target {target.name} ({mask_url(target.url)})")


@target_group.command("remove")
@click.argument("name")
@yes_option
@requires(Permission.ADMIN)
def target_remove(name: str, yes: bool, actor: Actor) -> None:
    """Unregister a target; its pending jobs are cancelled (the database is not touched)."""
    with store() as (session, _):
        confirm_removal(session, "target", name, yes=yes, actor=actor.name, role=actor.role)


@target_group.command("list")
@click.option("--project", default=None)
@click.option("--env", "environment", default=None)
@json_option
@with_appcontext
def target_list(project: str | None, environment: str | None, as_json: bool) -> None:
    """Registered targets (URLs masked)."""
    from migdash.store.queries import find_targets

    with store() as (session, _):
        rows = [
            {
                "target": t.name,
                "project": t.project.name,
                "environment": t.environment.name,
                "url": mask_url(t.url),
                "tags": t.tags,
            }
            for t in find_targets(session, project=project, environment=environment)
        ]
        emit(
            rows,
            as_json,
            "\n".join(
                f"{r['target']:<24} {r['project']:<14} {r['environment']:<10} {r['url']}"
                for r in rows
            )
            or "no targets",
        )
