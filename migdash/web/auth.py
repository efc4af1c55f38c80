"""Sign-in with Flask-Login, and the role check every view uses."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Flask, abort, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from migdash.extensions import login_manager
from migdash.store.models import Role
from migdash.store.users import LoginUser, authenticate, load_user
from migdash.web.db import db

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])


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
        if request.endpoint in {"auth.login", "static"} or request.endpoint is None:
            return None
        if not current_user.is_authenticated:
            if request.headers.get("HX-Request") == "true":
                # htmx would swap the login page into a fragment; send the browser there instead
                response = make_response("", 401)
                response.headers["HX-Redirect"] = url_for("auth.login", next=request.full_path)
                return response
            return login_manager.unauthorized()  # type: ignore[no-any-return]
        return None


def role_required(role: Role) -> Callable[[F], F]:
    """Refuse (403) users whose role ranks below *role*."""

    def decorate(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.has_role(role):
                abort(403, description=f"This needs the {role.value} role.")
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        user = authenticate(db(), form.username.data or "", form.password.data or "")
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        error = "Wrong username or password."
    return render_template("auth/login.html", form=form, error=error)


@bp.post("/logout")
def logout() -> Response:
    logout_user()
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths; anything else goes to the overview."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("overview.index")
