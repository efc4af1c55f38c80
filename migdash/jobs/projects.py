"""Create a new Alembic environment (``alembic init``) under the configured projects root."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.orm import Session

from migdash.errors import Conflict, InvalidInput
from migdash.store import registry
from migdash.store.models import Project

ALLOWED_TEMPLATES = ("generic", "multidb", "pyproject", "async")


def init_project(
    session: Session, root: Path, name: str, template: str = "generic", *, actor: str = "system"
) -> Project:
    """Run ``alembic init`` into ``<root>/<name>`` and register the project.

    The folder is always under *root*: names are checked like every other
    name, so a request cannot write anywhere else on the disk.
    """
    name = registry.check_name("project", name)
    if template not in ALLOWED_TEMPLATES:
        raise InvalidInput(
            f"unknown template {template!r}", hint=f"One of: {', '.join(ALLOWED_TEMPLATES)}"
        )
    folder = (root / name).resolve()
    if root.resolve() not in folder.parents:
        raise InvalidInput("the project folder must be inside the projects root")
    if folder.exists():
        raise Conflict(f"{folder} already exists", hint="Register it with project add instead.")
    folder.mkdir(parents=True)
    config = Config(str(folder / "alembic.ini"), stdout=io.StringIO())
    # Alembic writes "Creating directory ..." to sys.stdout itself, which would corrupt --json
    with contextlib.redirect_stdout(io.StringIO()):
        command.init(config, str(folder / "migrations"), template=template)
    return registry.add_project(session, name, str(folder / "migrations"), actor=actor)
