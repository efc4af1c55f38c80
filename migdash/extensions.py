"""Extension instances, unbound; ``create_app`` binds each with ``init_app``."""

from __future__ import annotations

from flask_htmx import HTMX
from flask_login import LoginManager
from flask_wtf import CSRFProtect

login_manager = LoginManager()
csrf = CSRFProtect()
htmx = HTMX()
