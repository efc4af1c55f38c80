"""Users: creation with hashed passwords, authentication, role changes.

Shared by the web sign-in and ``migdash user ...``.  The plain functions
(``create_user``, ``set_role`` ...) are building blocks.  What an admin does to
an account goes through the functions that take ``actor`` (``register_user``,
``change_role``, ``change_active``, ``reset_password``): they apply the safety
rules (nobody changes their own role or disables themself, an instance keeps
an active admin) and write the same audit rows the CLI writes, so the web
pages and the CLI cannot drift.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from migdash.errors import Conflict, InvalidInput, NotFound
from migdash.store import audit
from migdash.store.models import Role, User
from migdash.store.registry import check_name

MIN_PASSWORD = 8
PASSWORD_RULE = f"at least {MIN_PASSWORD} characters"
_DUMMY_HASH = generate_password_hash("timing-equaliser")


class LoginUser:
    """What Flask-Login keeps for a signed-in user (a plain object, no session ties)."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, user: User) -> None:
        self.id = user.id
        self.username = user.username
        self.role = Role(user.role)
        self.is_active = user.active

    def get_id(self) -> str:
        return str(self.id)

    def has_role(self, role: Role | str) -> bool:
        """True when this user's role is *role* or ranks above it."""
        return self.role.rank >= Role(role).rank


class SelfChange(Conflict):
    """Someone tried to change their own role or disable their own account."""

    hint = "Ask another admin to do it: nobody can lock themself out or promote themself."


class LastAdmin(Conflict):
    """A change that would leave the instance without an active admin."""

    hint = "Make another user an admin first."


def check_new_password(password: str) -> str:
    """The password policy, in one place for the CLI, the web forms and the store."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"the password must have {PASSWORD_RULE}")
    return password


def create_user(session: Session, username: str, password: str, role: Role = Role.VIEWER) -> User:
    username = check_name("user", username)
    check_new_password(password)
    if session.scalar(sa.select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"a user named {username!r} already exists")
    user = User(username=username, password_hash=generate_password_hash(password), role=Role(role))
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> LoginUser | None:
    """The user if the password matches and the account is active; same cost either way."""
    user = session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        return None
    return LoginUser(user)


def load_user(session: Session, user_id: str) -> LoginUser | None:
    try:
        user = session.get(User, int(user_id))
    except ValueError:
        return None
    return LoginUser(user) if user is not None and user.active else None


def get_user(session: Session, username: str) -> User:
    user = session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


def list_users(session: Session) -> Sequence[User]:
    return session.scalars(sa.select(User).order_by(User.username)).all()


def set_password(session: Session, user: User, password: str) -> None:
    check_new_password(password)
    user.password_hash = generate_password_hash(password)
    session.flush()


def set_role(session: Session, user: User, role: Role) -> None:
    user.role = Role(role)
    session.flush()


def set_active(session: Session, user: User, active: bool) -> None:
    """Disable (or re-enable) an account; a disabled user cannot sign in or use tokens."""
    user.active = active
    session.flush()


# --- what an admin does to an account: guarded and audited, the actor passed in ------------


def register_user(
    session: Session,
    username: str,
    password: str,
    role: Role,
    *,
    actor: str,
    ip: str | None = None,
) -> User:
    """Create an account and record ``user.create`` (the password never reaches the audit)."""
    user = create_user(session, username, password, role)
    audit.record(
        session, actor, "user.create", detail={"user": user.username, "role": user.role}, ip=ip
    )
    return user


def change_role(
    session: Session, user: User, role: Role, *, actor: str, ip: str | None = None
) -> None:
    """Give *user* another role; nobody changes their own, nor demotes the last active admin.

    :raises SelfChange: *user* is *actor*.
    :raises LastAdmin: *user* is the only active admin left.
    """
    before = user.role
    if before == role.value:
        return
    if user.username == actor:
        raise SelfChange(f"you cannot change your own role ({user.username}, {before})")
    if before == Role.ADMIN.value:
        _refuse_losing_the_last_admin(session, user, doing="demote")
    set_role(session, user, role)
    audit.record(
        session,
        actor,
        "user.set_role",
        detail={"user": user.username, "from": before, "to": role.value},
        ip=ip,
    )


def change_active(
    session: Session, user: User, active: bool, *, actor: str, ip: str | None = None
) -> None:
    """Enable or disable *user*; nobody disables themself, nor the last active admin.

    A disabled user's session and API tokens stop working on their next request.

    :raises SelfChange: *actor* disables their own account.
    :raises LastAdmin: *user* is the only active admin left.
    """
    if user.active == active:
        return
    if not active:
        if user.username == actor:
            raise SelfChange(f"you cannot disable your own account ({user.username})")
        _refuse_losing_the_last_admin(session, user, doing="disable")
    set_active(session, user, active)
    action = "user.enable" if active else "user.disable"
    audit.record(session, actor, action, detail={"user": user.username}, ip=ip)


def reset_password(
    session: Session, user: User, password: str, *, actor: str, ip: str | None = None
) -> None:
    """Set a new password for *user* (an admin's reset) and record ``user.set_password``."""
    set_password(session, user, password)
    audit.record(session, actor, "user.set_password", detail={"user": user.username}, ip=ip)


def _refuse_losing_the_last_admin(session: Session, user: User, *, doing: str) -> None:
    if user.role != Role.ADMIN.value or not user.active:
        return
    # Lock every active admin row, in id order, before counting (FOR UPDATE where the
    # dialect has it): two admins demoting each other at once then queue up instead of
    # each seeing the other as the admin who remains, and the second one re-reads the
    # rows the first one changed.
    admins = session.scalars(
        sa.select(User.id)
        .where(User.role == Role.ADMIN.value, User.active.is_(True))
        .order_by(User.id)
        .with_for_update()
    ).all()
    if list(admins) == [user.id]:
        raise LastAdmin(f"{user.username} is the last active admin; cannot {doing} them")
