"""Extension instances, unbound; ``create_app`` binds each with ``init_app``."""

from __future__ import annotations

from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf import CSRFProtect

login_manager = LoginManager()
csrf = CSRFProtect()
htmx = HTMX()
limiter = Limiter(get_remote_address, default_limits=[])
"""Only the sign-in form is limited (``MIGDASH_LOGIN_RATE_LIMIT``)."""
