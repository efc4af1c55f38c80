"""Webhooks, for admins: list, add, edit, remove, send a test, read the delivery log.

Views parse the form, make one call into :mod:`migdash.jobs.webhooks` (which
checks the receiver's address and writes the audit row) and render.  URLs
are shown masked (scheme and host only) and the signing secret never is.
Nothing is sent from here: the worker's delivery pass sends.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, make_response, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from migdash.errors import Conflict, InvalidInput
from migdash.jobs.webhooks import (
    WebhookFields,
    mask_webhook_url,
    remove_webhook,
    save_webhook,
    send_test,
)
from migdash.permissions import Permission
from migdash.store.models import utcnow
from migdash.store.queries import all_environments, all_projects
from migdash.store.webhook_models import EVENTS, Webhook
from migdash.store.webhooks import all_webhooks, deliveries_of, get_webhook
from migdash.web.auth import requires
from migdash.web.db import db
from migdash.web.errors import classify
from migdash.web.forms import DeleteForm

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


class WebhookForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    url = PasswordField(
        "Receiver URL",
        validators=[Optional(), Length(max=2000)],
        description="http(s) URL the events are POSTed to. Leave empty when editing to keep it.",
    )
    secret = PasswordField(
        "Signing secret",
        validators=[Optional(), Length(max=200)],
        description="16 or more characters; X-Migdash-Signature is sha256=HMAC(secret, body). "
        "Leave empty when editing to keep it.",
    )
    project = SelectField("Project", default="", description="Empty: every project.")
    environment = SelectField("Environment", default="", description="Empty: every environment.")
    format = SelectField("Format", default="json")
    events = StringField(
        "Events",
        validators=[Length(max=2000)],
        description="Comma-separated; empty: every event. " + ", ".join(EVENTS),
    )
    active = BooleanField("Active", default=True)
    allow_private = BooleanField(
        "Allow a private or loopback receiver",
        description="Only for receivers meant to be internal; otherwise they are refused.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        session = db()
        self.project.choices = [("", "(every project)")] + [
            (p.name, p.name) for p in all_projects(session)
        ]
        self.environment.choices = [("", "(every environment)")] + [
            (e.name, e.name) for e in all_environments(session)
        ]
        self.format.choices = [("json", "json"), ("slack", 'slack: {"text": ...}')]


def _fields(form: WebhookForm) -> WebhookFields:
    events = tuple((form.events.data or "").split(","))
    return WebhookFields(
        name=form.name.data or "",
        url=form.url.data or None,
        secret=form.secret.data or None,
        project=form.project.data or None,
        environment=form.environment.data or None,
        format=form.format.data or "json",
        events=events,
        active=bool(form.active.data),
        allow_private=bool(form.allow_private.data),
    )


def _show_form(
    form: WebhookForm, existing: Webhook | None, error: InvalidInput | Conflict | None = None
) -> Response:
    """The form again (secrets come back empty) with what went wrong beside its field."""
    status = 200
    if error is not None:
        db().rollback()
        message = [error.message, *([error.hint] if error.hint else [])]
        field = getattr(error, "field", None)
        if field and field in form and field != "csrf_token":
            form[field].errors = [*form[field].errors, *message]
        else:
            form.form_errors.extend(message)
        status = classify(error)[1]
    elif form.is_submitted():
        status = 400
    html = render_template("webhooks/form.html", form=form, existing=existing)
    return make_response(html, status)


@bp.get("/")
@requires(Permission.ADMIN)
def index() -> str:
    return render_template(
        "webhooks/index.html", webhooks=all_webhooks(db()), masked=mask_webhook_url
    )


@bp.route("/new", methods=["GET", "POST"])
@bp.route("/<name>/edit", methods=["GET", "POST"])
@requires(Permission.ADMIN)
def form(name: str | None = None) -> Response:
    session = db()
    existing = get_webhook(session, name) if name else None
    form = WebhookForm()
    if existing is not None and not form.is_submitted():
        form.name.data = existing.name
        form.project.data = existing.project.name if existing.project else ""
        form.environment.data = existing.environment.name if existing.environment else ""
        form.format.data = existing.format.value
        form.events.data = ", ".join(existing.events)
        form.active.data = existing.active
        form.allow_private.data = existing.allow_private
    if not form.validate_on_submit():
        return _show_form(form, existing)
    try:
        hook = save_webhook(
            session,
            _fields(form),
            existing=existing,
            actor=current_user.username,
            role=current_user.role,
            now=utcnow(),
        )
    except (InvalidInput, Conflict) as exc:
        return _show_form(form, existing, exc)
    session.commit()
    flash(f"Webhook {hook.name} saved.")
    return redirect(url_for("webhooks.detail", name=hook.name))


@bp.get("/<name>")
@requires(Permission.ADMIN)
def detail(name: str) -> str:
    session = db()
    hook = get_webhook(session, name)
    return render_template(
        "webhooks/detail.html",
        hook=hook,
        url=mask_webhook_url(hook.url),
        deliveries=deliveries_of(session, hook.id),
        form=DeleteForm(),
    )


@bp.post("/<name>/test")
@requires(Permission.ADMIN)
def test(name: str) -> Response:
    session = db()
    hook = get_webhook(session, name)
    if not DeleteForm().validate_on_submit():
        raise InvalidInput("the form expired; reload the page and try again")
    send_test(session, hook, actor=current_user.username, role=current_user.role, now=utcnow())
    session.commit()
    flash(f"A test event for {hook.name} is queued; the worker sends it.")
    return redirect(url_for("webhooks.detail", name=hook.name))


@bp.post("/<name>/delete")
@requires(Permission.ADMIN)
def delete(name: str) -> Response:
    session = db()
    hook = get_webhook(session, name)
    if not DeleteForm().validate_on_submit():
        raise InvalidInput("the form expired; reload the page and try again")
    remove_webhook(session, hook, actor=current_user.username, role=current_user.role, now=utcnow())
    session.commit()
    flash(f"Removed webhook {name}.")
    return redirect(url_for("webhooks.index"))
