"""One metadata-DB session per request, closed at teardown."""

from __future__ import annotations

from flask import g
from sqlalchemy.orm import Session

from migdash.services import services_of


def db() -> Session:
    """The request's session (opened on first use)."""
    if "db_session" not in g:
        g.db_session = services_of().sessions()
    session: Session = g.db_session
    return session


def finish_failed_request(*, keep: bool) -> None:
    """End a refused request's transaction: commit what it recorded on purpose, or roll back.

    Only an error marked ``keeps_record`` (a refused self-approval's audit row)
    keeps anything; every other failure leaves the metadata DB as it was.
    """
    session: Session | None = g.get("db_session")
    if session is None:
        return
    if keep:
        session.commit()
    else:
        session.rollback()


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
