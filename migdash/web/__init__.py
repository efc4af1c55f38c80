"""The Flask layer: blueprints, error pages, security headers.  Views stay thin.

Views parse and authorise, make one call into ``migdash.status``,
``migdash.store`` or the engine, and render.  Nothing below this package
imports Flask's request machinery.
"""

from __future__ import annotations

from flask import Flask


def register_web(app: Flask) -> None:
    """Attach blueprints, handlers and per-request hooks to *app*."""
    from migdash.extensions import csrf
    from migdash.web import (
        actions,
        admin,
        api,
        api_actions,  # noqa: F401 - adds its routes to api.bp when imported
        api_docs,
        api_reads,  # noqa: F401 - adds its routes to api.bp when imported
        approvals,
        audit,
        auth,
        compare,
        health,
        history,
        jobs,
        metrics,
        overview,
        projects,
        rollouts,
        schemas,
        targets,
        users,
        webhooks,
    )
    from migdash.web.db import close_session
    from migdash.web.errors import register_error_handlers
    from migdash.web.inputs import install_input_limits
    from migdash.web.security import register_security
    from migdash.web.templating import register_templating

    install_input_limits(app)
    for module in (
        auth,
        overview,
        projects,
        targets,
        compare,
        history,
        schemas,
        admin,
        users,
        jobs,
        actions,
        approvals,
        rollouts,
        audit,
        webhooks,
        api,
        health,
        metrics,
        api_docs,
    ):
        app.register_blueprint(module.bp)
    csrf.exempt(api.bp)  # token-authenticated, no cookies: nothing for CSRF to protect
    auth.init_login(app)
    register_error_handlers(app)
    register_security(app)
    register_templating(app)
    app.teardown_appcontext(close_session)
