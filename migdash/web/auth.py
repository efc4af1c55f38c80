"""Sign-in with Flask-Login, and the permission check every view uses.

Every request needs a signed-in user, except the sign-in page, static files
and the token-authenticated API.  :func:`requires` marks each view with the
permission it needs (the check itself is ``migdash.permissions``), and the
mark is what the authorisation-matrix test reads.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Flask, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from migdash.extensions import limiter, login_manager
from migdash.permissions import Permission, require
from migdash.store import audit
from migdash.store.users import LoginUser, authenticate, load_user
from migdash.web import health, metrics
from migdash.web.db import db

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])
PUBLIC_ENDPOINTS = frozenset({"auth.login", "static"}) | health.PUBLIC | metrics.PUBLIC


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def init_login(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see this page."
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def _load(user_id: str) -> LoginUser | None:
        return load_user(db(), user_id)

    @app.before_request
    def _require_login() -> Response | None:
        if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
            return None
        if request.blueprint == "api":
            return None  # the API authenticates by token, never by cookie
        if not current_user.is_authenticated:
            if request.headers.get("HX-Request") == "true":
                # htmx would swap the login page into a fragment; send the browser there instead
                response = make_response("", 401)
                response.headers["HX-Redirect"] = url_for("auth.login", next=request.full_path)
                return response
            return login_manager.unauthorized()  # type: ignore[no-any-return]
        return None


def requires(permission: Permission) -> Callable[[F], F]:
    """Refuse (403, with the reason) users whose role lacks *permission*."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            require(current_user.role, permission, actor=current_user.username)
            return view(*args, **kwargs)

        wrapped.required_permission = permission  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate


def client_ip() -> str | None:
    return request.remote_addr


def _login_limit() -> str:
    from flask import current_app

    return str(current_app.config["MIGDASH_LOGIN_RATE_LIMIT"])


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    _login_limit,
    methods=["POST"],
    error_message="Too many sign-in attempts; wait a minute and try again.",
)
def login() -> str | Response:
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        session = db()
        username = form.username.data or ""
        user = authenticate(session, username, form.password.data or "")
        if user is not None:
            login_user(user)
            audit.record(session, user.username, "auth.login", ip=client_ip())
            session.commit()
            return redirect(_safe_next(request.args.get("next")))
        audit.record(session, username[:100] or "-", "auth.login_failed", ip=client_ip())
        session.commit()
        error = "Wrong username or password."
    return render_template("auth/login.html", form=form, error=error)


@bp.post("/logout")
@requires(Permission.VIEW)
def logout() -> Response:
    session = db()
    audit.record(session, current_user.username, "auth.logout", ip=client_ip())
    session.commit()
    logout_user()
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths; anything else goes to the overview."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("overview.index")
