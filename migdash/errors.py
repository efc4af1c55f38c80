"""The exception hierarchy shared by every layer.

Expected failures (an unreachable database, a failed probe) are values, not
exceptions.  What is raised here is misuse or broken input, named for the
condition, so that the boundaries (``web/errors.py``, ``cli.py``) can turn each
into a message a person can act on.
"""

from __future__ import annotations


class MigdashError(Exception):
    """Root of every error migdash raises on purpose.

    ``hint`` says what to do about it; the boundaries show it next to the
    message.
    """

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class BrokenProject(MigdashError):
    """An Alembic project whose revision files cannot be loaded.

    Names the file (when one is to blame) and the cause, so one broken project
    is reported and every other project keeps working.
    """

    hint = "Fix the file named above (or the project's script location) and reload the page."

    def __init__(self, location: str, reason: str, *, file: str | None = None) -> None:
        where = f"{file}: " if file else ""
        super().__init__(f"Project at {location} cannot be loaded: {where}{reason}")
        self.location = location
        self.reason = reason
        self.file = file


class UnknownRevision(MigdashError):
    """A revision id (or symbol) that the project's revision graph does not contain."""

    hint = "Check the id against the project's history page; ids may be abbreviated."

    def __init__(self, revision: str, project: str | None = None) -> None:
        where = f" in project {project}" if project else ""
        super().__init__(f"Unknown revision {revision!r}{where}")
        self.revision = revision


class NotFound(MigdashError):
    """A project, environment, target or user that does not exist."""

    hint = "Check the name; `migdash status` lists what is registered."


class Conflict(MigdashError):
    """A registry change that clashes with what exists (duplicate name, in-use row)."""


class InvalidInput(MigdashError):
    """A value that fails validation (bad URL, bad name, bad option).

    ``field`` names the form field or JSON key at fault, so a form can show the
    message next to it and an API client can point at it.
    """

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


class GraphvizUnavailable(MigdashError):
    """The Graphviz ``dot`` binary is missing, so no SVG can be drawn."""

    hint = "Install Graphviz (Debian/Ubuntu: apt-get install graphviz); pages work without it."


class ConfigError(MigdashError):
    """A configuration value that cannot be used; the message says which and why."""
