"""migdash: a web dashboard for overseeing Alembic migrations across many databases.

The package root imports no web framework: ``create_app`` imports Flask when
it is called, so the engine and the child processes that run project code
(``migdash.jobs.runner``, ``migdash.engine.loader``) start without it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """``templates``/``static``: inside the package in a wheel, beside it in a checkout."""
    packaged = PACKAGE_DIR / name
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / name


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app; connects to nothing and runs no migrations."""
    from flask import Flask

    from migdash.config import load_settings, validate
    from migdash.extensions import csrf, htmx, limiter, login_manager
    from migdash.logscrub import install_log_scrubbing
    from migdash.services import build_services
    from migdash.web import register_web

    settings = load_settings(os.environ, config)
    validate(settings)
    install_log_scrubbing()
    app = Flask(
        "migdash",
        instance_path=settings["MIGDASH_INSTANCE"],
        template_folder=str(resource_dir("templates")),
        static_folder=str(resource_dir("static")),
    )
    app.config.update(
        SECRET_KEY=settings["MIGDASH_SECRET_KEY"] or os.urandom(32).hex(),
        TESTING=bool(settings["TESTING"]),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings["MIGDASH_SECURE_COOKIES"]),
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
        RATELIMIT_STORAGE_URI=settings["MIGDASH_RATELIMIT_STORAGE_URL"],
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.config.update({k: v for k, v in settings.items() if k.startswith(("MIGDASH_", "WTF_"))})
    login_manager.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    app.extensions["migdash"] = build_services(settings)
    register_web(app)
    return app
