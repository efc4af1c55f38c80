"""Who may do what: the one permission check every view, API route and CLI path uses.

Roles rank viewer < operator < approver < admin, each including the ones
before it.  Keeping the table here (and not in decorators scattered over
views) is what lets a single test walk every route and every role.
"""

from __future__ import annotations

from enum import StrEnum

from migdash.errors import Forbidden, FourEyesViolation
from migdash.store.models import Role

__all__ = ["Forbidden", "FourEyesViolation", "Permission", "allowed", "require"]


class Permission(StrEnum):
    VIEW = "view"
    """Read every page and API status; never secrets (URLs are always masked)."""
    REQUEST = "request"
    """Request actions; they run at once on unprotected environments."""
    APPROVE = "approve"
    """Approve or reject jobs on protected environments (never one's own)."""
    AUDIT = "audit"
    """Read and export the audit trail."""
    ADMIN = "admin"
    """Registry, users, tokens, settings."""


MINIMUM_ROLE: dict[Permission, Role] = {
    Permission.VIEW: Role.VIEWER,
    Permission.REQUEST: Role.OPERATOR,
    Permission.APPROVE: Role.APPROVER,
    Permission.AUDIT: Role.APPROVER,
    Permission.ADMIN: Role.ADMIN,
}


def allowed(role: Role | str, permission: Permission) -> bool:
    """True when *role* ranks at or above the minimum for *permission*."""
    return Role(role).rank >= MINIMUM_ROLE[permission].rank


def require(role: Role | str, permission: Permission, *, actor: str = "you") -> None:
    """Raise :class:`Forbidden` unless *role* has *permission*."""
    if not allowed(role, permission):
        needed = MINIMUM_ROLE[permission].value
        raise Forbidden(
            f"{actor} ({Role(role).value}) may not {permission.value}: this needs the {needed} role"
        )
