"""gunicorn entry point from a checkout: ``gunicorn wsgi:app`` (installed: ``migdash.wsgi:app``)."""

from migdash.wsgi import app

__all__ = ["app"]
