"""The WSGI entry point shipped in the package: ``gunicorn 'migdash.wsgi:app'``.

It lives inside ``migdash`` so an installed wheel serves without a checkout
(the repository's top-level ``wsgi.py`` is not in the wheel and only
re-exports this).  Building the app connects to nothing and runs no
migrations; the process is made non-dumpable first, so the project code that
runs in its child processes cannot read the keys it holds from ``/proc``.
"""

from migdash import create_app
from migdash.engine.child import protect_process_memory

protect_process_memory()
app = create_app()
