"""gunicorn entry point: ``gunicorn wsgi:app``."""

from migdash import create_app
from migdash.engine.child import protect_process_memory

protect_process_memory()
app = create_app()
