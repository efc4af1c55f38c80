"""Users: creation with hashed passwords, authentication, role changes.

Shared by the web sign-in and ``migdash user ...``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from migdash.errors import Conflict, InvalidInput, NotFound
from migdash.store.models import Role, User
from migdash.store.registry import check_name

MIN_PASSWORD = 8
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


def create_user(session: Session, username: str, password: str, role: Role = Role.VIEWER) -> User:
    username = check_name("user", username)
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD} characters")
    if session.scalar(sa.select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"a user named {username!r} already exists")
    user = User(username=username, password_hash=generate_password_hash(password), role=role.value)
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
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD} characters")
    user.password_hash = generate_password_hash(password)
    session.flush()


def set_role(session: Session, user: User, role: Role) -> None:
    user.role = Role(role).value
    session.flush()


def set_active(session: Session, user: User, active: bool) -> None:
    """Disable (or re-enable) an account; a disabled user cannot sign in or use tokens."""
    user.active = active
    session.flush()
