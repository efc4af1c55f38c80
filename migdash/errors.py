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
    keeps_record: bool = False
    """True when what was recorded before the refusal (an audit row, a renewed plan)
    must be committed by the boundary even though the request itself is refused."""

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


class ForbiddenDestination(InvalidInput):
    """A webhook URL that points at a loopback, private or otherwise internal address.

    Refused unless an admin allows private receivers for that webhook: without
    the check, a webhook could make the server probe its own network.
    """

    hint = (
        "Use a public receiver, or (admin only) allow private addresses for this webhook "
        "when the receiver is meant to be internal."
    )


class GraphvizUnavailable(MigdashError):
    """The Graphviz ``dot`` binary is missing, so no SVG can be drawn."""

    hint = "Install Graphviz (Debian/Ubuntu: apt-get install graphviz); pages work without it."


class ConfigError(MigdashError):
    """A configuration value that cannot be used; the message says which and why."""


class Forbidden(MigdashError):
    """The actor's role does not allow this."""

    hint = "Ask an admin for a role that allows it."


class FourEyesViolation(Forbidden):
    """Someone tried to approve their own request (the refusal itself is audited)."""

    hint = "Another approver has to review and approve it."
    keeps_record = True


class AmbiguousHead(MigdashError):
    """``head`` was asked for but the project (or branch) has several heads."""

    hint = "Name the head (a revision id or branch_label@head), or use 'heads'."


class TargetMoved(Conflict):
    """The target's revision changed since the plan was made; the plan was renewed."""

    hint = "Read the new plan below and approve again if it is still what you want."
    keeps_record = True


class JobPending(Conflict):
    """A target already has a job waiting or running; a second one would act on a stale plan."""

    def __init__(self, job_id: int, target: str, state: str) -> None:
        super().__init__(
            f"job {job_id} is already pending for target {target} ({state})",
            hint=f"Open job {job_id}: wait for it to end, or cancel or reject it, then ask again.",
        )
        self.job_id = job_id


class PromotionOutOfOrder(Conflict):
    """A promotion would bring an environment revisions the one before it does not hold yet,
    and the environment's promotion rule is ``refuse``."""

    hint = (
        "Promote to the environment before it first, or ask an admin to set this "
        "environment's promotion rule to 'warn'."
    )


class TargetUnreachable(Conflict):
    """The target cannot be read, so no plan can be made or approved."""

    hint = "Nothing can be planned, reviewed or run until the target answers again."


class PlanRefused(InvalidInput):
    """Alembic would refuse this action from the target's current revision."""


class UnsafeRevisionFile(MigdashError):
    """A revision file written for a request does not say exactly what was asked."""

    hint = (
        "The file was removed and nothing else changed. Simplify the message (or the "
        "project's script.py.mako) and try again."
    )
