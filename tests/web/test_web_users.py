"""Users and tokens for admins: every action works, is audited as the CLI audits it, and is safe.

Data goes in through ``migdash.store`` or the pages themselves and is read
back from the metadata database; tokens are tried against the real API.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy.orm import Session

from migdash import create_app
from migdash.cli import main
from migdash.services import services_of
from migdash.store.models import ApiToken, AuditEvent, Role, User, utcnow
from migdash.store.tokens import create_token, revoke_token
from migdash.store.users import (
    LastAdmin,
    SelfChange,
    change_active,
    change_role,
    create_user,
    get_user,
)
from tests.web.pagetext import HOSTILE

NO_SLASH = "<img src=x onerror=alert(1)> \"q\" 'x'"
"""Hostile text that still fits one URL segment."""

PASSWORD = "correct-horse"  # noqa: S105 - test users only
ADMIN = "user-admin"
"""Who the ``admin`` fixture signs in as (the ``login`` fixture's naming)."""
TOKEN = re.compile(r"mdt_[A-Za-z0-9_\-]{20,}")
ERROR = re.compile(r'class="err">([^<]*)<')
CSRF_FIELD = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


# --- fixtures and readers -------------------------------------------------------------------


@pytest.fixture
def admin(login: Callable[..., FlaskClient]) -> FlaskClient:
    return login(Role.ADMIN)


@pytest.fixture
def make_user(app: Flask) -> Callable[..., str]:
    def factory(username: str, role: Role = Role.VIEWER, password: str = PASSWORD) -> str:
        with services_of(app).sessions() as session:
            create_user(session, username, password, role)
            session.commit()
        return username

    return factory


@pytest.fixture
def make_token(app: Flask) -> Callable[..., tuple[str, int]]:
    def factory(username: str, name: str = "laptop") -> tuple[str, int]:
        with services_of(app).sessions() as session:
            plaintext, token = create_token(session, get_user(session, username), name, utcnow())
            session.commit()
            return plaintext, token.id

    return factory


def events(app: Flask, prefix: str = "") -> list[tuple[str, str, dict[str, Any]]]:
    """(actor, action, detail) of every audit row whose action starts with *prefix*."""
    with services_of(app).sessions() as session:
        rows = session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.action.startswith(prefix))
            .where(AuditEvent.action.not_like("auth.%"))
            .order_by(AuditEvent.id)
        )
        return [(e.actor, e.action, e.detail) for e in rows]


def account(app: Flask, username: str) -> tuple[str, bool]:
    with services_of(app).sessions() as session:
        user = get_user(session, username)
        return user.role, user.active


def people(app: Flask) -> list[tuple[str, str, bool]]:
    with services_of(app).sessions() as session:
        users = session.scalars(sa.select(User).order_by(User.id))
        return [(u.username, u.role, u.active) for u in users]


def tokens(app: Flask) -> list[tuple[int, str, bool]]:
    with services_of(app).sessions() as session:
        rows = session.scalars(sa.select(ApiToken).order_by(ApiToken.id))
        return [(t.id, t.name, t.revoked_at is not None) for t in rows]


def errors(response: Any) -> list[str]:
    return [html.unescape(e) for e in ERROR.findall(response.get_data(as_text=True))]


def api_status(app: Flask, token: str) -> int:
    """``GET /api/v1/status`` with *token*, from a client that never signed in."""
    headers = {"Authorization": f"Bearer {token}"}
    return app.test_client().get("/api/v1/status", headers=headers).status_code


def can_sign_in(app: Flask, username: str, password: str) -> bool:
    response = app.test_client().post("/login", data={"username": username, "password": password})
    return response.status_code == 302


# --- listing --------------------------------------------------------------------------------


def test_the_list_shows_role_state_creation_and_live_token_count(
    app: Flask,
    admin: FlaskClient,
    make_user: Callable[..., str],
    make_token: Callable[..., tuple[str, int]],
) -> None:
    make_user("olga", Role.OPERATOR)
    make_user("vic")
    make_token("olga", "one")
    _, revoked = make_token("olga", "two")
    make_token("olga", "three")
    with services_of(app).sessions() as session:
        revoke_token(session, revoked, utcnow())
        change_active(session, get_user(session, "vic"), False, actor="cli")
        session.commit()

    body = admin.get("/users/").get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-user="([^"]+)">(.*?)</tr>', body, re.DOTALL))
    assert sorted(rows) == ["olga", ADMIN, "vic"]
    cells = {name: re.findall(r"<td>(.*?)</td>", row, re.DOTALL) for name, row in rows.items()}
    assert cells["olga"][1:3] == ["operator", "yes"]
    assert cells["olga"][4] == "2", "revoked tokens are not counted"
    assert cells["vic"][1:3] == ["viewer", "disabled"]
    assert cells["vic"][4] == "0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", cells["vic"][3])
    listed = re.findall(r'<tr data-token="(\d+)"><td>([^<]*)</td>', body)
    assert [name for _, name in listed] == ["one", "two", "three"]
    assert body.count(">revoke</button>") == 2, "only live tokens can be revoked"


def test_only_admins_see_the_users_link(
    login: Callable[..., FlaskClient], make_user: Callable[..., str], app: Flask
) -> None:
    make_user("amir", Role.APPROVER)
    approver = app.test_client()
    approver.post("/login", data={"username": "amir", "password": PASSWORD})
    assert 'href="/users/"' not in approver.get("/").get_data(as_text=True)
    assert 'href="/users/"' in login(Role.ADMIN).get("/").get_data(as_text=True)


# --- users: create, role, disable/enable, password --------------------------------------------


def test_create_a_user_who_can_then_sign_in(app: Flask, admin: FlaskClient) -> None:
    response = admin.post(
        "/users/", data={"username": "olga", "role": "operator", "password": "olga-secret"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/users/olga"
    assert account(app, "olga") == ("operator", True)
    assert can_sign_in(app, "olga", "olga-secret")
    assert events(app) == [(ADMIN, "user.create", {"user": "olga", "role": "operator"})]
    with services_of(app).sessions() as session:
        (event,) = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "user.create"))
        assert event.ip == "127.0.0.1"


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"username": "olga", "password": "short"}, "password", "at least 8 characters"),
        ({"username": "bad name", "password": "long-enough"}, "username", "is not allowed"),
        ({"username": HOSTILE, "password": "long-enough"}, "username", "is not allowed"),
        ({"username": "", "password": "long-enough"}, "username", "This field is required"),
        ({"username": "taken", "password": "long-enough"}, "username", "already exists"),
        ({"username": "olga", "password": "long-enough", "role": "root"}, "role", "valid choice"),
    ],
)
def test_a_refused_new_user_form_comes_back_with_the_reason_and_what_was_typed(
    app: Flask,
    admin: FlaskClient,
    make_user: Callable[..., str],
    form: dict[str, str],
    field: str,
    message: str,
) -> None:
    make_user("taken")
    before = people(app)
    response = admin.post("/users/", data={"role": "viewer", **form})
    assert response.status_code == 200, "the form again, not an error page"
    body = response.get_data(as_text=True)
    label = re.search(rf'<label>[^<]*\s*<(?:input|select) id="{field}".*?</label>', body, re.DOTALL)
    assert label is not None
    assert message in html.unescape(label.group(0)), "the reason sits next to its field"
    typed = re.search(r'id="username"[^>]*value="([^"]*)"', body)
    assert typed is not None
    assert html.unescape(typed.group(1)) == form["username"]
    assert form["password"] not in body, "a password is never sent back"
    assert "<script>alert(1)" not in body
    assert people(app) == before
    assert events(app, "user.") == []


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    username=st.text(min_size=1, max_size=30).filter(
        lambda s: s.strip() and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", s.strip()) is None
    )
)
def test_any_name_outside_the_rule_is_refused_and_never_echoed_raw(
    app: Flask, admin: FlaskClient, username: str
) -> None:
    """Names are letters, digits, ``_ . -`` (starting with a letter or digit); nothing else.

    The refusal quotes the name, escaped (a raw ``<`` would cut the error span
    short); the input keeps it, escaped (a raw ``"`` would end the attribute).
    """
    response = admin.post(
        "/users/", data={"username": username, "role": "viewer", "password": "long-enough"}
    )
    assert response.status_code == 200
    assert any(repr(username.strip()) in e for e in errors(response)), errors(response)
    typed = re.search(r'id="username"[^>]*value="([^"]*)"', response.get_data(as_text=True))
    assert typed is not None
    assert html.unescape(typed.group(1)) == username
    token = admin.post(f"/users/{ADMIN}/tokens", data={"name": username})
    assert token.status_code == 200
    assert TOKEN.search(token.get_data(as_text=True)) is None, "no token was made"
    assert [u for u, _, _ in people(app)] == [ADMIN]
    assert tokens(app) == []


def test_change_a_role_and_it_applies_at_once(
    app: Flask, admin: FlaskClient, make_user: Callable[..., str]
) -> None:
    make_user("olga", Role.VIEWER)
    response = admin.post("/users/olga/role", data={"role": "approver"})
    assert response.status_code == 302
    assert account(app, "olga") == ("approver", True)
    assert events(app) == [
        (ADMIN, "user.set_role", {"user": "olga", "from": "viewer", "to": "approver"})
    ]
    page = admin.get("/users/olga").get_data(as_text=True)
    assert '<option selected value="approver">' in page


def test_setting_the_same_role_changes_and_audits_nothing(
    app: Flask, admin: FlaskClient, make_user: Callable[..., str]
) -> None:
    make_user("olga", Role.OPERATOR)
    assert admin.post("/users/olga/role", data={"role": "operator"}).status_code == 302
    assert events(app) == []


def test_disable_ends_sessions_and_tokens_and_enable_restores_them(
    app: Flask,
    admin: FlaskClient,
    make_user: Callable[..., str],
    make_token: Callable[..., tuple[str, int]],
) -> None:
    make_user("olga", Role.OPERATOR)
    token, _ = make_token("olga")
    olga = app.test_client()
    olga.post("/login", data={"username": "olga", "password": PASSWORD})
    assert olga.get("/").status_code == 200
    assert api_status(app, token) == 200

    assert admin.post("/users/olga/disable").status_code == 302
    assert account(app, "olga") == ("operator", False)
    assert api_status(app, token) == 401, "a disabled user's token is refused"
    assert olga.get("/").status_code == 302, "and their open session ends"
    assert not can_sign_in(app, "olga", PASSWORD)
    assert "disabled" in admin.get("/users/olga").get_data(as_text=True)

    assert admin.post("/users/olga/enable").status_code == 302
    assert api_status(app, token) == 200
    assert can_sign_in(app, "olga", PASSWORD)
    assert events(app) == [
        (ADMIN, "user.disable", {"user": "olga"}),
        (ADMIN, "user.enable", {"user": "olga"}),
    ]


def test_reset_a_password(app: Flask, admin: FlaskClient, make_user: Callable[..., str]) -> None:
    make_user("olga")
    response = admin.post("/users/olga/password", data={"password": "brand-new-secret"})
    assert response.status_code == 302
    assert can_sign_in(app, "olga", "brand-new-secret")
    assert not can_sign_in(app, "olga", PASSWORD)
    assert events(app) == [(ADMIN, "user.set_password", {"user": "olga"})]
    assert "brand-new-secret" not in str(events(app))


def test_a_short_new_password_is_refused_next_to_the_field(
    app: Flask, admin: FlaskClient, make_user: Callable[..., str]
) -> None:
    make_user("olga")
    response = admin.post("/users/olga/password", data={"password": "seven77"})
    assert response.status_code == 200
    assert errors(response) == ["the password must have at least 8 characters"]
    assert "seven77" not in response.get_data(as_text=True)
    assert "At least 8 characters." in response.get_data(as_text=True), "the rule is said"
    assert can_sign_in(app, "olga", PASSWORD)
    assert events(app) == []


def test_an_unknown_user_is_a_404_page(admin: FlaskClient) -> None:
    for response in (
        admin.get("/users/nobody"),
        admin.post("/users/nobody/role", data={"role": "admin"}),
        admin.post("/users/nobody/disable"),
        admin.post("/users/nobody/tokens", data={"name": "x"}),
        admin.post("/users/tokens/999/revoke"),
    ):
        assert response.status_code == 404


# --- the last admin ---------------------------------------------------------------------------


def test_an_admin_cannot_disable_or_demote_themself(
    app: Flask, admin: FlaskClient, make_user: Callable[..., str]
) -> None:
    make_user("second-admin", Role.ADMIN)  # even when another admin would remain
    disable = admin.post(f"/users/{ADMIN}/disable")
    assert disable.status_code == 200
    assert any("cannot disable your own account" in e for e in errors(disable))
    demote = admin.post(f"/users/{ADMIN}/role", data={"role": "approver"})
    assert demote.status_code == 200
    assert any("cannot change your own role" in e for e in errors(demote))
    assert '<option selected value="approver">' in demote.get_data(as_text=True), "as typed"
    assert account(app, ADMIN) == ("admin", True)
    assert events(app) == []


def test_another_admin_can_be_demoted_and_disabled_while_one_remains(
    app: Flask, admin: FlaskClient, make_user: Callable[..., str]
) -> None:
    make_user("second-admin", Role.ADMIN)
    assert admin.post("/users/second-admin/role", data={"role": "viewer"}).status_code == 302
    assert admin.post("/users/second-admin/disable").status_code == 302
    assert account(app, "second-admin") == ("viewer", False)


def test_the_last_active_admin_is_kept(app: Flask, make_user: Callable[..., str]) -> None:
    """Through the store with an actor who is no user (what ``migdash`` on a shell is)."""
    make_user("root", Role.ADMIN)
    make_user("spare", Role.ADMIN)
    with services_of(app).sessions() as session:
        spare = get_user(session, "spare")
        change_active(session, spare, False, actor="cli")
        root = get_user(session, "root")
        with pytest.raises(LastAdmin, match="root is the last active admin"):
            change_role(session, root, Role.OPERATOR, actor="cli")
        with pytest.raises(LastAdmin):
            change_active(session, root, False, actor="cli")
        change_active(session, spare, True, actor="cli")
        change_role(session, root, Role.OPERATOR, actor="cli")  # spare remains
        with pytest.raises(LastAdmin):
            change_active(session, spare, False, actor="cli")
        session.commit()
    assert account(app, "root") == ("operator", True)
    assert account(app, "spare") == ("admin", True)


@pytest.fixture
def postgres_app(tmp_path: Path, postgres_url: str) -> Iterator[Flask]:
    """The metadata database on PostgreSQL, where row locks are real."""
    (tmp_path / "pg-instance").mkdir()
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "pg-instance"),
            "MIGDASH_SECRET_KEY": "pg-secret",
            "MIGDASH_DATABASE_URL": postgres_url,
        }
    )
    services_of(app).upgrade_schema()
    yield app
    services_of(app).probes.close()
    services_of(app).db_engine.dispose()


@pytest.mark.server
def test_two_admins_demoting_each_other_at_once_leave_one_admin(postgres_app: Flask) -> None:
    """Each transaction alone sees another admin remain; the row locks make them take turns."""
    services = services_of(postgres_app)
    with services.sessions() as session:
        create_user(session, "ada", PASSWORD, Role.ADMIN)
        create_user(session, "bea", PASSWORD, Role.ADMIN)
        session.commit()
    first, second = services.sessions(), services.sessions()
    outcome: dict[str, Any] = {}
    try:
        change_role(first, get_user(first, "bea"), Role.VIEWER, actor="ada")  # not committed
        ada = get_user(second, "ada")  # plain reads do not wait: ada and bea are both admins

        def demote_ada() -> None:
            try:
                change_role(second, ada, Role.VIEWER, actor="bea")
                second.commit()
                outcome["done"] = True
            except LastAdmin as error:
                second.rollback()
                outcome["refused"] = error

        racer = threading.Thread(target=demote_ada)
        racer.start()
        racer.join(timeout=1.0)
        assert racer.is_alive(), "the second demotion waits for the first one's locks"
        first.commit()
        racer.join(timeout=30)
        assert not racer.is_alive()
    finally:
        first.close()
        second.close()
    assert isinstance(outcome.get("refused"), LastAdmin), outcome
    assert (account(postgres_app, "ada"), account(postgres_app, "bea")) == (
        ("admin", True),
        ("viewer", True),
    )


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "cli"]),  # actor
        st.sampled_from(["a", "b", "c"]),  # whose account
        st.sampled_from(["role", "active"]),
        st.sampled_from(list(Role)),
        st.booleans(),
    ),
    max_size=25,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=OPERATIONS)
def test_no_sequence_of_changes_loses_the_last_admin_or_locks_out_its_author(
    db_session: Session, operations: list[tuple[str, str, str, Role, bool]]
) -> None:
    """Random role and enable/disable changes by random actors, refused or not.

    After each one: an active admin remains, and nobody changed their own role
    or disabled themself.
    """
    try:
        for name in "abc":  # hashes are irrelevant here; skip the slow hashing
            db_session.add(User(username=name, password_hash="-", role=Role.ADMIN.value))
        db_session.flush()
        for actor, whose, kind, role, active in operations:
            user = get_user(db_session, whose)
            before = (user.role, user.active)
            try:
                if kind == "role":
                    change_role(db_session, user, role, actor=actor)
                else:
                    change_active(db_session, user, active, actor=actor)
            except (LastAdmin, SelfChange):
                assert (user.role, user.active) == before
            admins = db_session.scalar(
                sa.select(sa.func.count())
                .select_from(User)
                .where(User.role == "admin", User.active.is_(True))
            )
            assert admins >= 1
            if actor == whose and before != (user.role, user.active):
                assert kind == "active"
                assert user.active, "only enabling oneself is a change one may make"
    finally:
        db_session.rollback()


# --- tokens -----------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_only_its_hash_is_kept(
    app: Flask,
    admin: FlaskClient,
    make_user: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_user("olga", Role.OPERATOR)
    with caplog.at_level(logging.DEBUG):
        response = admin.post("/users/olga/tokens", data={"name": "ci-deploy"})
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        (plaintext,) = set(TOKEN.findall(response.get_data(as_text=True)))
        assert api_status(app, plaintext) == 200

        later = [
            admin.get("/users/"),
            admin.get("/users/olga"),
            admin.get("/audit/"),
            admin.get("/audit/export.json"),
            admin.get("/audit/export.csv"),
        ]
    for page in later:
        assert page.status_code == 200
        assert plaintext not in page.get_data(as_text=True)
    for page in later[:2]:
        assert f"<code>{plaintext[:12]}…</code>" in page.get_data(as_text=True), "the prefix is"
    assert plaintext not in caplog.text
    with services_of(app).sessions() as session:
        (token,) = session.scalars(sa.select(ApiToken))
        assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
        assert token.prefix == plaintext[:12]
    instance = Path(services_of(app).settings["MIGDASH_INSTANCE"])
    stored = b"".join(p.read_bytes() for p in instance.rglob("*") if p.is_file())
    assert plaintext.encode() not in stored
    (created,) = events(app, "token.")
    assert created == (
        ADMIN,
        "token.create",
        {"user": "olga", "token_id": token.id, "name": "ci-deploy"},
    )


def test_revoke_a_token(
    app: Flask,
    admin: FlaskClient,
    make_user: Callable[..., str],
    make_token: Callable[..., tuple[str, int]],
) -> None:
    make_user("olga")
    plaintext, token_id = make_token("olga")
    kept, _ = make_token("olga", "desktop")
    response = admin.post(f"/users/tokens/{token_id}/revoke")
    assert response.status_code == 302
    assert api_status(app, plaintext) == 401
    assert api_status(app, kept) == 200
    assert tokens(app)[0] == (token_id, "laptop", True)
    again = admin.post(f"/users/tokens/{token_id}/revoke")
    assert again.status_code == 409
    assert "revoked already" in again.get_data(as_text=True)
    assert events(app) == [(ADMIN, "token.revoke", {"token_id": token_id, "user": "olga"})]


def test_no_token_for_a_disabled_user(
    app: Flask, admin: FlaskClient, make_user: Callable[..., str]
) -> None:
    make_user("olga")
    admin.post("/users/olga/disable")
    response = admin.post("/users/olga/tokens", data={"name": "laptop"})
    assert response.status_code == 200
    assert any("olga is disabled" in e for e in errors(response))
    assert 'value="laptop"' in response.get_data(as_text=True)
    assert TOKEN.search(response.get_data(as_text=True)) is None
    assert tokens(app) == []


def test_hostile_names_already_in_the_database_render_inert(app: Flask, admin: FlaskClient) -> None:
    """Rows written around the store's name rule (an old version, a hand edit) stay text."""
    with services_of(app).sessions() as session:
        for name in (HOSTILE, NO_SLASH):
            user = User(username=name, password_hash="-", role="viewer")
            session.add(user)
            session.flush()
            digest = hashlib.sha256(name.encode()).hexdigest()
            session.add(ApiToken(user_id=user.id, name=name, token_hash=digest, prefix="mdt_x"))
        session.commit()
    pages = {
        HOSTILE: admin.get("/users/"),  # a "/" in the name: listed, but it has no page of its own
        NO_SLASH: admin.get("/users/" + quote(NO_SLASH)),
    }
    for name, page in pages.items():
        assert page.status_code == 200
        body = page.get_data(as_text=True)
        assert "<script>alert(1)" not in body
        assert "<img" not in body
        assert body.count(str(escape(name))) >= 2, "the user and their token, escaped"


# --- the same audit rows as the CLI ------------------------------------------------------------


def test_web_and_cli_write_the_same_audit_actions(
    app: Flask, admin: FlaskClient, runner: FlaskCliRunner
) -> None:
    def cli(*args: str) -> str:
        result = runner.invoke(main, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    cli("user", "create", "by-cli", "--role", "operator", "--password", PASSWORD)
    cli("user", "set-role", "by-cli", "approver")
    cli("user", "disable", "by-cli")
    cli("user", "disable", "by-cli", "--enable")
    cli("token", "create", "laptop", "--user", "by-cli")
    cli_token = tokens(app)[-1][0]
    cli("token", "revoke", str(cli_token))
    by_cli = events(app)

    admin.post("/users/", data={"username": "by-web", "role": "operator", "password": PASSWORD})
    admin.post("/users/by-web/role", data={"role": "approver"})
    admin.post("/users/by-web/disable")
    admin.post("/users/by-web/enable")
    admin.post("/users/by-web/tokens", data={"name": "laptop"})
    web_token = tokens(app)[-1][0]
    admin.post(f"/users/tokens/{web_token}/revoke")
    by_web = events(app)[len(by_cli) :]

    def shape(rows: list[tuple[str, str, dict[str, Any]]], who: str, token: int) -> list[Any]:
        return [
            (action, {k: {who: "X", token: "T"}.get(v, v) for k, v in detail.items()})
            for _, action, detail in rows
        ]

    assert shape(by_web, "by-web", web_token) == shape(by_cli, "by-cli", cli_token)
    assert [actor for actor, _, _ in by_web] == [ADMIN] * 6


# --- authorisation and CSRF --------------------------------------------------------------------


def users_routes(app: Flask, token_id: int) -> list[tuple[str, str]]:
    """(method, URL) for every rule of the users blueprint, so a new route is covered at once."""
    values = {"username": "olga", "token_id": token_id}
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("users."):
            url = rule.build({k: values[k] for k in rule.arguments})
            assert url is not None
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found.append((method, url[1]))
    assert len(found) >= 9
    return found


FORM = {"username": "intruder", "role": "admin", "password": "long-enough", "name": "x"}


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR, Role.APPROVER])
def test_every_users_route_is_403_below_admin_and_changes_nothing(
    app: Flask,
    login: Callable[..., FlaskClient],
    make_user: Callable[..., str],
    make_token: Callable[..., tuple[str, int]],
    role: Role,
) -> None:
    make_user("olga", Role.OPERATOR)
    _, token_id = make_token("olga")
    client = login(role)
    before = (people(app), tokens(app), events(app))
    for method, url in users_routes(app, token_id):
        response = client.open(url, method=method, data=FORM)
        assert response.status_code == 403, (method, url)
        assert "this needs the admin role" in response.get_data(as_text=True)
        assert "olga" not in response.get_data(as_text=True), "nothing about the users"
    assert (people(app), tokens(app), events(app)) == before


@pytest.fixture
def csrf_app(tmp_path: Path) -> Iterator[Flask]:
    """Like ``app`` but with CSRF protection on, as in production."""
    (tmp_path / "csrf-instance").mkdir()
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "csrf-instance"),
            "MIGDASH_SECRET_KEY": "csrf-secret-key",
        }
    )
    services = services_of(app)
    services.upgrade_schema()
    with services.sessions() as session:
        create_user(session, "root", PASSWORD, Role.ADMIN)
        create_user(session, "olga", PASSWORD, Role.OPERATOR)
        create_token(session, get_user(session, "olga"), "laptop", utcnow())
        session.commit()
    yield app
    services.probes.close()
    services.db_engine.dispose()


def test_every_users_post_needs_the_csrf_token(csrf_app: Flask) -> None:
    client = csrf_app.test_client()
    token = CSRF_FIELD.search(client.get("/login").get_data(as_text=True))
    assert token is not None
    signed_in = client.post(
        "/login", data={"username": "root", "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert signed_in.status_code == 302
    before = (people(csrf_app), tokens(csrf_app), events(csrf_app))
    posts = [(m, url) for m, url in users_routes(csrf_app, 1) if m == "POST"]
    for _, url in posts:
        for extra in ({}, {"csrf_token": "forged"}):
            response = client.post(url, data={**FORM, **extra})
            assert response.status_code == 400, url
            assert "CSRF" in response.get_data(as_text=True)
    assert (people(csrf_app), tokens(csrf_app), events(csrf_app)) == before

    page = client.get("/users/olga").get_data(as_text=True)
    real = CSRF_FIELD.search(page)
    assert real is not None
    accepted = client.post("/users/olga/disable", data={"csrf_token": real.group(1)})
    assert accepted.status_code == 302
    assert account(csrf_app, "olga") == ("operator", False)
