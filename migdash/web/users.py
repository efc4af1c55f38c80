"""Users and personal API tokens, for admins: the web face of ``migdash user`` / ``token``.

Every view parses the form, makes one call into ``migdash.store.users`` or
``migdash.store.tokens`` (which apply the safety rules and write the audit
row) and renders.  A refused change re-renders its form with the reason next
to the field; it is never an error page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, make_response, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import Field

from migdash.errors import Conflict, InvalidInput, MigdashError
from migdash.permissions import Permission
from migdash.store.models import Role, User, utcnow
from migdash.store.tokens import active_token_counts, issue_token, list_tokens, withdraw_token
from migdash.store.users import (
    change_active,
    change_role,
    get_user,
    list_users,
    register_user,
    reset_password,
)
from migdash.web.auth import client_ip, requires
from migdash.web.db import db
from migdash.web.user_forms import ButtonForm, NewUserForm, PasswordForm, RoleForm, TokenForm

bp = Blueprint("users", __name__, url_prefix="/users")
REFUSALS = (Conflict, InvalidInput)
"""What the store says when a well-formed request breaks a rule: shown next to the form."""


@bp.get("/")
@requires(Permission.ADMIN)
def index() -> str:
    return _index_page(NewUserForm(formdata=None))


@bp.post("/")
@requires(Permission.ADMIN)
def create() -> str | Response:
    form = NewUserForm()
    if form.validate_on_submit():
        try:
            user = register_user(
                db(),
                form.username.data or "",
                form.password.data or "",
                Role(form.role.data),
                actor=current_user.username,
                ip=client_ip(),
            )
        except REFUSALS as error:
            _refused(form.username.errors, error)
        else:
            db().commit()
            flash(f"Created user {user.username} ({user.role}).")
            return redirect(url_for("users.detail", username=user.username))
    return _index_page(form)


@bp.get("/<username>")
@requires(Permission.ADMIN)
def detail(username: str) -> str:
    return _detail_page(get_user(db(), username))


@bp.post("/<username>/role")
@requires(Permission.ADMIN)
def set_role(username: str) -> str | Response:
    user = get_user(db(), username)
    form = RoleForm()
    return _change(
        user,
        "role_form",
        form,
        form.role,
        lambda: change_role(
            db(), user, Role(form.role.data), actor=current_user.username, ip=client_ip()
        ),
        f"{user.username} now has the {form.role.data} role.",
    )


@bp.post("/<username>/password")
@requires(Permission.ADMIN)
def set_password(username: str) -> str | Response:
    user = get_user(db(), username)
    form = PasswordForm()
    return _change(
        user,
        "password_form",
        form,
        form.password,
        lambda: reset_password(
            db(), user, form.password.data or "", actor=current_user.username, ip=client_ip()
        ),
        f"New password set for {user.username}.",
    )


@bp.post("/<username>/disable")
@requires(Permission.ADMIN)
def disable(username: str) -> str | Response:
    return _set_active(username, active=False)


@bp.post("/<username>/enable")
@requires(Permission.ADMIN)
def enable(username: str) -> str | Response:
    return _set_active(username, active=True)


@bp.post("/<username>/tokens")
@requires(Permission.ADMIN)
def create_token(username: str) -> str | Response:
    """Show the new token's plaintext on this one response; it is never stored or shown again."""
    user = get_user(db(), username)
    form = TokenForm()
    if form.validate_on_submit():
        try:
            plaintext, token = issue_token(
                db(),
                user,
                form.name.data or "",
                actor=current_user.username,
                now=utcnow(),
                ip=client_ip(),
            )
        except REFUSALS as error:
            _refused(form.name.errors, error)
        else:
            db().commit()
            page = render_template(
                "users/token_created.html", user=user, token=token, plaintext=plaintext
            )
            response = make_response(page)
            response.headers["Cache-Control"] = "no-store"
            return response
    return _detail_page(user, token_form=form)


@bp.post("/tokens/<int:token_id>/revoke")
@requires(Permission.ADMIN)
def revoke_token(token_id: int) -> Response:
    if not ButtonForm().validate_on_submit():
        raise InvalidInput("the form expired; reload the page and try again")
    token = withdraw_token(
        db(), token_id, actor=current_user.username, now=utcnow(), ip=client_ip()
    )
    db().commit()
    flash(f"Revoked token {token.name} ({token.prefix}…) of {token.user.username}.")
    return redirect(url_for("users.index", _anchor="tokens"))


# --- rendering and the shared shape of a change ---------------------------------------------


def _set_active(username: str, *, active: bool) -> str | Response:
    user = get_user(db(), username)
    form = ButtonForm()
    return _change(
        user,
        "active_form",
        form,
        None,
        lambda: change_active(db(), user, active, actor=current_user.username, ip=client_ip()),
        f"{user.username} is {'enabled' if active else 'disabled'}.",
    )


def _change(
    user: User,
    slot: str,
    form: FlaskForm,
    field: Field | None,
    change: Callable[[], object],
    done: str,
) -> str | Response:
    """Validate *form*, make the *change*, commit and go back; or re-render with the reason.

    The reason goes next to *field* (or above a button-only form when None).
    """
    if form.validate_on_submit():
        try:
            change()
        except REFUSALS as error:
            _refused(field.errors if field is not None else form.form_errors, error)
        else:
            db().commit()
            flash(done)
            return redirect(url_for("users.detail", username=user.username))
    return _detail_page(user, **{slot: form})


def _refused(errors: list[str], error: MigdashError) -> None:
    db().rollback()  # drop whatever the refused call flushed before it raised
    errors.append(f"{error.message}. {error.hint}" if error.hint else error.message)


def _index_page(form: NewUserForm) -> str:
    session = db()
    return render_template(
        "users/index.html",
        users=list_users(session),
        token_counts=active_token_counts(session),
        tokens=list_tokens(session),
        form=form,
        button_form=ButtonForm(formdata=None),
    )


def _detail_page(user: User, **bound: Any) -> str:
    forms = {
        "role_form": RoleForm(formdata=None, role=user.role),
        "password_form": PasswordForm(formdata=None),
        "token_form": TokenForm(formdata=None),
        "active_form": ButtonForm(formdata=None),
        "button_form": ButtonForm(formdata=None),
        **bound,
    }
    return render_template("users/detail.html", user=user, tokens=list_tokens(db(), user), **forms)
