"""Add, edit and remove projects, environments and targets.

The web admin pages and the CLI call these same functions, so validation
and naming rules exist once.  Each function takes an open session and
flushes; the caller commits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from migdash.engine.project import check_script_location
from migdash.engine.scrub import mask_url
from migdash.errors import Conflict, InvalidInput, NotFound
from migdash.store import audit
from migdash.store.models import Environment, Project, Target
from migdash.windows import format_windows, parse_windows

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:=\-]{0,49}$")


def check_name(kind: str, name: str) -> str:
    """Names appear in URLs and CLI arguments: letters, digits, ``_ . -``."""
    name = name.strip()
    if not NAME.match(name):
        raise InvalidInput(
            f"{kind} name {name!r} is not allowed",
            hint="Use 1–100 letters, digits, '_', '.' or '-', starting with a letter or digit.",
            field="name",
        )
    return name


def check_url(url: str) -> str:
    """A SQLAlchemy database URL, e.g. ``postgresql+psycopg://user:pw@host/db``."""
    url = url.strip()
    try:
        make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise InvalidInput(
            "that is not a database URL",
            hint="Write it as SQLAlchemy does, e.g. postgresql+psycopg://user:password@host/db "
            "or sqlite:////path/to/file.db",
            field="url",
        ) from exc
    return url


def check_tags(tags: Iterable[str]) -> list[str]:
    cleaned = sorted({t.strip() for t in tags if t.strip()})
    for tag in cleaned:
        if not TAG.match(tag):
            raise InvalidInput(
                f"tag {tag!r} is not allowed", hint="Use letters, digits, _ . : = -", field="tags"
            )
    return cleaned


URL_MODES = ("config", "connection", "env")
ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]{0,99}$")


def check_url_mode(mode: str, env_var: str | None) -> tuple[str, str | None]:
    """How a target's URL reaches env.py; ``env`` needs the variable's name."""
    mode = (mode or "config").strip()
    if mode not in URL_MODES:
        raise InvalidInput(f"URL mode {mode!r} is not one of {', '.join(URL_MODES)}")
    env_var = (env_var or "").strip() or None
    if mode == "env" and (env_var is None or not ENV_VAR.match(env_var)):
        raise InvalidInput("URL mode 'env' needs the variable's name, e.g. DATABASE_URL")
    return mode, env_var if mode == "env" else None


def _ensure_unique(session: Session, model: Any, name: str, what: str) -> None:
    """Names are unique per kind; say which one clashes rather than fail on the constraint."""
    if session.scalar(sa.select(model.id).where(model.name == name)) is not None:
        raise Conflict(f"{what} named {name!r} already exists")


def get_project(session: Session, name: str) -> Project:
    project = session.scalar(sa.select(Project).where(Project.name == name))
    if project is None:
        raise NotFound(f"no project named {name!r}")
    return project


def get_environment(session: Session, name: str) -> Environment:
    environment = session.scalar(sa.select(Environment).where(Environment.name == name))
    if environment is None:
        raise NotFound(f"no environment named {name!r}")
    return environment


def get_target(session: Session, name: str) -> Target:
    target = session.scalar(sa.select(Target).where(Target.name == name))
    if target is None:
        raise NotFound(f"no target named {name!r}")
    return target


def add_project(
    session: Session,
    name: str,
    script_location: str,
    *,
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
    track: str = "heads",
    url_mode: str = "config",
    url_env_var: str | None = None,
    actor: str = "system",
    roots: Sequence[str | Path] = (),
) -> Project:
    """Register an existing Alembic project by the path of its script directory.

    The location must be an Alembic environment (checked without running any
    of it) inside one of *roots* when roots are given (``MIGDASH_SCRIPT_ROOTS``,
    passed in by the caller); the resolved absolute path is stored.
    """
    name = check_name("project", name)
    url_mode, url_env_var = check_url_mode(url_mode, url_env_var)
    _ensure_unique(session, Project, name, "a project")
    project = Project(
        name=name,
        script_location=check_script_location(script_location, roots),
        version_table=version_table.strip() or "alembic_version",
        version_table_schema=(version_table_schema or "").strip() or None,
        track=track.strip() or "heads",
        url_mode=url_mode,
        url_env_var=url_env_var,
    )
    session.add(project)
    session.flush()
    audit.record(
        session,
        actor,
        "registry.project.add",
        project=name,
        detail={"script_location": project.script_location},
    )
    return project


def edit_project(
    session: Session,
    project: Project,
    *,
    actor: str = "system",
    roots: Sequence[str | Path] = (),
    **changes: Any,
) -> Project:
    """Change a project's fields; a rename is checked like a new name.

    A new script location is checked as :func:`add_project` checks one; the
    stored one is left alone, so a project that broke on disk can still be
    renamed or retuned.
    """
    before = project.name
    if "name" in changes and changes["name"] != project.name:
        name = check_name("project", changes["name"])
        _ensure_unique(session, Project, name, "a project")
        project.name = name
    location = str(changes.get("script_location") or "").strip()
    if location and location != project.script_location:
        project.script_location = check_script_location(location, roots)
    for field in ("version_table", "track"):
        if changes.get(field):
            setattr(project, field, str(changes[field]).strip())
    if "version_table_schema" in changes:
        project.version_table_schema = (changes["version_table_schema"] or "").strip() or None
    if changes.get("url_mode"):
        project.url_mode, project.url_env_var = check_url_mode(
            changes["url_mode"], changes.get("url_env_var", project.url_env_var)
        )
    session.flush()
    audit.record(
        session,
        actor,
        "registry.project.edit",
        project=before,
        detail={k: str(v) for k, v in changes.items() if v is not None},
    )
    return project


def remove_project(session: Session, project: Project, *, actor: str = "system") -> None:
    """Unregister a project and its targets (files on disk are left alone)."""
    audit.record(
        session,
        actor,
        "registry.project.remove",
        project=project.name,
        detail={"targets": [t.name for t in project.targets]},
    )
    session.delete(project)
    session.flush()


PROMOTION_RULES = ("warn", "refuse")
"""Promoting to an environment a revision the one before it lacks: warn, or refuse."""


def check_promotion_rule(rule: str) -> str:
    rule = (rule or "").strip()
    if rule not in PROMOTION_RULES:
        raise InvalidInput(
            f"promotion rule {rule!r} is not one of {', '.join(PROMOTION_RULES)}",
            field="promotion_rule",
        )
    return rule


def add_environment(
    session: Session,
    name: str,
    *,
    protected: bool = False,
    position: int | None = None,
    required_approvals: int = 1,
    promotion_rule: str = "warn",
    windows: str = "",
    actor: str = "system",
) -> Environment:
    """Create an environment; without *position* it goes after the existing ones."""
    name = check_name("environment", name)
    windows = check_windows(windows)
    promotion_rule = check_promotion_rule(promotion_rule)
    _ensure_unique(session, Environment, name, "an environment")
    if position is None:
        last = session.scalar(sa.select(sa.func.max(Environment.position)))
        position = 0 if last is None else last + 1
    if required_approvals < 1:
        raise InvalidInput(
            "an environment needs at least one approval when protected",
            field="required_approvals",
        )
    environment = Environment(
        name=name,
        protected=protected,
        position=position,
        required_approvals=required_approvals,
        promotion_rule=promotion_rule,
        windows=windows,
    )
    session.add(environment)
    session.flush()
    audit.record(
        session,
        actor,
        "registry.environment.add",
        environment=name,
        detail={
            "protected": protected,
            "required_approvals": required_approvals,
            "promotion_rule": promotion_rule,
            "windows": windows,
        },
    )
    return environment


def check_windows(text: str) -> str:
    """Rollout windows in canonical form ('' for none); InvalidInput names the part at fault."""
    return format_windows(parse_windows(text))


def edit_environment(
    session: Session, environment: Environment, *, actor: str = "system", **changes: Any
) -> Environment:
    before = environment.name
    if "name" in changes and changes["name"] != environment.name:
        name = check_name("environment", changes["name"])
        _ensure_unique(session, Environment, name, "an environment")
        environment.name = name
    if "protected" in changes:
        environment.protected = bool(changes["protected"])
    if changes.get("position") is not None:
        environment.position = int(changes["position"])
    if changes.get("required_approvals") is not None:
        if int(changes["required_approvals"]) < 1:
            raise InvalidInput(
                "an environment needs at least one approval when protected",
                field="required_approvals",
            )
        environment.required_approvals = int(changes["required_approvals"])
    if changes.get("promotion_rule") is not None:
        environment.promotion_rule = check_promotion_rule(changes["promotion_rule"])
    if changes.get("windows") is not None:
        environment.windows = check_windows(changes["windows"])
    session.flush()
    audit.record(
        session,
        actor,
        "registry.environment.edit",
        environment=before,
        detail={k: str(v) for k, v in changes.items() if v is not None},
    )
    return environment


def remove_environment(
    session: Session, environment: Environment, *, actor: str = "system"
) -> None:
    """Delete an empty environment; one that still holds targets is refused."""
    if environment.targets:
        raise Conflict(
            f"environment {environment.name!r} still holds {len(environment.targets)} target(s)",
            hint="Move or remove its targets first.",
        )
    audit.record(session, actor, "registry.environment.remove", environment=environment.name)
    session.delete(environment)
    session.flush()


def add_target(
    session: Session,
    name: str,
    *,
    project: str,
    environment: str,
    url: str,
    tags: Iterable[str] = (),
    version_table: str | None = None,
    version_table_schema: str | None = None,
    actor: str = "system",
) -> Target:
    """Register a database; a missing environment is created at the end of the order."""
    name = check_name("target", name)
    _ensure_unique(session, Target, name, "a target")
    owner = get_project(session, project)
    clean_url, clean_tags = check_url(url), check_tags(tags)
    try:
        env = get_environment(session, environment)
    except NotFound:
        env = add_environment(session, environment, actor=actor)
    target = Target(
        name=name,
        project=owner,
        environment=env,
        tags=clean_tags,
        version_table=(version_table or "").strip() or None,
        version_table_schema=(version_table_schema or "").strip() or None,
    )
    session.add(target)
    target.set_url(session, clean_url)
    session.flush()
    audit.record(
        session,
        actor,
        "registry.target.add",
        project=owner.name,
        environment=env.name,
        target=name,
        detail={"url": mask_url(url)},
    )
    return target


def edit_target(
    session: Session, target: Target, *, actor: str = "system", **changes: Any
) -> Target:
    """Change a target; an empty URL keeps the stored one (so secrets need not be re-shown).

    A new URL is taken whole, password included: a URL is never edited in
    place around a hidden password.
    """
    before = target.name
    if "name" in changes and changes["name"] != target.name:
        name = check_name("target", changes["name"])
        _ensure_unique(session, Target, name, "a target")
        target.name = name
    if changes.get("url"):
        target.set_url(session, check_url(changes["url"]))
    if changes.get("project"):
        target.project = get_project(session, changes["project"])
    if changes.get("environment"):
        target.environment = get_environment(session, changes["environment"])
    if "tags" in changes:
        target.tags = check_tags(changes["tags"])
    for field in ("version_table", "version_table_schema"):
        if field in changes:
            setattr(target, field, (changes[field] or "").strip() or None)
    session.flush()
    detail = {k: str(v) for k, v in changes.items() if v is not None and k != "url"}
    if changes.get("url"):
        detail["url"] = mask_url(changes["url"])
    audit.record(
        session,
        actor,
        "registry.target.edit",
        project=target.project.name,
        environment=target.environment.name,
        target=before,
        detail=detail,
    )
    return target


def remove_target(session: Session, target: Target, *, actor: str = "system") -> None:
    audit.record(
        session,
        actor,
        "registry.target.remove",
        project=target.project.name,
        environment=target.environment.name,
        target=target.name,
    )
    session.delete(target)
    session.flush()
