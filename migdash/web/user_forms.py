"""WTForms for the user and token admin pages (CSRF comes with FlaskForm).

The validators call the store's own rules (``check_name``,
``check_new_password``), so a form refuses exactly what the store would and
says why next to the field, before anything reaches the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_wtf import FlaskForm
from wtforms import Field, Form, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from migdash.errors import InvalidInput
from migdash.store.models import Role
from migdash.store.registry import check_name
from migdash.store.users import PASSWORD_RULE, check_new_password

NAME_RULE = "1–100 letters, digits, '_', '.' or '-', starting with a letter or digit."


def store_rule(check: Callable[[str], str]) -> Callable[[Form, Field], None]:
    """A WTForms validator from a store check that raises :class:`InvalidInput`."""

    def validate(_form: Form, field: Field) -> None:
        try:
            check(field.data or "")
        except InvalidInput as error:
            raise ValidationError(error.message) from error

    return validate


def _user_name(value: str) -> str:
    return check_name("user", value)


def _token_name(value: str) -> str:
    return check_name("token", value)


def _password_field(label: str) -> PasswordField:
    return PasswordField(
        label,
        validators=[DataRequired(), store_rule(check_new_password), Length(max=1000)],
        description=f"{PASSWORD_RULE.capitalize()}.",
    )


def _role_field(label: str, **kwargs: Any) -> SelectField:
    # plain strings (value = label): WTForms 3.3 deprecates (value, label) tuples
    return SelectField(label, choices=[role.value for role in Role], **kwargs)


class NewUserForm(FlaskForm):
    username = StringField(
        "Username",
        validators=[DataRequired(), Length(max=100), store_rule(_user_name)],
        description=NAME_RULE,
    )
    role = _role_field("Role", default=Role.VIEWER.value)
    password = _password_field("Initial password")


class RoleForm(FlaskForm):
    role = _role_field("Role")


class PasswordForm(FlaskForm):
    password = _password_field("New password")


class TokenForm(FlaskForm):
    name = StringField(
        "Token name",
        validators=[DataRequired(), Length(max=100), store_rule(_token_name)],
        description=f"What it is for, e.g. ci-deploy. {NAME_RULE}",
    )


class ButtonForm(FlaskForm):
    """An empty form: only its CSRF token matters (disable, enable, revoke)."""
