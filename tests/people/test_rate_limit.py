"""Sign-in attempts are rate limited (``MIGDASH_LOGIN_RATE_LIMIT``) and every attempt is audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from migdash import create_app
from migdash.errors import ConfigError
from migdash.services import services_of
from migdash.store.models import AuditEvent, Role
from migdash.store.users import create_user


def limited_app(tmp_path: Path, limit: str) -> Flask:
    (tmp_path / "limited").mkdir(exist_ok=True)
    return create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "limited"),
            "MIGDASH_SECRET_KEY": "limit-secret",
            "WTF_CSRF_ENABLED": False,
            "MIGDASH_LOGIN_RATE_LIMIT": limit,
        }
    )


@pytest.fixture
def three_per_minute(tmp_path: Path) -> Iterator[Flask]:
    app = limited_app(tmp_path, "3 per minute")
    services = services_of(app)
    services.upgrade_schema()
    with services.sessions() as session:
        create_user(session, "gail", "gail-password", Role.VIEWER)
        session.commit()
    yield app
    services.probes.close()
    services.db_engine.dispose()


def test_the_fourth_attempt_in_a_minute_gets_429(three_per_minute: Flask) -> None:
    client = three_per_minute.test_client()
    for _ in range(3):
        wrong = client.post("/login", data={"username": "gail", "password": "guess-again"})
        assert wrong.status_code == 200
        assert "Wrong username or password." in wrong.get_data(as_text=True)

    limited = client.post("/login", data={"username": "gail", "password": "guess-again"})
    assert limited.status_code == 429
    text = limited.get_data(as_text=True)
    assert "Too many sign-in attempts; wait a minute and try again." in text
    assert "Traceback" not in text
    assert int(limited.headers["Retry-After"]) > 0
    right = client.post("/login", data={"username": "gail", "password": "gail-password"})
    assert right.status_code == 429, "the right password does not lift the limit"
    assert client.get("/login").status_code == 200, "the form itself is still served"
    assert client.get("/").status_code == 302, "and nobody was signed in"

    with services_of(three_per_minute).sessions() as session:
        events = session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)).all()
    failed = [e for e in events if e.action == "auth.login_failed"]
    assert [(e.actor, e.ip) for e in failed] == [("gail", "127.0.0.1")] * 3
    assert not [e for e in events if e.action == "auth.login"]


def test_a_successful_sign_in_is_audited_too(three_per_minute: Flask) -> None:
    client = three_per_minute.test_client()
    assert (
        client.post("/login", data={"username": "gail", "password": "gail-password"}).status_code
        == 302
    )
    assert client.post("/logout").status_code == 302
    with services_of(three_per_minute).sessions() as session:
        actions = session.execute(
            sa.select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
        ).all()
    assert [tuple(a) for a in actions] == [("gail", "auth.login"), ("gail", "auth.logout")]


@pytest.mark.parametrize("limit", ["lots", "", "3 per fortnight"])
def test_a_limit_that_cannot_be_parsed_stops_start_up(tmp_path: Path, limit: str) -> None:
    """Flask-Limiter alone would log the bad limit and let every attempt through."""
    with pytest.raises(ConfigError) as raised:
        limited_app(tmp_path, limit)
    assert "MIGDASH_LOGIN_RATE_LIMIT" in raised.value.message
    assert "per minute" in raised.value.hint
