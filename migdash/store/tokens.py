"""Personal API tokens: shown once, stored only as a SHA-256, revocable.

``create_token`` and ``revoke_token`` are building blocks; ``issue_token`` and
``withdraw_token`` are what an admin does (actor passed in), and write the same
audit rows as ``migdash token ...``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.errors import Conflict, NotFound
from migdash.store import audit
from migdash.store.models import ApiToken, User
from migdash.store.registry import check_name
from migdash.store.users import LoginUser

PREFIX = "mdt_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: User, name: str, now: datetime) -> tuple[str, ApiToken]:
    """A new token for *user*; the plaintext is returned here and never stored."""
    name = check_name("token", name)
    plaintext = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(plaintext),
        prefix=plaintext[:12],
        created_at=now,
    )
    session.add(token)
    session.flush()
    return plaintext, token


def authenticate_token(session: Session, plaintext: str, now: datetime) -> LoginUser | None:
    """The token's user if the token exists, is not revoked and the user is active."""
    if not plaintext.startswith(PREFIX):
        return None
    token = session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext)))
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    token.last_used_at = now
    return LoginUser(token.user)


def revoke_token(session: Session, token_id: int, now: datetime) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token {token_id}")
    token.revoked_at = token.revoked_at or now
    return token


def list_tokens(session: Session, user: User | None = None) -> Sequence[ApiToken]:
    query = sa.select(ApiToken).order_by(ApiToken.id)
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return session.scalars(query).all()


def active_token_counts(session: Session) -> dict[int, int]:
    """User id -> how many unrevoked tokens they hold (users without any are absent)."""
    rows = session.execute(
        sa.select(ApiToken.user_id, sa.func.count())
        .where(ApiToken.revoked_at.is_(None))
        .group_by(ApiToken.user_id)
    )
    return {user_id: count for user_id, count in rows}


def issue_token(
    session: Session,
    user: User,
    name: str,
    *,
    actor: str,
    now: datetime,
    ip: str | None = None,
) -> tuple[str, ApiToken]:
    """A new token for *user*, audited as ``token.create``; the plaintext goes to the caller only.

    :raises Conflict: *user* is disabled (the token could never authenticate).
    """
    if not user.active:
        raise Conflict(
            f"{user.username} is disabled; a token for them would never work",
            hint="Enable the account first.",
        )
    plaintext, token = create_token(session, user, name, now)
    audit.record(
        session,
        actor,
        "token.create",
        detail={"user": user.username, "token_id": token.id, "name": token.name},
        ip=ip,
        now=now,
    )
    return plaintext, token


def withdraw_token(
    session: Session, token_id: int, *, actor: str, now: datetime, ip: str | None = None
) -> ApiToken:
    """Revoke a token at once, audited as ``token.revoke``.

    :raises NotFound: no such token.
    :raises Conflict: it was revoked already (the first revocation's time stays).
    """
    token = session.get(ApiToken, token_id)
    if token is not None and token.revoked_at is not None:
        raise Conflict(f"token {token_id} was revoked already")
    token = revoke_token(session, token_id, now)
    session.flush()
    audit.record(
        session,
        actor,
        "token.revoke",
        detail={"token_id": token.id, "user": token.user.username},
        ip=ip,
        now=now,
    )
    return token
