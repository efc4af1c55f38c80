"""WTForms for the registry admin pages (CSRF comes with FlaskForm)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

MAX_POSITION = 1_000_000
MAX_APPROVALS = 20
"""Bounds of the environment form's numbers: far above any real use, far below an overflow."""

PROMOTION_RULES = [
    ("warn", "warn: promote, and say what the previous environment lacks"),
    ("refuse", "refuse: promote only what the previous environment holds"),
]
URL_MODES = [
    ("config", "config: sets sqlalchemy.url"),
    ("connection", "connection: config.attributes['connection']"),
    ("env", "env: an environment variable"),
]


class ProjectForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    script_location = StringField(
        "Script location",
        validators=[DataRequired(), Length(max=1000)],
        description="Folder holding env.py and versions/, or the project's alembic.ini.",
    )
    version_table = StringField(
        "Version table", default="alembic_version", validators=[Length(max=100)]
    )
    version_table_schema = StringField(
        "Version table schema", validators=[Optional(), Length(max=100)]
    )
    track = StringField(
        "Track",
        default="heads",
        validators=[Length(max=200)],
        description="What targets should reach: heads, a revision, or branch_label@head.",
    )
    url_mode = SelectField(
        "URL mode",
        default="config",
        description="How the target URL reaches env.py.",
    )
    url_env_var = StringField(
        "URL environment variable",
        validators=[Optional(), Length(max=100)],
        description="With URL mode env, e.g. DATABASE_URL.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Assigned after binding: WTForms 3.3 warns on tuple choices passed to the field
        # (DeprecationWarning, an error under pytest), while older WTForms lack SelectChoice.
        self.url_mode.choices = URL_MODES


class EnvironmentForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    position = IntegerField(
        "Position",
        validators=[Optional(), NumberRange(min=0, max=MAX_POSITION)],
        description="Lower comes first (dev before prod).",
    )
    protected = BooleanField("Protected", description="Mutating jobs here need approval.")
    required_approvals = IntegerField(
        "Approvals needed",
        default=1,
        validators=[Optional(), NumberRange(min=1, max=MAX_APPROVALS)],
        description="Distinct approvers (never the requester) a job needs when protected.",
    )
    promotion_rule = SelectField(
        "Promotion rule",
        default="warn",
        description="Promoting here a revision the environment before this one does not hold "
        "yet: warn, or refuse.",
    )
    windows = StringField(
        "Rollout windows",
        validators=[Optional(), Length(max=500)],
        description="When jobs here may start, e.g. 'Mon-Fri 22:00-02:00 UTC; "
        "Sat,Sun 00:00-24:00 Europe/Paris'. Empty: any time.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.promotion_rule.choices = PROMOTION_RULES


class TargetForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    project = SelectField("Project", validators=[DataRequired()])
    environment = SelectField("Environment", validators=[DataRequired()])
    url = PasswordField(
        "Database URL",
        validators=[Optional(), Length(max=2000)],
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user:password@host/db. "
        "Leave empty when editing to keep the stored one.",
    )
    tags = StringField("Tags", description="Comma-separated.")
    version_table = StringField("Version table override", validators=[Optional(), Length(max=100)])
    version_table_schema = StringField(
        "Version table schema override", validators=[Optional(), Length(max=100)]
    )


class DeleteForm(FlaskForm):
    """An empty form: only its CSRF token matters."""


class InitProjectForm(FlaskForm):
    """``alembic init`` of a new project under MIGDASH_PROJECTS_ROOT."""

    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    template = SelectField("Template", default="generic")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        from migdash.jobs.projects import ALLOWED_TEMPLATES

        self.template.choices = list(ALLOWED_TEMPLATES)
