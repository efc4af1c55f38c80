"""gunicorn entry point: ``gunicorn wsgi:app``."""

from migdash import create_app

app = create_app()
